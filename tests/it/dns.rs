//! Preview URLs that resolve: Azure DNS records against the fake ARM, the host and URL rules,
//! the load-balancer address and the certificate objects on a real test control plane.
//!
//! ACME itself is not reachable here: certificates are tested as objects and through the wait
//! logic, with status written the way cert-manager writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

use ephemera::azure::Timing;
use ephemera::config::{
    AksConfig, AzureDns as DnsConfig, Cloud, Issuer, NodePool, ResourceGroup, ResourceGroupStrategy,
};
use ephemera::dns::address::{AddressSource, LbAddress, Observed, observe};
use ephemera::dns::azure::{AzureDns, DNS_API_VERSION, RecordOutcome};
use ephemera::dns::tls::{self, CERTS_NAMESPACE, WildcardCertificate};
use ephemera::dns::{DnsError, host};
use ephemera::providers::probe::FakeProbe;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::common::fake_arm::{self, Config, FakeArm, Fault};
use crate::common::testcluster::{TestCluster, shared_file, shared_namespace};

const ZONE: &str = "previews.acme.dev";
const DNS_GROUP: &str = "rg-dns";
const HOST: &str = "pr-42.previews.acme.dev";

fn aks_cfg() -> AksConfig {
    AksConfig {
        subscription: "ignored-env-wins".into(),
        location: "westeurope".into(),
        resource_group: ResourceGroup {
            strategy: ResourceGroupStrategy::PerEnvironment,
            name: None,
        },
        kubernetes_version: None,
        system_pool: NodePool::default(),
        network_plugin: "azure".into(),
        tags: BTreeMap::new(),
        cloud: Cloud::default(),
        entra_id: false,
        dns: Some(DnsConfig {
            zone: ZONE.into(),
            resource_group: DNS_GROUP.into(),
            subscription: None,
            ttl: 300,
            identity: None,
        }),
        dns_prefix: None,
        tier: "Free".into(),
    }
}

fn fast() -> Timing {
    Timing {
        retry_min: Duration::from_millis(2),
        retry_max: Duration::from_millis(20),
        retry_times: 10,
        retry_after_cap: Duration::from_secs(5),
        poll_interval: Duration::from_millis(5),
        request_timeout: Duration::from_secs(10),
        create_deadline: Duration::from_secs(60),
        delete_deadline: Duration::from_secs(60),
    }
}

fn zone_client(fake: &FakeArm, profile: &str) -> AzureDns {
    let probe = FakeProbe {
        vars: fake.env().into_iter().collect(),
        executables: Vec::new(),
        real_files: false,
    };
    AzureDns::new(&aks_cfg(), Some(profile), std::sync::Arc::new(probe))
        .expect("zone client")
        .with_timing(fast())
}

async fn fake_with_zone(cfg: Config) -> FakeArm {
    let fake = FakeArm::start(cfg).await;
    fake.seed_zone(DNS_GROUP, ZONE);
    fake
}

fn dns_writes(fake: &FakeArm) -> usize {
    ["PUT", "PATCH", "DELETE"]
        .iter()
        .map(|m| fake.calls(m, "/dnszones/"))
        .sum()
}

fn a_record(fake: &FakeArm, name: &str) -> Option<Value> {
    fake.dns_record(DNS_GROUP, ZONE, "A", name)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[tokio::test]
async fn ensure_creates_exactly_one_a_record_with_our_metadata_and_a_rerun_writes_nothing() {
    let fake = fake_with_zone(Config::default()).await;
    let dns = zone_client(&fake, "pr-aks");

    let made = dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42").await.unwrap();
    assert_eq!(made.outcome, RecordOutcome::Created);
    assert_eq!(made.record.fqdn, HOST);
    assert_eq!(
        fake.dns_records(DNS_GROUP, ZONE),
        [("A".to_string(), "pr-42".to_string())],
        "exactly one record"
    );
    let r = a_record(&fake, "pr-42").unwrap();
    assert_eq!(
        r["properties"]["ARecords"],
        json!([{"ipv4Address": "20.1.2.3"}])
    );
    assert_eq!(r["properties"]["TTL"], 300);
    let meta = &r["properties"]["metadata"];
    assert_eq!(meta["ephemera-managed-by"], "ephemera");
    assert_eq!(meta["ephemera-environment"], "pr-42");
    assert_eq!(meta["ephemera-env-file"], "pr-aks");
    let created_at = meta["ephemera-created-at"].as_str().unwrap().to_string();
    assert!(
        created_at.parse::<jiff::Timestamp>().is_ok(),
        "{created_at}"
    );
    assert_eq!(fake.calls("PUT", "/dnszones/"), 1, "one PUT");
    assert_eq!(fake.with_state(|s| s.missing_request_ids), 0);

    let before = dns_writes(&fake);
    let again = dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42").await.unwrap();
    assert_eq!(again.outcome, RecordOutcome::Unchanged);
    assert_eq!(dns_writes(&fake), before, "a rerun makes no write");

    // The load balancer moved: one conditional update, creation time and others' keys kept.
    fake.seed_record(
        DNS_GROUP,
        ZONE,
        "A",
        "pr-42",
        json!({"TTL": 300, "ARecords": [{"ipv4Address": "20.1.2.3"}], "metadata": {
            "ephemera-managed-by": "ephemera", "ephemera-environment": "pr-42",
            "ephemera-env-file": "pr-aks", "ephemera-created-at": created_at, "team": "cats"}}),
    );
    let moved = dns.ensure_a(HOST, ip("20.9.9.9"), "pr-42").await.unwrap();
    assert_eq!(moved.outcome, RecordOutcome::Updated);
    let r = a_record(&fake, "pr-42").unwrap();
    assert_eq!(
        r["properties"]["ARecords"],
        json!([{"ipv4Address": "20.9.9.9"}])
    );
    assert_eq!(
        r["properties"]["metadata"]["ephemera-created-at"],
        created_at.as_str()
    );
    assert_eq!(r["properties"]["metadata"]["team"], "cats");
    assert_eq!(fake.with_dns(|d| d.creates.values().sum::<usize>()), 1);
}

#[tokio::test]
async fn a_record_that_is_not_ours_is_never_overwritten() {
    let fake = fake_with_zone(Config::default()).await;
    let dns = zone_client(&fake, "pr-aks");
    let foreign = json!({"TTL": 3600, "ARecords": [{"ipv4Address": "203.0.113.7"}], "metadata": {"owner": "web-team"}});
    fake.seed_record(DNS_GROUP, ZONE, "A", "pr-42", foreign.clone());
    fake.seed_record(
        DNS_GROUP,
        ZONE,
        "CNAME",
        "pr-7",
        json!({"TTL": 300, "CNAMERecord": {"cname": "lb.example.net"}, "metadata": {
            "ephemera-managed-by": "ephemera", "ephemera-environment": "pr-8"}}),
    );

    let err = dns
        .ensure_a(HOST, ip("20.1.2.3"), "pr-42")
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Foreign { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "DNS record A pr-42.previews.acme.dev in zone previews.acme.dev exists and is not managed by ephemera (no \
         ephemera-managed-by=ephemera metadata); refusing to change it"
    );
    assert_eq!(ephemera::Error::from(err).exit_status() as i32, 2);
    let check = dns.check_host(HOST, "pr-42").await.unwrap_err();
    assert!(
        check.to_string().contains("A pr-42.previews.acme.dev"),
        "{check}"
    );

    let other = dns
        .ensure_a("pr-7.previews.acme.dev", ip("20.1.2.3"), "pr-7")
        .await
        .unwrap_err();
    assert!(
        other.to_string().contains("CNAME pr-7.previews.acme.dev")
            && other.to_string().contains("environment pr-8"),
        "{other}"
    );

    // down leaves them alone too.
    assert!(dns.delete(HOST, "pr-42").await.unwrap().is_empty());
    assert_eq!(
        fake.calls("PUT", "/dnszones/") + fake.calls("DELETE", "/dnszones/"),
        0
    );
    let r = a_record(&fake, "pr-42").unwrap();
    assert_eq!(r["properties"]["ARecords"], foreign["ARecords"]);
    assert_eq!(r["properties"]["metadata"], foreign["metadata"]);
}

#[tokio::test]
async fn delete_removes_the_record_and_a_second_delete_is_already_gone() {
    let fake = fake_with_zone(Config::default()).await;
    let dns = zone_client(&fake, "pr-aks");
    dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42").await.unwrap();
    let deleted = dns.delete(HOST, "pr-42").await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(fake.dns_records(DNS_GROUP, ZONE).is_empty());
    assert!(
        dns.delete(HOST, "pr-42").await.unwrap().is_empty(),
        "already gone"
    );
    assert_eq!(fake.with_dns(|d| d.deletes.values().sum::<usize>()), 1);
}

#[tokio::test]
async fn a_hostname_gets_a_cname_which_replaces_our_a_record() {
    let fake = fake_with_zone(Config::default()).await;
    let dns = zone_client(&fake, "pr-aks");
    dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42").await.unwrap();
    let lb = LbAddress::Hostname("pr42-lb.westeurope.cloudapp.azure.com.".into());
    let made = dns.ensure(HOST, &lb, "pr-42").await.unwrap();
    assert_eq!(made.outcome, RecordOutcome::Created);
    assert_eq!(
        fake.dns_records(DNS_GROUP, ZONE),
        [("CNAME".to_string(), "pr-42".to_string())]
    );
    let r = fake.dns_record(DNS_GROUP, ZONE, "CNAME", "pr-42").unwrap();
    assert_eq!(
        r["properties"]["CNAMERecord"]["cname"],
        "pr42-lb.westeurope.cloudapp.azure.com"
    );
    let v6 = LbAddress::Ip("2001:db8::1".parse().unwrap());
    let err = dns.ensure(HOST, &v6, "pr-42").await.unwrap_err();
    assert!(err.to_string().contains("IPv6"), "{err}");
    let outside = dns
        .ensure_a("pr-42.elsewhere.dev", ip("20.1.2.3"), "pr-42")
        .await
        .unwrap_err();
    assert_eq!(
        outside.to_string(),
        "routing.host: pr-42.elsewhere.dev is not in the Azure DNS zone previews.acme.dev (provider.aks.dns.zone)"
    );
}

#[tokio::test]
async fn gc_removes_orphans_of_this_file_over_several_pages_and_leaves_records_without_our_metadata()
 {
    let fake = fake_with_zone(Config {
        page_size: 2,
        ..Config::default()
    })
    .await;
    let dns = zone_client(&fake, "pr-aks");
    for (name, env) in [("pr-1", "pr-1"), ("pr-2", "pr-2"), ("pr-5", "pr-5")] {
        dns.ensure_a(&format!("{name}.{ZONE}"), ip("20.1.2.3"), env)
            .await
            .unwrap();
    }
    let other_file = zone_client(&fake, "adhoc-aks");
    other_file
        .ensure_a(&format!("alice.{ZONE}"), ip("20.1.2.4"), "alice")
        .await
        .unwrap();
    fake.seed_record(
        DNS_GROUP,
        ZONE,
        "A",
        "www",
        json!({"TTL": 60, "ARecords": [{"ipv4Address": "203.0.113.1"}]}),
    );
    fake.seed_record(
        DNS_GROUP,
        ZONE,
        "CNAME",
        "docs",
        json!({"TTL": 60, "CNAMERecord": {"cname": "acme.github.io"}}),
    );
    let live = BTreeSet::from(["pr-2".to_string()]);

    let listed = dns.list_records().await.unwrap();
    assert_eq!(listed.len(), 6, "every page was read: {listed:?}");

    let before = dns_writes(&fake);
    let dry = dns.gc_orphans(&live, true).await.unwrap();
    let names = |v: &[ephemera::dns::azure::Swept]| {
        v.iter()
            .map(|s| (s.record.name.clone(), s.outcome.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&dry),
        [
            ("pr-1".to_string(), "would-delete".to_string()),
            ("pr-5".to_string(), "would-delete".to_string())
        ]
    );
    assert_eq!(dns_writes(&fake), before, "a dry run deletes nothing");

    let swept = dns.gc_orphans(&live, false).await.unwrap();
    assert_eq!(
        names(&swept),
        [
            ("pr-1".to_string(), "deleted".to_string()),
            ("pr-5".to_string(), "deleted".to_string())
        ]
    );
    assert_eq!(
        fake.dns_records(DNS_GROUP, ZONE),
        [
            ("A".to_string(), "alice".to_string()),
            ("A".to_string(), "pr-2".to_string()),
            ("A".to_string(), "www".to_string()),
            ("CNAME".to_string(), "docs".to_string()),
        ],
        "the live environment, another file's record and records without our metadata stay"
    );
    assert!(dns.gc_orphans(&live, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn ensure_converges_through_throttling_server_errors_and_lost_answers() {
    let fake = fake_with_zone(Config {
        seed: 11,
        ..Config::default()
    })
    .await;
    fake.set_faults(
        0.4,
        &[
            Fault::Throttle,
            Fault::ServerError,
            Fault::Reset,
            Fault::ResetAfter,
            Fault::ServerErrorAfter,
        ],
    );
    let dns = zone_client(&fake, "pr-aks");
    for _ in 0..3 {
        dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42").await.unwrap();
    }
    assert!(
        fake.with_state(|s| s.faults.values().sum::<usize>()) > 0,
        "faults were injected"
    );
    assert_eq!(
        fake.with_dns(|d| d.creates.clone()),
        BTreeMap::from([("A pr-42.previews.acme.dev".to_string(), 1)]),
        "one creation, whatever answers were lost"
    );
    fake.set_faults(0.0, &[]);
    let before = dns_writes(&fake);
    assert_eq!(
        dns.ensure_a(HOST, ip("20.1.2.3"), "pr-42")
            .await
            .unwrap()
            .outcome,
        RecordOutcome::Unchanged
    );
    assert_eq!(dns_writes(&fake), before);
    dns.delete(HOST, "pr-42").await.unwrap();
    assert!(fake.dns_records(DNS_GROUP, ZONE).is_empty());
}

/// The fake's record-set endpoints answer as the `Microsoft.Network/dnsZones` contract says.
#[tokio::test]
async fn the_fake_follows_the_record_set_contract() {
    let fake = fake_with_zone(Config::default()).await;
    let http = reqwest::Client::new();
    let token = fake.issue_token();
    let url = |rest: &str, api: &str| {
        format!(
            "{}/subscriptions/{}/resourceGroups/{DNS_GROUP}/providers/Microsoft.Network/dnsZones/{ZONE}/{rest}?api-version={api}",
            fake.url,
            fake_arm::SUBSCRIPTION
        )
    };
    let call =
        |method: reqwest::Method, rest: &str, headers: &[(&str, &str)], body: Option<Value>| {
            let mut req = http
                .request(method, url(rest, DNS_API_VERSION))
                .bearer_auth(&token)
                .header("x-ms-client-request-id", "test");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                (
                    status,
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                )
            }
        };
    let body = json!({"properties": {"TTL": 60, "ARecords": [{"ipv4Address": "10.0.0.1"}], "metadata": {"k": "v"}}});
    let (s, created) = call(
        reqwest::Method::PUT,
        "A/web",
        &[("if-none-match", "*")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(created["properties"]["fqdn"], "web.previews.acme.dev.");
    assert_eq!(created["type"], "Microsoft.Network/dnszones/A");
    let etag = created["etag"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            reqwest::Method::PUT,
            "A/web",
            &[("if-none-match", "*")],
            Some(body.clone())
        )
        .await
        .0,
        412
    );
    assert_eq!(
        call(
            reqwest::Method::PUT,
            "A/web",
            &[("if-match", "stale")],
            Some(body.clone())
        )
        .await
        .0,
        412
    );
    let (s, updated) = call(
        reqwest::Method::PUT,
        "A/web",
        &[("if-match", &etag)],
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(
        updated["etag"], created["etag"],
        "every write gets a new etag"
    );
    let cname = json!({"properties": {"TTL": 60, "CNAMERecord": {"cname": "x.example.net"}}});
    assert_eq!(
        call(reqwest::Method::PUT, "CNAME/web", &[], Some(cname))
            .await
            .0,
        409,
        "a CNAME cannot share a name"
    );
    let mixed = json!({"properties": {"TTL": 60, "ARecords": [], "CNAMERecord": {"cname": "x"}}});
    assert_eq!(
        call(reqwest::Method::PUT, "A/mixed", &[], Some(mixed))
            .await
            .0,
        400
    );
    assert_eq!(
        call(
            reqwest::Method::PUT,
            "A/nottl",
            &[],
            Some(json!({"properties": {}}))
        )
        .await
        .0,
        400
    );
    assert_eq!(call(reqwest::Method::GET, "A/web", &[], None).await.0, 200);
    assert_eq!(
        call(
            reqwest::Method::DELETE,
            "A/web",
            &[("if-match", "stale")],
            None
        )
        .await
        .0,
        412
    );
    assert_eq!(
        call(reqwest::Method::DELETE, "A/web", &[], None).await.0,
        200
    );
    assert_eq!(
        call(reqwest::Method::DELETE, "A/web", &[], None).await.0,
        204
    );
    let (s, e) = call(reqwest::Method::GET, "A/web", &[], None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("NotFound")));
    let wrong = http
        .get(url("A/web", "2026-08-01"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
}

// ---- hosts and URLs -------------------------------------------------------------------------

fn env(provider: &str, extra: &str) -> ephemera::config::Environment {
    let text = format!(
        "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n{provider}app:\n  name: cats\n{extra}"
    );
    ephemera::config::parse("env.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .env
}

const AKS_WITH_ZONE: &str = "  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup: {strategy: perEnvironment}\n    dns: {zone: previews.acme.dev, resourceGroup: rg-dns}\n";
const AKS: &str = "  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup: {strategy: perEnvironment}\n";

#[test]
fn hosts_use_the_zone_or_the_wildcard_dns_fallback() {
    let zoned = env(AKS_WITH_ZONE, "");
    let h = host::preview_host(&zoned, "pr-42", Some(42), None).unwrap();
    assert_eq!(
        (h.host.as_str(), h.is_final()),
        ("pr-42.previews.acme.dev", true)
    );
    assert_eq!(
        host::url_for(&zoned, &h.host),
        "https://pr-42.previews.acme.dev"
    );

    let bare = env(AKS, "");
    let pending = host::preview_host(&bare, "pr-42", Some(42), None).unwrap();
    assert_eq!(
        pending.host,
        format!("pr-42.{}.nip.io", ephemera::plan::PENDING_IP)
    );
    assert!(pending.pending.unwrap().contains("load balancer"));
    let known = host::preview_host(&bare, "pr-42", Some(42), Some(ip("20.1.2.3"))).unwrap();
    assert_eq!(known.host, "pr-42.20.1.2.3.nip.io");
    assert!(known.is_final());

    let sslip = env(AKS, "routing:\n  wildcardDns: sslip.io\n");
    assert_eq!(
        host::preview_host(&sslip, "pr-42", None, Some(ip("20.1.2.3")))
            .unwrap()
            .host,
        "pr-42.20.1.2.3.sslip.io"
    );
    let kind = env("  kind: {}\n", "tls:\n  issuer: selfsigned\n");
    assert_eq!(
        host::preview_host(&kind, "pr-42", Some(42), None)
            .unwrap()
            .host,
        "pr-42.127.0.0.1.nip.io",
        "on kind the default resolves to 127.0.0.1"
    );
    let plain = env(
        "  local: {}\n",
        "addons:\n  certManager: {enabled: false}\n",
    );
    assert_eq!(
        host::url_for(
            &plain,
            &host::preview_host(&plain, "pr-1", None, None).unwrap().host
        ),
        "http://pr-1.127.0.0.1.nip.io"
    );
}

#[test]
fn a_host_outside_the_managed_zone_is_an_error_before_anything_exists() {
    let e = env(
        AKS_WITH_ZONE,
        "routing:\n  host: \"{{env}}.previews.other.dev\"\n",
    );
    let err = host::preview_host(&e, "pr-42", None, None).unwrap_err();
    assert!(
        err.contains("not in the Azure DNS zone previews.acme.dev"),
        "{err}"
    );
    let sub = env(
        AKS_WITH_ZONE,
        "routing:\n  baseDomain: pr.previews.acme.dev\n",
    );
    assert_eq!(
        host::preview_host(&sub, "pr-42", None, None).unwrap().host,
        "pr-42.pr.previews.acme.dev"
    );
}

#[test]
fn wildcard_tls_from_lets_encrypt_needs_the_dns01_identity() {
    let acme = env(
        AKS_WITH_ZONE,
        "tls:\n  issuer: letsencrypt\n  wildcard: true\n",
    );
    assert!(tls::check(&acme).unwrap_err().contains("DNS-01"));
    assert!(tls::dns01_values(&acme, "sub-1").is_none());
    let dns01 = env(
        AKS_WITH_ZONE,
        "addons:\n  certManager:\n    values:\n      azureDNS: {clientID: 44444444-4444-4444-4444-444444444444}\ntls:\n  issuer: letsencrypt\n  wildcard: true\n",
    );
    tls::check(&dns01).unwrap();
    let values = tls::dns01_values(&dns01, "sub-1").unwrap();
    assert_eq!(
        values,
        json!({"azureDNS": {
            "subscriptionID": "sub-1",
            "resourceGroupName": "rg-dns",
            "hostedZoneName": "previews.acme.dev",
            "environment": "AzurePublicCloud",
            "managedIdentity": {"clientID": "44444444-4444-4444-4444-444444444444"},
        }})
    );
    let selfsigned = env(
        "  kind: {}\n",
        "routing:\n  baseDomain: kind.test\ntls:\n  issuer: selfsigned\n  wildcard: true\n",
    );
    tls::check(&selfsigned).unwrap();
}

#[test]
fn the_dns01_solver_template_renders_cert_managers_azure_dns_fields() {
    let renderer = ephemera::templates::Renderer::new(None).unwrap();
    let dns01 = json!({"azureDNS": {
        "subscriptionID": "sub-1", "resourceGroupName": "rg-dns", "hostedZoneName": ZONE,
        "environment": "AzurePublicCloud", "managedIdentity": {"clientID": "cid"}}});
    let text = renderer
        .render(
            "addons/cert-manager/dns01-solver.yaml.hbs",
            &json!({"tls": {"issuer": "letsencrypt", "dns01": dns01}}),
        )
        .unwrap();
    let solvers: Vec<Value> =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(solvers.len(), 1);
    assert_eq!(solvers[0]["selector"]["dnsZones"], json!([ZONE]));
    assert_eq!(solvers[0]["dns01"]["azureDNS"], dns01["azureDNS"]);
}

/// How cluster-issuer.yaml.hbs includes the solver: a partial after the HTTP-01 solver, only
/// when `tls.dns01` is set (strict mode lets `#if` see a missing value).
#[test]
fn the_dns01_solver_is_included_as_a_partial_of_the_cluster_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: ephemera\nspec:\n  acme:\n    solvers:\n      - http01:\n          ingress:\n            ingressClassName: nginx\n{{#if tls.dns01}}\n{{> addons/cert-manager/dns01-solver.yaml.hbs}}\n{{/if}}\n";
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/issuer.yaml.hbs"), issuer).unwrap();
    let renderer = ephemera::templates::Renderer::new(Some(dir.path())).unwrap();
    let http_only = renderer
        .render(
            "app/issuer.yaml.hbs",
            &json!({"tls": {"issuer": "letsencrypt"}}),
        )
        .unwrap();
    let doc: Value = serde_saphyr::from_str(&http_only).unwrap();
    assert_eq!(doc["spec"]["acme"]["solvers"].as_array().unwrap().len(), 1);
    let dns01 = json!({"azureDNS": {"subscriptionID": "s", "resourceGroupName": "g",
        "hostedZoneName": ZONE, "managedIdentity": {"clientID": "c"}}});
    let both = renderer
        .render(
            "app/issuer.yaml.hbs",
            &json!({"tls": {"issuer": "letsencrypt", "dns01": dns01}}),
        )
        .unwrap();
    let doc: Value = serde_saphyr::from_str(&both).unwrap_or_else(|e| panic!("{e}\n{both}"));
    let solvers = doc["spec"]["acme"]["solvers"].as_array().unwrap();
    assert_eq!(solvers.len(), 2, "{both}");
    assert_eq!(solvers[1]["dns01"]["azureDNS"]["hostedZoneName"], ZONE);
}

#[test]
fn the_workload_identity_overlay_labels_cert_manager_only_with_a_client_id() {
    let renderer = ephemera::templates::Renderer::new(None).unwrap();
    let template = "addons/cert-manager/workload-identity.yaml.hbs";
    let without = renderer.render(template, &json!({"values": {}})).unwrap();
    assert!(without.trim().is_empty(), "{without}");
    let with = renderer
        .render(
            template,
            &json!({"values": {"azureDNS": {"clientID": "cid: \"x\""}}}),
        )
        .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&with).unwrap();
    assert_eq!(
        docs[0]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(
        docs[1]["metadata"]["annotations"]["azure.workload.identity/client-id"], "cid: \"x\"",
        "the client id stays one scalar whatever it holds"
    );
    // Without a cloud name the solver leaves `environment` to cert-manager's default.
    let text = renderer
        .render(
            "addons/cert-manager/dns01-solver.yaml.hbs",
            &json!({"tls": {"dns01": {"azureDNS": {
                "subscriptionID": "s", "resourceGroupName": "g", "hostedZoneName": ZONE,
                "managedIdentity": {"clientID": "c"}}}}}),
        )
        .unwrap();
    let solvers: Vec<Value> = serde_saphyr::from_str(&text).unwrap();
    assert!(solvers[0]["dns01"]["azureDNS"].get("environment").is_none());
}

#[test]
fn addresses_prefer_ipv4_then_hostnames_and_a_non_lb_service_never_gets_one() {
    let svc = AddressSource::Service {
        namespace: "ingress-nginx".into(),
        name: "ingress-nginx-controller".into(),
    };
    let gw = AddressSource::Gateway {
        namespace: "nginx-gateway".into(),
        name: "ephemera".into(),
    };
    let lb = |status: Value| json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": status}});
    assert_eq!(observe(&svc, None), Observed::Waiting("absent".into()));
    assert!(
        matches!(observe(&svc, Some(&lb(json!({})))), Observed::Waiting(s) if s.contains("ingress is empty"))
    );
    assert_eq!(
        observe(
            &svc,
            Some(&lb(
                json!({"ingress": [{"ip": "2001:db8::1"}, {"ip": "20.1.2.3"}]})
            ))
        ),
        Observed::Ready(LbAddress::Ip("20.1.2.3".parse().unwrap()))
    );
    assert_eq!(
        observe(
            &svc,
            Some(&lb(json!({"ingress": [{"hostname": "x.elb.example.com"}]})))
        ),
        Observed::Ready(LbAddress::Hostname("x.elb.example.com".into()))
    );
    assert!(matches!(
        observe(&svc, Some(&json!({"spec": {"type": "NodePort"}}))),
        Observed::Never(s) if s.contains("NodePort")
    ));
    let gateway = json!({"status": {
        "addresses": [{"type": "Hostname", "value": "gw.example.net"}, {"value": "20.1.2.4"}],
        "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}]}});
    assert_eq!(
        observe(&gw, Some(&gateway)),
        Observed::Ready(LbAddress::Ip("20.1.2.4".parse().unwrap()))
    );
    let pending = json!({"status": {"conditions": [{"type": "Programmed", "status": "False", "reason": "AddressNotAssigned", "message": "no address yet"}]}});
    assert!(
        matches!(observe(&gw, Some(&pending)), Observed::Waiting(s) if s.contains("Programmed=False (AddressNotAssigned: no address yet)"))
    );
}

// ---- on a real control plane ----------------------------------------------------------------

/// One cluster for the tests here that install CRDs (Gateway API, cert-manager), so they never
/// fight over the CRDs of the cluster other tests share. Taken down when the process exits.
fn crd_cluster() -> Option<&'static TestCluster> {
    static CLUSTER: OnceLock<Option<TestCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let cluster = TestCluster::start("dns")?;
            for dir in [
                "fixtures/manifests/gateway-api-v1.5.1/standard",
                "fixtures/manifests/cert-manager-v1.21.1/crds",
            ] {
                let path = shared_file(dir);
                cluster.kubectl_ok(&[
                    "apply",
                    "--server-side",
                    "--field-manager=dns-tests",
                    "-f",
                    path.to_str().unwrap(),
                ]);
            }
            cluster.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "--all",
            ]);
            Some(cluster)
        })
        .as_ref()
}

fn create_namespace(cluster: &TestCluster, name: &str) {
    cluster.kubectl_ok(&["create", "namespace", name]);
}

async fn patch_status<K>(api: &Api<K>, name: &str, status: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("patching the status of {name}: {e}"));
}

/// `up` then `down` with a zone, for the DNS part: the ingress Service gets its address (as a
/// cloud controller would write it), the record points at it, and `down` removes it.
#[tokio::test]
async fn up_then_down_with_a_zone_points_the_record_at_the_load_balancer_and_removes_it() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), ns.name());
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "ingress-nginx-controller"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}], "selector": {"app": "x"}},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let source = AddressSource::Service {
        namespace: ns.name().into(),
        name: "ingress-nginx-controller".into(),
    };

    // Nobody assigns an address: the timeout names the Service and what it showed.
    let err = ephemera::dns::wait_for_address(&client, &source, Duration::from_secs(2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("Service {}/ingress-nginx-controller", ns.name()))
            && text.contains("status.loadBalancer.ingress is empty"),
        "{text}"
    );
    assert_eq!(ephemera::Error::from(err).exit_status() as i32, 3);

    let waiter = {
        let (client, source) = (client.clone(), source.clone());
        tokio::spawn(async move {
            ephemera::dns::wait_for_address(&client, &source, Duration::from_secs(30)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    patch_status(
        &services,
        "ingress-nginx-controller",
        json!({"loadBalancer": {"ingress": [{"ip": "20.31.7.9"}]}}),
    )
    .await;
    let address = waiter.await.unwrap().unwrap();
    assert_eq!(address, LbAddress::Ip("20.31.7.9".parse().unwrap()));

    let fake = fake_with_zone(Config::default()).await;
    let dns = zone_client(&fake, "pr-aks");
    let zoned = env(AKS_WITH_ZONE, "");
    let h = host::preview_host(&zoned, "pr-42", Some(42), None).unwrap();
    assert_eq!(
        host::url_for(&zoned, &h.host),
        "https://pr-42.previews.acme.dev"
    );
    dns.check_host(&h.host, "pr-42").await.unwrap();
    dns.ensure(&h.host, &address, "pr-42").await.unwrap();
    assert_eq!(
        fake.dns_records(DNS_GROUP, ZONE),
        [("A".to_string(), "pr-42".to_string())]
    );
    assert_eq!(
        a_record(&fake, "pr-42").unwrap()["properties"]["ARecords"],
        json!([{"ipv4Address": "20.31.7.9"}])
    );
    dns.delete(&h.host, "pr-42").await.unwrap();
    assert!(
        fake.dns_records(DNS_GROUP, ZONE).is_empty(),
        "gone after down"
    );

    let node_port: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "x"}},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &node_port)
        .await
        .unwrap();
    let never = ephemera::dns::wait_for_address(
        &client,
        &AddressSource::Service {
            namespace: ns.name().into(),
            name: "np".into(),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(never, DnsError::Address { .. }),
        "fails at once: {never}"
    );
}

#[tokio::test]
async fn the_gateway_address_comes_from_its_status() {
    let Some(cluster) = crd_cluster() else { return };
    create_namespace(cluster, "gw");
    let client = cluster.client().await;
    let gateway_ar = ar("gateway.networking.k8s.io", "Gateway", "gateways");
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), "gw", &gateway_ar);
    let gw: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "ephemera", "namespace": "gw"},
        "spec": {"gatewayClassName": "nginx", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }))
    .unwrap();
    gateways.create(&PostParams::default(), &gw).await.unwrap();
    let source = AddressSource::Gateway {
        namespace: "gw".into(),
        name: "ephemera".into(),
    };
    let waiter = {
        let (client, source) = (client.clone(), source.clone());
        tokio::spawn(async move {
            ephemera::dns::wait_for_address(&client, &source, Duration::from_secs(30)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    patch_status(
        &gateways,
        "ephemera",
        json!({"addresses": [{"type": "IPAddress", "value": "20.40.1.2"}]}),
    )
    .await;
    assert_eq!(
        waiter.await.unwrap().unwrap(),
        LbAddress::Ip("20.40.1.2".parse().unwrap())
    );
}

fn ar(group: &str, kind: &str, plural: &str) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn certificates(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ar("cert-manager.io", "Certificate", "certificates"),
    )
}

fn ready(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-28T10:00:00Z", "observedGeneration": 1})
}

/// A key pair and a self-signed certificate for `*.zone`, as cert-manager would store them.
fn tls_data(zone: &str) -> BTreeMap<String, k8s_openapi::ByteString> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![format!("*.{zone}")])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    BTreeMap::from([
        (
            "tls.crt".to_string(),
            k8s_openapi::ByteString(cert.pem().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            k8s_openapi::ByteString(key.serialize_pem().into_bytes()),
        ),
    ])
}

#[tokio::test]
async fn the_wildcard_option_makes_one_certificate_per_zone_and_copies_it_into_each_environment() {
    let Some(cluster) = crd_cluster() else { return };
    let client = cluster.client().await;
    let zone = "wild.acme.dev";
    // Two environments up on this cluster: one Certificate.
    for _ in ["pr-1", "pr-2"] {
        let c = tls::ensure_wildcard_certificate(&client, zone, "ephemera", Issuer::Letsencrypt)
            .await
            .unwrap();
        assert_eq!(c, WildcardCertificate::for_zone(zone).unwrap());
    }
    let certs = certificates(&client, CERTS_NAMESPACE);
    let all = certs.list(&ListParams::default()).await.unwrap().items;
    let ours: Vec<&DynamicObject> = all
        .iter()
        .filter(|c| c.data["spec"]["dnsNames"] == json!([format!("*.{zone}")]))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one Certificate per zone, not per environment"
    );
    assert_eq!(ours[0].metadata.name.as_deref(), Some(zone));
    assert_eq!(ours[0].data["spec"]["secretName"], "wild.acme.dev-tls");
    assert_eq!(ours[0].data["spec"]["issuerRef"]["kind"], "ClusterIssuer");

    // Before cert-manager stored the certificate there is nothing to copy.
    create_namespace(cluster, "env-a");
    create_namespace(cluster, "env-b");
    let early = tls::copy_wildcard_secret(&client, zone, "env-a", "cats-tls", "pr-1")
        .await
        .unwrap_err();
    assert!(
        early.to_string().contains("holds no certificate yet"),
        "{early}"
    );

    // cert-manager issues it: the Secret, then Ready.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), CERTS_NAMESPACE);
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("wild.acme.dev-tls".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(tls_data(zone)),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    patch_status(&certs, zone, json!({"conditions": [ready("True", "Ready", "Certificate is up to date and has not expired")]})).await;
    tls::wait_certificate(&client, CERTS_NAMESPACE, zone, Duration::from_secs(10))
        .await
        .unwrap();

    for (ns, env) in [("env-a", "pr-1"), ("env-b", "pr-2")] {
        tls::copy_wildcard_secret(&client, zone, ns, "cats-tls", env)
            .await
            .unwrap();
        let copy = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
            .get("cats-tls")
            .await
            .unwrap();
        assert_eq!(copy.data, secret.data);
        assert_eq!(copy.type_.as_deref(), Some("kubernetes.io/tls"));
        let labels = copy.metadata.labels.unwrap();
        assert_eq!(labels["ephemera.dev/environment"], env);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "ephemera");
    }
    let target: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "env-a");
    let before = target
        .get("cats-tls")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tls::copy_wildcard_secret(&client, zone, "env-a", "cats-tls", "pr-1")
        .await
        .unwrap();
    assert_eq!(
        target
            .get("cats-tls")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before,
        "an unchanged copy is not rewritten"
    );
    let theirs = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("theirs".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    target
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let refused = tls::copy_wildcard_secret(&client, zone, "env-a", "theirs", "pr-1")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not managed by ephemera"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_failed_acme_order_is_reported_with_cert_managers_reason() {
    let Some(cluster) = crd_cluster() else { return };
    create_namespace(cluster, "acme");
    let client = cluster.client().await;
    let certs = certificates(&client, "acme");
    let cert: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "cats", "namespace": "acme"},
        "spec": {"secretName": "cats-tls", "dnsNames": [HOST],
                 "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "ephemera"}},
    }))
    .unwrap();
    certs.create(&PostParams::default(), &cert).await.unwrap();

    // No cert-manager: the timeout names the Certificate and says nothing has happened.
    let err = tls::wait_certificate(&client, "acme", "cats", Duration::from_secs(2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Certificate acme/cats") && text.contains("no conditions yet"),
        "{text}"
    );

    // cert-manager's account of an order refused by Let's Encrypt.
    let limit = "429 urn:ietf:params:acme:error:rateLimited: too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s";
    let request_ar = ar(
        "cert-manager.io",
        "CertificateRequest",
        "certificaterequests",
    );
    let requests: Api<DynamicObject> = Api::namespaced_with(client.clone(), "acme", &request_ar);
    let cr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "cats-1", "namespace": "acme", "annotations": {
            "cert-manager.io/certificate-name": "cats", "cert-manager.io/certificate-revision": "1"}},
        "spec": {"request": "Y3Ny", "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "ephemera"}},
    }))
    .unwrap();
    let cr = requests.create(&PostParams::default(), &cr).await.unwrap();
    patch_status(&requests, "cats-1", json!({"conditions": [
        {"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "approved"},
        ready("False", "Failed", &format!("Failed to wait for order resource \"cats-1-123\" to become ready: order is in \"errored\" state: Failed to create Order: {limit}"))]})).await;
    let order_ar = ar("acme.cert-manager.io", "Order", "orders");
    let orders: Api<DynamicObject> = Api::namespaced_with(client.clone(), "acme", &order_ar);
    let order: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "acme.cert-manager.io/v1", "kind": "Order",
        "metadata": {"name": "cats-1-123", "namespace": "acme", "ownerReferences": [{
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "name": "cats-1",
            "uid": cr.metadata.uid.clone().unwrap(), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"request": "Y3Ny", "dnsNames": [HOST],
                 "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "ephemera"}},
    }))
    .unwrap();
    orders.create(&PostParams::default(), &order).await.unwrap();
    patch_status(
        &orders,
        "cats-1-123",
        json!({"state": "errored", "reason": format!("Failed to create Order: {limit}")}),
    )
    .await;

    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            tls::wait_certificate(&client, "acme", "cats", Duration::from_secs(30)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    patch_status(&certs, "cats", json!({
        "lastFailureTime": "2026-11-28T10:00:05Z", "failedIssuanceAttempts": 1,
        "conditions": [
            ready("False", "Failed", "The certificate request has failed to complete and will be retried"),
            {"type": "Issuing", "status": "False", "reason": "Failed", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-28T10:00:05Z",
             "message": format!("The certificate request has failed to complete and will be retried: {limit}")}]})).await;
    let started = std::time::Instant::now();
    let err = waiter.await.unwrap().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a failed issuance ends the wait at once"
    );
    assert!(matches!(err, DnsError::Certificate { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("Certificate acme/cats was not issued: "),
        "{text}"
    );
    assert!(text.contains("Order cats-1-123 is errored: Failed to create Order: 429 urn:ietf:params:acme:error:rateLimited"), "{text}");
    assert!(
        text.contains("CertificateRequest cats-1 Ready=False (Failed)"),
        "{text}"
    );
    assert!(
        !text.contains("Approved"),
        "an approval is not a reason: {text}"
    );
}

/// With a cluster per environment, a live environment's wildcard certificate is handed to a new
/// cluster before its Certificate exists, so cert-manager finds it valid and orders nothing.
#[tokio::test]
async fn a_live_environments_wildcard_certificate_seeds_a_new_cluster() {
    let Some(source_cluster) = crd_cluster() else {
        return;
    };
    let Some(target_cluster) = crate::common::testcluster::shared_cluster() else {
        return;
    };
    let (source, target) = (source_cluster.client().await, target_cluster.client().await);
    let zone = "seed.acme.dev";
    tls::ensure_wildcard_certificate(&source, zone, "ephemera", Issuer::Letsencrypt)
        .await
        .unwrap();
    let from: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(source.clone(), CERTS_NAMESPACE);
    let issued = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("seed.acme.dev-tls".into()),
            annotations: Some(BTreeMap::from([
                (
                    "cert-manager.io/issuer-name".to_string(),
                    "ephemera".to_string(),
                ),
                (
                    "cert-manager.io/issuer-kind".to_string(),
                    "ClusterIssuer".to_string(),
                ),
                ("cert-manager.io/alt-names".to_string(), format!("*.{zone}")),
                ("unrelated.example.com/x".to_string(), "y".to_string()),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(tls_data(zone)),
        ..Default::default()
    };
    from.create(&PostParams::default(), &issued).await.unwrap();
    let certs = certificates(&source, CERTS_NAMESPACE);
    let in_days = |d: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * d))
            .unwrap()
            .to_string()
    };
    patch_status(
        &certs,
        zone,
        json!({"renewalTime": in_days(2), "notAfter": in_days(60),
               "conditions": [ready("True", "Ready", "Certificate is up to date and has not expired")]}),
    )
    .await;
    let to: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(target.clone(), CERTS_NAMESPACE);
    let cleanup = || {
        target_cluster
            .kubectl()
            .args([
                "delete",
                "namespace",
                CERTS_NAMESPACE,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output()
    };

    assert!(
        !tls::seed_wildcard_secret(&source, &target, zone, Issuer::LetsencryptStaging)
            .await
            .unwrap(),
        "a certificate from another issuer is never handed over"
    );
    assert!(
        tls::seed_wildcard_secret(&source, &target, zone, Issuer::Letsencrypt)
            .await
            .unwrap()
    );
    let seeded = to.get("seed.acme.dev-tls").await.unwrap();
    assert_eq!(seeded.data, issued.data);
    let annotations = seeded.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["cert-manager.io/issuer-name"], "ephemera");
    assert!(!annotations.contains_key("unrelated.example.com/x"));
    assert!(
        !tls::seed_wildcard_secret(&source, &target, zone, Issuer::Letsencrypt)
            .await
            .unwrap(),
        "an existing Secret is never overwritten"
    );

    // Due for renewal within a day: the new cluster orders its own.
    to.delete("seed.acme.dev-tls", &Default::default())
        .await
        .unwrap();
    patch_status(&certs, zone, json!({"renewalTime": in_days(0)})).await;
    assert!(
        !tls::seed_wildcard_secret(&source, &target, zone, Issuer::Letsencrypt)
            .await
            .unwrap()
    );
    let _ = cleanup();
}

/// The DNS-01 identity's federated credentials, on the fake ARM.
mod federated_credentials {
    use super::*;
    use ephemera::dns::identity::{
        AUDIENCE, CERT_MANAGER_SUBJECT, FederatedCredentials, credential_name,
    };

    const IDENTITY_GROUP: &str = "rg-identities";
    const IDENTITY: &str = "cert-manager-dns";

    fn cluster_id(name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/rg-ephemera-{name}/providers/Microsoft.ContainerService/managedClusters/{name}",
            fake_arm::SUBSCRIPTION
        )
    }

    async fn setup() -> (FakeArm, FederatedCredentials) {
        let fake = FakeArm::start(Config::default()).await;
        let id = fake.seed_identity(IDENTITY_GROUP, IDENTITY);
        let mut cfg = aks_cfg();
        if let Some(d) = cfg.dns.as_mut() {
            d.identity = Some(id);
        }
        let probe = FakeProbe {
            vars: fake.env().into_iter().collect(),
            executables: Vec::new(),
            real_files: false,
        };
        let credentials = FederatedCredentials::new(&cfg, std::sync::Arc::new(probe))
            .expect("identity")
            .expect("configured")
            .with_timing(fast());
        (fake, credentials)
    }

    fn issuer(n: u32) -> String {
        format!(
            "https://westeurope.oic.prod-aks.azure.com/{}/{n}/",
            fake_arm::TENANT
        )
    }

    #[tokio::test]
    async fn one_credential_per_environment_kept_current_and_deleted() {
        let (fake, credentials) = setup().await;
        let id = cluster_id("pr-12");
        assert!(credentials.ensure("pr-12", &id, &issuer(1)).await.unwrap());
        let stored = fake.credentials(IDENTITY_GROUP, IDENTITY);
        assert_eq!(
            stored,
            BTreeMap::from([(
                credential_name("pr-12", &id),
                json!({"issuer": issuer(1), "subject": CERT_MANAGER_SUBJECT, "audiences": [AUDIENCE]})
            )])
        );
        let writes = || fake.with_state(|s| s.identity.writes);
        let before = writes();
        assert!(
            !credentials.ensure("pr-12", &id, &issuer(1)).await.unwrap(),
            "unchanged: no write"
        );
        assert_eq!(writes(), before);
        // A recreated cluster has a new issuer: the credential follows it in place.
        assert!(credentials.ensure("pr-12", &id, &issuer(2)).await.unwrap());
        let stored = fake.credentials(IDENTITY_GROUP, IDENTITY);
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[&credential_name("pr-12", &id)]["issuer"],
            issuer(2).as_str()
        );

        assert!(credentials.delete("pr-12", &id).await.unwrap());
        assert!(fake.credentials(IDENTITY_GROUP, IDENTITY).is_empty());
        assert!(
            !credentials.delete("pr-12", &id).await.unwrap(),
            "already gone is success"
        );
    }

    #[tokio::test]
    async fn a_cluster_without_an_oidc_issuer_is_reported_not_trusted() {
        let (fake, _credentials) = setup().await;
        let err = ephemera::dns::identity::issuer(&cluster_id("pr-14"), None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("run up again once AKS shows the issuer"),
            "{err}"
        );
        assert!(fake.credentials(IDENTITY_GROUP, IDENTITY).is_empty());
    }

    #[tokio::test]
    async fn concurrent_writes_refused_by_arm_are_tried_again() {
        let (fake, credentials) = setup().await;
        fake.refuse_credential_writes(3);
        let id = cluster_id("pr-13");
        assert!(credentials.ensure("pr-13", &id, &issuer(1)).await.unwrap());
        assert_eq!(fake.credentials(IDENTITY_GROUP, IDENTITY).len(), 1);
        assert_eq!(fake.calls("PUT", "/federatedIdentityCredentials/"), 4);
    }

    #[tokio::test]
    async fn the_identitys_limit_of_twenty_is_reported_as_arm_words_it() {
        let (_fake, credentials) = setup().await;
        for n in 0..20 {
            let name = format!("pr-{n}");
            credentials
                .ensure(&name, &cluster_id(&name), &issuer(n))
                .await
                .unwrap();
        }
        let err = credentials
            .ensure("pr-99", &cluster_id("pr-99"), &issuer(99))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("FederatedIdentityCredentialsLimitReached")
                && text.contains("maximum of 20")
                && text.contains(&credential_name("pr-99", &cluster_id("pr-99"))),
            "{text}"
        );
    }

    #[tokio::test]
    async fn gc_deletes_only_this_files_credentials_of_gone_environments() {
        let (fake, credentials) = setup().await;
        for name in ["pr-1", "pr-2"] {
            credentials
                .ensure(name, &cluster_id(name), &issuer(1))
                .await
                .unwrap();
        }
        // Another repository's pr-2 (another resource group), and one made by hand.
        let theirs = credential_name(
            "pr-2",
            &cluster_id("pr-2").replace("rg-ephemera-", "rg-other-"),
        );
        for name in [theirs.as_str(), "github-actions"] {
            fake.seed_credential(
                IDENTITY_GROUP,
                IDENTITY,
                name,
                json!({"issuer": issuer(7), "subject": "x", "audiences": [AUDIENCE]}),
            );
        }
        let live = BTreeSet::from(["pr-1".to_string()]);
        let dry = credentials
            .gc_orphans(&live, cluster_id, true)
            .await
            .unwrap();
        assert_eq!(
            dry,
            [(
                credential_name("pr-2", &cluster_id("pr-2")),
                "would-delete".to_string()
            )]
        );
        assert_eq!(fake.credentials(IDENTITY_GROUP, IDENTITY).len(), 4);
        let swept = credentials
            .gc_orphans(&live, cluster_id, false)
            .await
            .unwrap();
        assert_eq!(
            swept,
            [(
                credential_name("pr-2", &cluster_id("pr-2")),
                "deleted".to_string()
            )]
        );
        let left: BTreeSet<String> = fake
            .credentials(IDENTITY_GROUP, IDENTITY)
            .into_keys()
            .collect();
        assert_eq!(
            left,
            BTreeSet::from([
                credential_name("pr-1", &cluster_id("pr-1")),
                theirs,
                "github-actions".to_string()
            ])
        );
    }
}
