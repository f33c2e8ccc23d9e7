//! Preview hosts on AKS, end to end through the real binary (issue 9's acceptance):
//! - with an Azure DNS zone, `up` reports `https://pr-42.<zone>` and the zone holds exactly one A
//!   record pointing at the load balancer, with our metadata and TTL; a rerun writes nothing, a
//!   new load-balancer address updates the record in place, a record in the way that is not ours
//!   stops `up` before anything is created, and `down` deletes the record;
//! - `gc` deletes the record of an environment deleted behind ephemera's back (its resource
//!   group, with the cluster in it, deleted by hand through ARM), and never touches records
//!   without our metadata or those of another environment file sharing the zone;
//! - with the zone's DNS-01 identity (`provider.aks.dns.identity`), each cluster gets its OIDC
//!   issuer and workload identity enabled and the identity one federated credential trusting that
//!   issuer for cert-manager; a rerun writes none, `down` deletes it, and `gc` deletes the one of
//!   the environment deleted by hand;
//! - without a zone the host is the wildcard-DNS one, `pr-42.<ip>.<routing.wildcardDns>`, the
//!   app's route and Certificate are rewritten with it, and no DNS call is made.
//!
//! ARM (clusters, groups and the DNS zone) is the fake on 127.0.0.1; every cluster's kubeconfig
//! is a real control plane's with the Argo Rollouts controller. The add-ons are Gateway API (NGINX
//! Gateway Fabric), cert-manager and Argo Rollouts. The plane runs no pods and no cloud
//! controller, so the test stands in where a real AKS cluster's controllers would act, and
//! nowhere else:
//! - the cloud controller and NGINX Gateway Fabric: the Gateway gets `status.addresses`
//!   ([`LB_IP`]) and the Accepted/Programmed conditions, the GatewayClass Accepted, written through
//!   the status subresource as they would;
//! - cert-manager: the ClusterIssuer and the preview's Certificate get Ready=True (ACME itself is
//!   not reachable here), and its admission webhook, which the API server cannot reach without a
//!   pod network, is set to `failurePolicy: Ignore` through the add-on's own `simulated-webhook`
//!   overlay (a `--templates` override applies it to aks as well as local);
//! - the load balancer: an HTTPS proxy on 127.0.0.1 (`ALL_PROXY`) answers the URL probe of
//!   `https://<host>/healthz`, which needs no DNS. `NO_PROXY` keeps the fake ARM direct.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ephemera::dns::identity::{AUDIENCE, CERT_MANAGER_SUBJECT, credential_name};
use serde_json::{Value, json};

use crate::common::fake_arm::{Config, FakeArm, SUBSCRIPTION};
use crate::common::lifecycle::{Sandbox, aks_env, describe, group_of, manifests};
use crate::common::stand_ins::{Controllers, LoadBalancer, webhook_override};
use crate::common::testcluster::TestCluster;

/// The address the stand-in cloud controller gives the Gateway's load balancer.
const LB_IP: &str = "20.50.60.70";
/// The address it gives a load balancer that was recreated.
const NEW_LB_IP: &str = "20.50.60.71";
/// The Azure DNS zone ephemera keeps records in, and its resource group.
const ZONE: &str = "previews.acme.test";
const ZONE_GROUP: &str = "rg-zones";
/// The DNS-01 managed identity cert-manager signs in as, its resource group and client id.
const IDENTITY: &str = "cert-manager-dns";
const IDENTITY_GROUP: &str = "rg-identities";
const IDENTITY_CLIENT_ID: &str = "55555555-5555-5555-5555-555555555555";
/// `routing.wildcardDns` of the no-zone environment file (the default is nip.io).
const WILDCARD_DNS: &str = "sslip.io";

const ADDONS: &str = "  ingress:
    implementation: gateway-api
  certManager: {}
  argoCd:
    enabled: false
";

/// An AKS environment file named `profile`: with the zone, or with the wildcard-DNS fallback.
fn env_file(profile: &str, zone: bool) -> String {
    let base = aks_env(profile, ADDONS, "24h");
    let anchor = "    tags:\n      team: cats\n";
    assert_eq!(
        base.matches(anchor).count(),
        1,
        "aks_env changed; update this test:\n{base}"
    );
    if zone {
        let identity = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{IDENTITY_GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{IDENTITY}"
        );
        assert_eq!(base.matches("  certManager: {}\n").count(), 1, "{base}");
        base.replace(
            anchor,
            &format!(
                "{anchor}    dns:\n      zone: {ZONE}\n      resourceGroup: {ZONE_GROUP}\n      ttl: 120\n      identity: {identity}\n"
            ),
        )
        .replace(
            "  certManager: {}\n",
            &format!("  certManager:\n    values:\n      azureDNS:\n        clientID: {IDENTITY_CLIENT_ID}\n"),
        )
    } else {
        format!("{base}routing:\n  wildcardDns: {WILDCARD_DNS}\n")
    }
}

/// The A record sets of the zone that hold `ip`, by name.
fn a_records_holding(fake: &FakeArm, ip: &str) -> Vec<String> {
    fake.dns_records(ZONE_GROUP, ZONE)
        .into_iter()
        .filter(|(kind, _)| kind == "A")
        .filter(|(_, name)| {
            fake.dns_record(ZONE_GROUP, ZONE, "A", name)
                .and_then(|r| r.pointer("/properties/ARecords").cloned())
                .is_some_and(|a| {
                    a.as_array()
                        .is_some_and(|a| a.iter().any(|r| r["ipv4Address"] == ip))
                })
        })
        .map(|(_, name)| name)
        .collect()
}

/// The DNS-01 identity's federated credentials: name → issuer.
fn credentials(fake: &FakeArm) -> Vec<(String, String)> {
    fake.credentials(IDENTITY_GROUP, IDENTITY)
        .into_iter()
        .map(|(name, p)| {
            assert_eq!(p["subject"], CERT_MANAGER_SUBJECT, "{name}: {p:#}");
            assert_eq!(p["audiences"], json!([AUDIENCE]), "{name}: {p:#}");
            (name, p["issuer"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// The federated credential ephemera keeps for environment `name` of profile `dns`.
fn credential_of(name: &str) -> String {
    credential_name(
        name,
        &format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{name}",
            group_of("dns", name)
        ),
    )
}

/// Deletes resource group `group`, and the cluster in it, the way someone would in the portal:
/// DELETE, then the operation polled until it is done.
async fn delete_group_by_hand(fake: &FakeArm, group: &str) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let token = fake.issue_token();
    let url = format!(
        "{}/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}?api-version=2021-04-01",
        fake.url
    );
    let r = http
        .delete(&url)
        .bearer_auth(&token)
        .header("x-ms-client-request-id", "aks-dns-e2e-by-hand")
        .send()
        .await
        .expect("DELETE the group");
    assert_eq!(r.status().as_u16(), 202, "DELETE {url}");
    let poll = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location to poll")
        .to_string();
    for _ in 0..20 {
        let r = http
            .get(&poll)
            .bearer_auth(&token)
            .header("x-ms-client-request-id", "aks-dns-e2e-by-hand")
            .send()
            .await
            .expect("poll the deletion");
        if r.status().as_u16() != 202 {
            assert!(r.status().is_success(), "deleting {group}: {}", r.status());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deleting {group} never finished");
}

/// A test's world: its control plane, the fake ARM serving the plane's kubeconfig for every
/// cluster, the load balancer, the stand-in controllers, and a sandbox whose runs use the
/// templates override and reach the load balancer through `ALL_PROXY`.
struct Stage {
    plane: TestCluster,
    fake: FakeArm,
    lb: LoadBalancer,
    controllers: Controllers,
    sb: Sandbox,
    templates: PathBuf,
    manifests: String,
    rt: tokio::runtime::Runtime,
}

impl Stage {
    /// `None` after a loud message when the control-plane binaries are missing.
    fn start(name: &str) -> Option<Stage> {
        let plane = TestCluster::start_with_rollouts(name)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let kubeconfig =
            std::fs::read_to_string(plane.kubeconfig()).expect("the plane's kubeconfig");
        let fake = rt.block_on(FakeArm::start(Config {
            polls: 2,
            kubeconfig: Some(kubeconfig),
            ..Config::default()
        }));
        let wildcard = format!("*.{ZONE}");
        let lb = rt.block_on(LoadBalancer::start(&[wildcard.as_str()]));
        let controllers = Controllers::start(&rt, rt.block_on(plane.client()), LB_IP);
        // The zone holds records that are not ours (one where pr-44's would go), and one of
        // another environment file sharing the zone whose environment is gone: none may ever be
        // touched.
        fake.seed_zone(ZONE_GROUP, ZONE);
        fake.seed_identity(IDENTITY_GROUP, IDENTITY);
        fake.seed_record(
            ZONE_GROUP,
            ZONE,
            "A",
            "www",
            json!({"TTL": 3600, "ARecords": [{"ipv4Address": "203.0.113.10"}]}),
        );
        fake.seed_record(
            ZONE_GROUP,
            ZONE,
            "A",
            "pr-44",
            json!({"TTL": 60, "ARecords": [{"ipv4Address": "203.0.113.44"}]}),
        );
        fake.seed_record(
            ZONE_GROUP,
            ZONE,
            "A",
            "pr-7",
            json!({"TTL": 300, "ARecords": [{"ipv4Address": "203.0.113.7"}], "metadata": {
                "ephemera-managed-by": "ephemera", "ephemera-environment": "pr-7",
                "ephemera-env-file": "other-profile"}}),
        );
        let sb = Sandbox::aks(&fake);
        // The API server of the test plane cannot reach cert-manager's webhook.
        let templates = webhook_override(sb.path(), &["local", "aks"]);
        Some(Stage {
            plane,
            fake,
            lb,
            controllers,
            sb,
            templates,
            manifests: manifests(),
            rt,
        })
    }

    /// The two records that are not ours to change, as ARM answers them (etag included).
    fn foreign_records(&self) -> [Value; 3] {
        ["www", "pr-44", "pr-7"].map(|n| {
            self.fake
                .dns_record(ZONE_GROUP, ZONE, "A", n)
                .unwrap_or_else(|| panic!("record {n} is gone"))
        })
    }

    /// Writes environment file `profile`.yaml (see [`env_file`]); returns its path.
    fn env(&self, profile: &str, zone: bool) -> String {
        let path = self
            .sb
            .write(&format!("{profile}.yaml"), &env_file(profile, zone));
        path.to_str().expect("UTF-8 path").to_string()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.sb
            .command(args)
            .env("EPHEMERA_TEMPLATES", &self.templates)
            .env("ALL_PROXY", &self.lb.proxy)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .expect("ephemera runs")
    }

    /// Runs with `--output json`, asserts exit 0, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let o = self.run(&all);
        assert!(o.status.success(), "{}", describe(&all, &o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", describe(&all, &o)))
    }

    fn up_args<'a>(&'a self, env: &'a str, pr: &'a str) -> [&'a str; 12] {
        [
            "up",
            "--env",
            env,
            "--pr",
            pr,
            "--image",
            "ghcr.io/acme/cats:v1",
            "--manifests",
            &self.manifests,
            "--insecure",
            "--timeout",
            "60s",
        ]
    }

    fn up(&self, env: &str, pr: &str) -> Value {
        let t = Instant::now();
        let report = self.json(&self.up_args(env, pr));
        eprintln!("aks dns e2e: up of pr-{pr} took {:.1?}", t.elapsed());
        report
    }

    /// Gives the load balancer address `ip`, and waits until the Gateway shows it.
    fn move_load_balancer(&self, ip: &str) {
        self.controllers.set_address(ip);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.plane.kubectl_ok(&[
                "get",
                "gateways.gateway.networking.k8s.io",
                "-n",
                "nginx-gateway",
                "ephemera",
                "-o",
                "jsonpath={.status.addresses[0].value}",
            ]);
            if out.trim() == ip {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Gateway never showed {ip}: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The app's object `kind` `cats/cats` on the plane.
    fn app_object(&self, kind: &str) -> Value {
        let out = self
            .plane
            .kubectl_ok(&["get", kind, "-n", "cats", "cats", "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{kind} JSON ({e}): {out}"))
    }
}

#[test]
fn aks_dns_records_follow_up_down_and_gc_through_the_cli() {
    let Some(stage) = Stage::start("aks-dns") else {
        return;
    };
    let t0 = Instant::now();
    let fake = &stage.fake;
    let before = stage.foreign_records();
    let zoned = stage.env("dns", true);
    let zoned = zoned.as_str();

    // up with the zone: the URL is the zone's host, reported after the probe answered through
    // the load balancer, and the zone holds exactly one A record at the load balancer's address.
    let host = format!("pr-42.{ZONE}");
    let first = stage.up(zoned, "42");
    assert_eq!(
        first["url"],
        format!("https://{host}").as_str(),
        "{first:#}"
    );
    let steps: Vec<&str> = first["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    // Workload identity before the add-ons; the certificate once the app's route exists.
    assert_eq!(
        steps.join(" "),
        "cluster kubeconfig identity addons dns app certificate report",
        "{first:#}"
    );
    stage.lb.assert_probed(&host);
    // DNS-01 through workload identity: the cluster has its OIDC issuer and workload identity,
    // and the identity trusts exactly that issuer for cert-manager.
    let spec = fake
        .cluster_spec(&group_of("dns", "pr-42"), "pr-42")
        .expect("the cluster");
    assert_eq!(
        spec["properties"]["oidcIssuerProfile"],
        json!({"enabled": true})
    );
    assert_eq!(
        spec["properties"]["securityProfile"],
        json!({"workloadIdentity": {"enabled": true}})
    );
    let trusted = credentials(fake);
    assert_eq!(trusted.len(), 1, "{trusted:?}");
    assert_eq!(trusted[0].0, credential_of("pr-42"));
    assert!(
        trusted[0].1.starts_with("https://")
            && trusted[0].1.ends_with(&format!(
                "/{}-pr-42/",
                group_of("dns", "pr-42").to_lowercase()
            )),
        "the cluster's own issuer: {trusted:?}"
    );
    // cert-manager signs in as the identity (this file's issuer is self-signed; the DNS-01
    // solver's rendering is tested in dns.rs).
    let sa: Value = serde_json::from_str(&stage.plane.kubectl_ok(&[
        "get",
        "serviceaccount",
        "-n",
        "cert-manager",
        "cert-manager",
        "-o",
        "json",
    ]))
    .expect("ServiceAccount JSON");
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"], IDENTITY_CLIENT_ID,
        "{sa:#}"
    );
    let credential_writes = || fake.with_state(|s| s.identity.writes);
    let writes_after_first = credential_writes();
    let marked = stage.controllers.marked();
    for id in [
        "GatewayClass nginx",
        "Gateway nginx-gateway/ephemera",
        "ClusterIssuer ephemera",
        "Certificate cats/cats",
    ] {
        assert!(marked.contains(id), "{id} was never marked: {marked:?}");
    }
    assert_eq!(a_records_holding(fake, LB_IP), ["pr-42"]);
    let record = fake
        .dns_record(ZONE_GROUP, ZONE, "A", "pr-42")
        .expect("the A record pr-42");
    let props = &record["properties"];
    assert_eq!(props["TTL"], 120, "{record:#}");
    assert_eq!(
        props["ARecords"],
        json!([{ "ipv4Address": LB_IP }]),
        "{record:#}"
    );
    assert_eq!(props["fqdn"], format!("{host}.").as_str(), "{record:#}");
    let meta = &props["metadata"];
    assert_eq!(meta["ephemera-managed-by"], "ephemera", "{record:#}");
    assert_eq!(meta["ephemera-environment"], "pr-42", "{record:#}");
    assert_eq!(meta["ephemera-env-file"], "dns", "{record:#}");
    assert!(
        meta["ephemera-created-at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{record:#}"
    );
    let named: Vec<(String, String)> = fake
        .dns_records(ZONE_GROUP, ZONE)
        .into_iter()
        .filter(|(_, n)| n == "pr-42")
        .collect();
    assert_eq!(named, [("A".to_string(), "pr-42".to_string())]);
    fake.with_dns(|d| {
        assert_eq!(d.creates.get(&format!("A {host}")), Some(&1), "{d:?}");
        assert_eq!(d.updates.get(&format!("A {host}")), None, "{d:?}");
    });
    let tags = fake
        .cluster_tags(&group_of("dns", "pr-42"), "pr-42")
        .expect("the cluster");
    assert_eq!(
        tags["ephemera-url"],
        format!("https://{host}").as_str(),
        "{tags:#}"
    );

    // A rerun converges without a DNS write; when the load balancer gets a new address, the
    // record follows it in place.
    let writes = || fake.calls("PUT", "/dnszones/") + fake.calls("DELETE", "/dnszones/");
    let before_rerun = writes();
    let again = stage.up(zoned, "42");
    assert_eq!(again["url"], first["url"], "{again:#}");
    assert_eq!(
        writes(),
        before_rerun,
        "a rerun at the same address writes no record"
    );
    stage.move_load_balancer(NEW_LB_IP);
    let moved = stage.up(zoned, "42");
    assert_eq!(moved["url"], first["url"], "{moved:#}");
    assert!(a_records_holding(fake, LB_IP).is_empty());
    assert_eq!(a_records_holding(fake, NEW_LB_IP), ["pr-42"]);
    fake.with_dns(|d| {
        assert_eq!(d.creates.get(&format!("A {host}")), Some(&1), "{d:?}");
        assert_eq!(d.updates.get(&format!("A {host}")), Some(&1), "{d:?}");
    });
    assert_eq!(
        credential_writes(),
        writes_after_first,
        "reruns write no federated credential"
    );
    let moved_record = fake
        .dns_record(ZONE_GROUP, ZONE, "A", "pr-42")
        .expect("the A record pr-42");
    assert_eq!(
        moved_record["properties"]["metadata"]["ephemera-created-at"], meta["ephemera-created-at"],
        "an update keeps the creation time: {moved_record:#}"
    );

    // A record in the way that is not ours stops up before anything is created, naming it.
    let args = stage.up_args(zoned, "44");
    let o = stage.run(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&args, &o));
    assert!(
        err.contains(&format!("pr-44.{ZONE}")) && err.contains("not managed by ephemera"),
        "{}",
        describe(&args, &o)
    );
    assert_eq!(fake.cluster_state(&group_of("dns", "pr-44"), "pr-44"), None);
    assert!(!fake.group_exists(&group_of("dns", "pr-44")));

    // down deletes the record with the cluster; records that are not this environment's stay.
    let gone = stage.json(&["down", "--env", zoned, "--pr", "42"]);
    assert_eq!(gone["outcome"], "deleted", "{gone:#}");
    assert_eq!(fake.dns_record(ZONE_GROUP, ZONE, "A", "pr-42"), None);
    assert!(a_records_holding(fake, NEW_LB_IP).is_empty());
    assert_eq!(
        stage.foreign_records(),
        before,
        "down changed a record not its own"
    );
    fake.with_dns(|d| assert_eq!(d.deletes.get(&format!("A {host}")), Some(&1), "{d:?}"));
    assert_eq!(
        credentials(fake),
        [],
        "down deletes the federated credential"
    );

    // An environment deleted behind ephemera's back (its group with the cluster, by hand) leaves
    // its record; gc deletes that record and nothing else.
    let other = stage.up(zoned, "43");
    assert_eq!(
        other["url"],
        format!("https://pr-43.{ZONE}").as_str(),
        "{other:#}"
    );
    assert_eq!(a_records_holding(fake, NEW_LB_IP), ["pr-43"]);
    let group = group_of("dns", "pr-43");
    stage.rt.block_on(delete_group_by_hand(fake, &group));
    assert_eq!(fake.cluster_state(&group, "pr-43"), None);
    assert!(!fake.group_exists(&group));
    assert!(fake.dns_record(ZONE_GROUP, ZONE, "A", "pr-43").is_some());
    assert_eq!(credentials(fake).len(), 1);
    let dry = stage.json(&["gc", "--env", zoned, "--dry-run"]);
    assert_eq!(
        dry["dnsOrphans"],
        json!(["pr-43 (pr-43): would-delete"]),
        "{dry:#}"
    );
    assert_eq!(
        dry["credentialOrphans"],
        json!([format!("{}: would-delete", credential_of("pr-43"))]),
        "{dry:#}"
    );
    assert_eq!(credentials(fake).len(), 1, "a dry run deletes nothing");
    assert!(fake.dns_record(ZONE_GROUP, ZONE, "A", "pr-43").is_some());
    let swept = stage.json(&["gc", "--env", zoned]);
    assert_eq!(swept["examined"], 0, "{swept:#}");
    assert_eq!(
        swept["dnsOrphans"],
        json!(["pr-43 (pr-43): deleted"]),
        "{swept:#}"
    );
    assert_eq!(fake.dns_record(ZONE_GROUP, ZONE, "A", "pr-43"), None);
    assert_eq!(
        swept["credentialOrphans"],
        json!([format!("{}: deleted", credential_of("pr-43"))]),
        "{swept:#}"
    );
    assert_eq!(credentials(fake), []);
    assert_eq!(
        stage.foreign_records(),
        before,
        "gc changed a record without our metadata, or another file's"
    );
    assert_eq!(
        fake.dns_records(ZONE_GROUP, ZONE),
        ["pr-44", "pr-7", "www"].map(|n| ("A".to_string(), n.to_string()))
    );
    eprintln!("aks dns e2e: zone lifecycle took {:.1?}", t0.elapsed());
}

#[test]
fn aks_without_a_zone_uses_the_wildcard_dns_host_through_the_cli() {
    let Some(stage) = Stage::start("aks-wildcard") else {
        return;
    };
    let t0 = Instant::now();
    let fake = &stage.fake;
    let before = stage.foreign_records();
    let wild = stage.env("wild", false);
    let wild = wild.as_str();

    // The host embeds the load balancer's IP, known only once up has waited for it; the app's
    // route and certificate are rewritten with it, and no DNS call is made.
    let report = stage.up(wild, "42");
    let host = format!("pr-42.{LB_IP}.{WILDCARD_DNS}");
    assert_eq!(
        report["url"],
        format!("https://{host}").as_str(),
        "{report:#}"
    );
    stage.lb.assert_probed(&host);
    let route = stage.app_object("httproute");
    assert_eq!(route["spec"]["hostnames"], json!([host]), "{route:#}");
    let cert = stage.app_object("certificates.cert-manager.io");
    assert_eq!(cert["spec"]["dnsNames"], json!([host]), "{cert:#}");
    let tags = fake
        .cluster_tags(&group_of("wild", "pr-42"), "pr-42")
        .expect("the cluster");
    assert_eq!(tags["ephemera-url"], report["url"], "{tags:#}");
    let listed = stage.json(&["list", "--env", wild]);
    assert_eq!(listed[0]["url"], report["url"], "{listed:#}");
    let gone = stage.json(&["down", "--env", wild, "--pr", "42"]);
    assert_eq!(gone["outcome"], "deleted", "{gone:#}");
    assert_eq!(fake.calls("GET", "/dnszones/"), 0, "no zone, no DNS calls");
    assert_eq!(fake.calls("PUT", "/dnszones/"), 0, "no zone, no DNS calls");
    assert_eq!(
        fake.calls("DELETE", "/dnszones/"),
        0,
        "no zone, no DNS calls"
    );
    assert_eq!(stage.foreign_records(), before);
    eprintln!("aks dns e2e: wildcard lifecycle took {:.1?}", t0.elapsed());
}

/// With a zone and a host pattern that embeds the load balancer's IP, `down` cannot know the
/// host (the IP is only known while the cluster runs); it still deletes the environment's
/// records, found by their metadata, and leaves every other record alone.
#[test]
fn down_deletes_the_records_of_a_host_that_embeds_the_ip() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let fake = rt.block_on(FakeArm::start(Config::default()));
    fake.seed_zone(ZONE_GROUP, ZONE);
    let ours = |env: &str, profile: &str| {
        json!({"TTL": 120, "ARecords": [{"ipv4Address": LB_IP}], "metadata": {
            "ephemera-managed-by": "ephemera", "ephemera-environment": env,
            "ephemera-env-file": profile}})
    };
    // What up wrote at two load-balancer addresses, another environment's record, another
    // file's record for the same environment name, and a record that is not ours.
    for (name, body) in [
        ("pr-45.20.50.60.70", ours("pr-45", "dnsip")),
        ("pr-45.20.50.60.71", ours("pr-45", "dnsip")),
        ("pr-46.20.50.60.70", ours("pr-46", "dnsip")),
        ("pr-45.10.0.0.1", ours("pr-45", "other-profile")),
        (
            "pr-45",
            json!({"TTL": 60, "ARecords": [{"ipv4Address": "203.0.113.45"}]}),
        ),
    ] {
        fake.seed_record(ZONE_GROUP, ZONE, "A", name, body);
    }
    let sb = Sandbox::aks(&fake);
    let env = sb.write(
        "dnsip.yaml",
        &format!(
            "{}routing:\n  host: \"{{{{env}}}}.{{{{ip}}}}.{{{{baseDomain}}}}\"\n",
            env_file("dnsip", true)
        ),
    );
    let env = env.to_str().expect("UTF-8 path");
    let args = ["down", "--env", env, "--pr", "45", "--output", "json"];
    // Run on a thread of its own: the fake ARM answers on this runtime.
    let o = rt.block_on(async {
        let mut c = sb.command(&args);
        tokio::task::spawn_blocking(move || c.output().expect("ephemera runs"))
            .await
            .expect("the run")
    });
    assert!(o.status.success(), "{}", describe(&args, &o));
    let gone: Value = serde_json::from_slice(&o.stdout).expect("down --output json");
    assert_eq!(gone["outcome"], "already-gone", "{gone:#}");
    let mut left: Vec<String> = fake
        .dns_records(ZONE_GROUP, ZONE)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    left.sort();
    assert_eq!(left, ["pr-45", "pr-45.10.0.0.1", "pr-46.20.50.60.70"]);
}
