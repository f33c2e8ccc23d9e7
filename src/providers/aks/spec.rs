//! The desired state of an AKS environment, as ARM request bodies and resource ids.
//!
//! Everything here is pure: the same configuration and record always give the same bytes, so
//! `plan` can show the body and tests can snapshot it. The body is checked against the
//! `ManagedCluster` PUT schema of the 2026-08-01 swagger in this module's tests, and the fake ARM
//! server rejects any PUT that does not validate.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::config::AksConfig;
pub use crate::config::aks::{
    DEFAULT_RESOURCE_GROUP_PREFIX, MAX_NODE_RESOURCE_GROUP, dns_prefix, normalize_location,
    resource_group_name,
};
use crate::config::aks::{MAX_TAG_VALUE, MAX_TAGS};
use crate::providers::ProviderError;
use crate::record::Record;

/// The managedClusters api-version this provider speaks.
pub const MANAGED_CLUSTERS_API_VERSION: &str = "2026-08-01";
/// The Microsoft.Resources api-version used for resource groups.
pub const RESOURCE_GROUPS_API_VERSION: &str = "2021-04-01";
/// The name of the one (System) agent pool ephemera creates.
pub const SYSTEM_POOL_NAME: &str = "system";

/// Checks the parts of an AKS configuration that ARM would reject later, so bad input fails
/// before anything is created. `env_name` is the cluster name. The checks are configuration's
/// ([`crate::config::aks::validate`]); this gives them the provider's error.
///
/// # Errors
/// [`ProviderError::Config`] naming the offending field, e.g. `provider.aks.systemPool.autoscale`.
pub fn validate(cfg: &AksConfig, env_name: &str) -> Result<(), ProviderError> {
    crate::config::aks::validate(cfg, env_name).map_err(ProviderError::Config)
}

/// `/subscriptions/{s}/resourceGroups/{rg}` (no trailing slash).
pub fn resource_group_id(subscription: &str, resource_group: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{resource_group}")
}

/// The ARM id of the environment's managed cluster.
pub fn cluster_resource_id(subscription: &str, resource_group: &str, cluster_name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ContainerService/managedClusters/{cluster_name}",
        resource_group_id(subscription, resource_group)
    )
}

/// The tags ephemera writes on the cluster and the resource group: the file's `tags`, then the
/// record's ownership pairs (which win on a clash, though [`validate`] already forbids one).
///
/// # Errors
/// [`ProviderError::Config`] when the result breaks ARM's tag limits.
pub fn tags(cfg: &AksConfig, record: &Record) -> Result<BTreeMap<String, String>, ProviderError> {
    let mut tags = cfg.tags.clone();
    tags.extend(record.to_pairs());
    if tags.len() > MAX_TAGS {
        return Err(ProviderError::Config(format!(
            "provider.aks.tags: {} tags with the ownership tags; ARM allows at most {MAX_TAGS}",
            tags.len()
        )));
    }
    if let Some((k, v)) = tags.iter().find(|(_, v)| v.len() > MAX_TAG_VALUE) {
        return Err(ProviderError::Config(format!(
            "tag {k} would be {} characters long; ARM allows at most {MAX_TAG_VALUE} (value starts {:?})",
            v.len(),
            v.chars().take(40).collect::<String>()
        )));
    }
    Ok(tags)
}

/// The PUT body for `Microsoft.ContainerService/managedClusters/{cluster_name}`.
///
/// Keys are emitted in sorted order, so the body is byte-for-byte deterministic.
///
/// # Errors
/// [`ProviderError::Config`] when the configuration is invalid (see [`validate`]).
pub fn managed_cluster_body(
    cfg: &AksConfig,
    cluster_name: &str,
    record: &Record,
) -> Result<Value, ProviderError> {
    validate(cfg, cluster_name)?;
    let tags = tags(cfg, record)?;

    let pool = &cfg.system_pool;
    let mut agent_pool = json!({
        "name": SYSTEM_POOL_NAME,
        "mode": "System",
        "osType": "Linux",
        "type": "VirtualMachineScaleSets",
        "vmSize": pool.vm_size,
    });
    match &pool.autoscale {
        Some(a) => {
            agent_pool["enableAutoScaling"] = json!(true);
            agent_pool["minCount"] = json!(a.min);
            agent_pool["maxCount"] = json!(a.max);
            agent_pool["count"] = json!(pool.count.clamp(a.min, a.max));
        }
        None => {
            agent_pool["enableAutoScaling"] = json!(false);
            agent_pool["count"] = json!(pool.count);
        }
    }

    let mut properties = json!({
        "dnsPrefix": dns_prefix(cfg, cluster_name),
        "enableRBAC": true,
        "agentPoolProfiles": [agent_pool],
        "networkProfile": { "networkPlugin": cfg.network_plugin },
    });
    if let Some(v) = cfg.kubernetes_version.as_deref().filter(|v| !v.is_empty()) {
        properties["kubernetesVersion"] = json!(v);
    }
    if cfg.entra_id {
        properties["aadProfile"] = json!({ "managed": true, "enableAzureRBAC": true });
    }
    if cfg.dns.as_ref().is_some_and(|d| d.identity.is_some()) {
        // cert-manager signs in as the DNS-01 identity through workload identity, which trusts
        // the cluster's OIDC issuer.
        properties["oidcIssuerProfile"] = json!({ "enabled": true });
        properties["securityProfile"] = json!({ "workloadIdentity": { "enabled": true } });
    }

    let body = json!({
        "location": normalize_location(&cfg.location),
        "tags": tags,
        "identity": { "type": "SystemAssigned" },
        "sku": { "name": "Base", "tier": cfg.tier },
        "properties": properties,
    });
    Ok(sorted(body))
}

/// The PUT body for the environment's own resource group (`perEnvironment` strategy).
///
/// # Errors
/// As [`tags`].
pub fn resource_group_body(cfg: &AksConfig, record: &Record) -> Result<Value, ProviderError> {
    Ok(sorted(json!({
        "location": normalize_location(&cfg.location),
        "tags": tags(cfg, record)?,
    })))
}

/// Where the live cluster differs from the desired body, as human-readable field paths.
///
/// Only the fields ephemera sets are compared, never read-only or server-defaulted ones:
/// location, the file's tags (ownership tags are the record and are kept as they are),
/// kubernetesVersion, dnsPrefix, sku tier, identity type, network plugin, Entra ID, and the
/// System pool's size, count (only without autoscale) and autoscale bounds.
/// An empty list means no write is needed.
pub fn drift(desired: &Value, actual: &Value) -> Vec<String> {
    let mut drift = Drift::default();
    let loc = |v: &Value| {
        v.get("location")
            .and_then(Value::as_str)
            .map(|l| Value::String(normalize_location(l)))
    };
    drift.cmp(
        "location",
        loc(desired).as_ref(),
        loc(actual).as_ref(),
        false,
    );
    if let Some(Value::Object(tags)) = desired.get("tags") {
        for (k, v) in tags.iter().filter(|(k, _)| !k.starts_with("ephemera-")) {
            drift.cmp(
                &format!("tags.{k}"),
                Some(v),
                actual.pointer(&format!("/tags/{}", escape_pointer(k))),
                false,
            );
        }
    }
    for (path, pointer, ci) in COMPARED {
        drift.cmp(path, desired.pointer(pointer), actual.pointer(pointer), ci);
    }
    drift.system_pool(desired, actual);
    drift.out
}

/// The fields [`drift`] compares one to one: the path it reports, the JSON pointer, and whether
/// case is ignored.
const COMPARED: [(&str, &str, bool); 9] = [
    ("identity.type", "/identity/type", true),
    ("sku.tier", "/sku/tier", true),
    (
        "properties.kubernetesVersion",
        "/properties/kubernetesVersion",
        false,
    ),
    ("properties.dnsPrefix", "/properties/dnsPrefix", true),
    (
        "properties.networkProfile.networkPlugin",
        "/properties/networkProfile/networkPlugin",
        true,
    ),
    (
        "properties.aadProfile.managed",
        "/properties/aadProfile/managed",
        false,
    ),
    (
        "properties.aadProfile.enableAzureRBAC",
        "/properties/aadProfile/enableAzureRBAC",
        false,
    ),
    (
        "properties.oidcIssuerProfile.enabled",
        "/properties/oidcIssuerProfile/enabled",
        false,
    ),
    (
        "properties.securityProfile.workloadIdentity.enabled",
        "/properties/securityProfile/workloadIdentity/enabled",
        false,
    ),
];

/// The differences found so far, as `path: actual -> desired`.
#[derive(Default)]
struct Drift {
    out: Vec<String>,
}

impl Drift {
    /// Records `path` when the desired value `d` is set and `a` differs from it.
    fn cmp(&mut self, path: &str, d: Option<&Value>, a: Option<&Value>, ci: bool) {
        let Some(d) = d else { return };
        let same = match (d, a) {
            (Value::String(d), Some(Value::String(a))) if ci => d.eq_ignore_ascii_case(a),
            (d, Some(a)) => d == a,
            (_, None) => false,
        };
        if !same {
            self.out.push(format!(
                "{path}: {} -> {d}",
                a.map_or_else(|| "(unset)".to_string(), Value::to_string)
            ));
        }
    }

    /// The System pool's size, mode, and count or autoscale bounds.
    fn system_pool(&mut self, desired: &Value, actual: &Value) {
        let pool = |v: &Value| -> Option<Value> {
            v.pointer("/properties/agentPoolProfiles")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(SYSTEM_POOL_NAME))
                .cloned()
        };
        let Some(dp) = pool(desired) else { return };
        let Some(ap) = pool(actual) else {
            self.out.push(format!(
                "properties.agentPoolProfiles: pool {SYSTEM_POOL_NAME} is missing"
            ));
            return;
        };
        let autoscale = dp.get("enableAutoScaling") == Some(&Value::Bool(true));
        let mut fields = vec![
            ("vmSize", true),
            ("mode", true),
            ("enableAutoScaling", false),
        ];
        if autoscale {
            fields.extend([("minCount", false), ("maxCount", false)]);
        } else {
            fields.push(("count", false));
        }
        for (f, ci) in fields {
            let (d, a) = (dp.get(f), ap.get(f));
            // AKS omits enableAutoScaling when it is off.
            let a = if f == "enableAutoScaling" && a.is_none() {
                Some(&Value::Bool(false))
            } else {
                a
            };
            let path = format!("properties.agentPoolProfiles[{SYSTEM_POOL_NAME}].{f}");
            self.cmp(&path, d, a, ci);
        }
    }
}

/// The fields of `desired` that cannot change on an existing cluster, among those [`drift`]
/// reported: a PUT changing them would fail, so the caller reports them instead.
pub fn immutable_drift(drift: &[String]) -> Vec<&String> {
    const IMMUTABLE: [&str; 4] = [
        "location:",
        "properties.dnsPrefix:",
        "properties.networkProfile.networkPlugin:",
        "properties.agentPoolProfiles[system].vmSize:",
    ];
    drift
        .iter()
        .filter(|d| IMMUTABLE.iter().any(|p| d.starts_with(p)))
        .collect()
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Rebuilds a JSON value with object keys in sorted order, whatever serde_json's map keeps.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Autoscale, Cloud, NodePool, ResourceGroup, ResourceGroupStrategy};

    fn cfg() -> AksConfig {
        AksConfig {
            subscription: "00000000-0000-0000-0000-000000000001".into(),
            location: "West Europe".into(),
            resource_group: ResourceGroup {
                strategy: ResourceGroupStrategy::PerEnvironment,
                name: None,
            },
            kubernetes_version: Some("1.34".into()),
            system_pool: NodePool::default(),
            network_plugin: "azure".into(),
            tags: BTreeMap::from([
                ("team".into(), "cats".into()),
                ("cost-center".into(), "42".into()),
            ]),
            cloud: Cloud::default(),
            entra_id: false,
            dns: None,
            dns_prefix: None,
            tier: "Free".into(),
        }
    }

    fn record() -> Record {
        Record {
            name: "pr-42".into(),
            provider: "aks".into(),
            repository: Some("acme/cats".into()),
            pr: Some(42),
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-29T10:00:00Z".parse().unwrap(),
            created_by: Some("ci@acme".into()),
            version: "0.1.0".into(),
            url: None,
            env_file: Some("pr-aks".into()),
            pool: None,
        }
    }

    fn validator() -> crate::azure::swagger::PutValidator {
        crate::azure::swagger::PutValidator::load().unwrap()
    }

    #[test]
    fn body_validates_against_the_put_schema() {
        let v = validator();
        let mut c = cfg();
        for (entra, autoscale, version) in [
            (false, None, None),
            (true, Some(Autoscale { min: 1, max: 3 }), Some("1.34.2")),
        ] {
            c.entra_id = entra;
            c.system_pool.autoscale = autoscale;
            c.kubernetes_version = version.map(Into::into);
            let body = managed_cluster_body(&c, "pr-42", &record()).unwrap();
            v.check(&body).unwrap_or_else(|e| {
                panic!("{}\n{e}", serde_json::to_string_pretty(&body).unwrap())
            });
        }
    }

    #[test]
    fn validator_rejects_read_only_unknown_and_mistyped_fields() {
        let v = validator();
        let good = managed_cluster_body(&cfg(), "pr-42", &record()).unwrap();
        let cases: [(&str, Value); 5] = [
            ("/properties/provisioningState", json!("Succeeded")),
            ("/properties/fqdn", json!("x.hcp.westeurope.azmk8s.io")),
            ("/id", json!("/subscriptions/x")),
            ("/properties/agentPoolProfile", json!([])),
            ("/properties/enableRBAC", json!("yes")),
        ];
        for (pointer, value) in cases {
            let mut bad = good.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            bad.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(key.into(), value);
            assert!(v.check(&bad).is_err(), "{pointer} should be rejected");
        }
        let mut no_location = good.clone();
        no_location.as_object_mut().unwrap().remove("location");
        assert!(v.check(&no_location).is_err());
        let mut bad_pool = good.clone();
        bad_pool["properties"]["agentPoolProfiles"][0]["name"] = json!("System-Pool");
        assert!(v.check(&bad_pool).is_err());
        let mut bad_count = good.clone();
        bad_count["properties"]["agentPoolProfiles"][0]["count"] = json!("3");
        assert!(v.check(&bad_count).is_err());
        let mut nested_unknown = good;
        nested_unknown["properties"]["networkProfile"]["networkPlugins"] = json!("azure");
        assert!(v.check(&nested_unknown).is_err());
    }

    #[test]
    fn the_official_create_examples_validate() {
        let v = validator();
        for name in [
            "ManagedClustersCreate_Update.json",
            "ManagedClustersCreate_EnabledFIPS.json",
        ] {
            let ex = crate::azure::swagger::example(name).unwrap();
            v.check(&ex["parameters"]["parameters"])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn body_carries_config_and_ownership() {
        let mut c = cfg();
        c.system_pool = NodePool {
            vm_size: "Standard_B2s".into(),
            count: 1,
            autoscale: Some(Autoscale { min: 2, max: 5 }),
        };
        c.entra_id = true;
        c.tier = "Standard".into();
        let body = managed_cluster_body(&c, "pr-42", &record()).unwrap();
        assert_eq!(body["location"], "westeurope");
        assert_eq!(body["identity"]["type"], "SystemAssigned");
        assert_eq!(body["sku"]["tier"], "Standard");
        let p = &body["properties"];
        assert_eq!(p["kubernetesVersion"], "1.34");
        assert_eq!(p["dnsPrefix"], "pr-42");
        assert_eq!(p["networkProfile"]["networkPlugin"], "azure");
        assert_eq!(
            p["aadProfile"],
            json!({"managed": true, "enableAzureRBAC": true})
        );
        let pool = &p["agentPoolProfiles"][0];
        assert_eq!(pool["mode"], "System");
        assert_eq!(pool["vmSize"], "Standard_B2s");
        assert_eq!(
            (
                pool["enableAutoScaling"].clone(),
                pool["minCount"].clone(),
                pool["maxCount"].clone()
            ),
            (json!(true), json!(2), json!(5))
        );
        assert_eq!(
            pool["count"], 2,
            "count is clamped into the autoscale range"
        );
        let tags = body["tags"].as_object().unwrap();
        assert_eq!(tags["team"], "cats");
        let back: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(Record::from_pairs(&back).unwrap(), record());
    }

    #[test]
    fn body_is_deterministic_and_sorted() {
        let a = serde_json::to_string(&managed_cluster_body(&cfg(), "pr-42", &record()).unwrap())
            .unwrap();
        let b = serde_json::to_string(&managed_cluster_body(&cfg(), "pr-42", &record()).unwrap())
            .unwrap();
        assert_eq!(a, b);
        let v: Value = serde_json::from_str(&a).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(keys, want);
        assert!(a.find("\"identity\"").unwrap() < a.find("\"location\"").unwrap());
    }

    #[test]
    fn resource_group_names_follow_the_strategy() {
        let mut c = cfg();
        assert_eq!(resource_group_name(&c, "pr-42"), "rg-ephemera-pr-42");
        c.resource_group.name = Some("rg-previews".into());
        assert_eq!(resource_group_name(&c, "pr-42"), "rg-previews-pr-42");
        c.resource_group.strategy = ResourceGroupStrategy::Shared;
        assert_eq!(resource_group_name(&c, "pr-42"), "rg-previews");
        assert_eq!(
            cluster_resource_id("sub", "rg-previews", "pr-42"),
            "/subscriptions/sub/resourceGroups/rg-previews/providers/Microsoft.ContainerService/managedClusters/pr-42"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        type Mutation = Box<dyn Fn(&mut AksConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.location = " ".into()),
                "provider.aks.location",
            ),
            (
                Box::new(|c| c.network_plugin = "calico".into()),
                "provider.aks.networkPlugin",
            ),
            (Box::new(|c| c.tier = "Gold".into()), "provider.aks.tier"),
            (
                Box::new(|c| c.kubernetes_version = Some("latest".into())),
                "provider.aks.kubernetesVersion",
            ),
            (
                Box::new(|c| c.system_pool.count = 0),
                "provider.aks.systemPool.count",
            ),
            (
                Box::new(|c| c.system_pool.autoscale = Some(Autoscale { min: 3, max: 2 })),
                "provider.aks.systemPool.autoscale",
            ),
            (
                Box::new(|c| c.dns_prefix = Some("-x".into())),
                "provider.aks.dnsPrefix",
            ),
            (
                Box::new(|c| _ = c.tags.insert("a/b".into(), "x".into())),
                "provider.aks.tags.a/b",
            ),
            (
                Box::new(|c| _ = c.tags.insert("ephemera-pr".into(), "1".into())),
                "provider.aks.tags.ephemera-pr",
            ),
            (
                Box::new(|c| {
                    c.resource_group = ResourceGroup {
                        strategy: ResourceGroupStrategy::Shared,
                        name: None,
                    }
                }),
                "provider.aks.resourceGroup.name",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = cfg();
            mutate(&mut c);
            let err = managed_cluster_body(&c, "pr-42", &record())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{field}: ")), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = managed_cluster_body(&cfg(), "pr_42-", &record())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"pr_42-\""), "{err}");
    }

    #[test]
    fn long_names_give_a_valid_dns_prefix() {
        let name = format!("{}-{}", "a".repeat(53), "b".repeat(9));
        assert_eq!(dns_prefix(&cfg(), &name), "a".repeat(53));
        let mut c = cfg();
        c.resource_group = ResourceGroup {
            strategy: ResourceGroupStrategy::Shared,
            name: Some("rg".into()),
        };
        validate(&c, &name).unwrap();
    }

    #[test]
    fn the_node_resource_group_must_fit_in_80_characters() {
        let name = "a".repeat(50);
        let err = validate(&cfg(), &name).unwrap_err().to_string();
        assert!(
            err.starts_with("provider.aks.resourceGroup: the node resource group MC_rg-ephemera-"),
            "{err}"
        );
        assert!(err.contains("would be 127 characters"), "{err}");
    }

    #[test]
    fn drift_ignores_read_only_and_ownership_fields() {
        let desired = managed_cluster_body(&cfg(), "pr-42", &record()).unwrap();
        let mut actual = desired.clone();
        actual["properties"]["provisioningState"] = json!("Succeeded");
        actual["properties"]["currentKubernetesVersion"] = json!("1.34.2");
        actual["location"] = json!("westeurope");
        actual["tags"]["ephemera-expires-at"] = json!("2030-01-01T00:00:00Z");
        actual["tags"]["added-by-someone"] = json!("x");
        actual["sku"]["tier"] = json!("free");
        actual["properties"]["agentPoolProfiles"][0]
            .as_object_mut()
            .unwrap()
            .remove("enableAutoScaling");
        assert_eq!(drift(&desired, &actual), Vec::<String>::new());

        actual["sku"]["tier"] = json!("Standard");
        actual["tags"]["team"] = json!("dogs");
        actual["properties"]["agentPoolProfiles"][0]["count"] = json!(3);
        let d = drift(&desired, &actual);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(immutable_drift(&d).is_empty());
        actual["properties"]["dnsPrefix"] = json!("other");
        assert_eq!(immutable_drift(&drift(&desired, &actual)).len(), 1);
    }

    #[test]
    fn autoscaled_pool_count_is_not_drift() {
        let mut c = cfg();
        c.system_pool.autoscale = Some(Autoscale { min: 1, max: 4 });
        let desired = managed_cluster_body(&c, "pr-42", &record()).unwrap();
        let mut actual = desired.clone();
        actual["properties"]["agentPoolProfiles"][0]["count"] = json!(4);
        assert!(drift(&desired, &actual).is_empty());
    }

    #[test]
    fn drift_on_the_official_get_example_names_the_differences() {
        let get = crate::azure::swagger::example("ManagedClustersGet.json").unwrap();
        let actual = &get["responses"]["200"]["body"];
        let desired = managed_cluster_body(&cfg(), "pr-42", &record()).unwrap();
        let d = drift(&desired, actual);
        assert!(d.iter().any(|x| x.starts_with("location:")), "{d:?}");
        assert!(
            d.iter().any(|x| x.starts_with("properties.dnsPrefix:")),
            "{d:?}"
        );
    }
}
