//! The AKS section's names and limits, checked before anything is created: the resource group
//! and node resource group names, the API server DNS prefix, the System pool, the tags, and the
//! DNS-01 identity.
//!
//! Pure functions of the configuration (and the environment name), used by validation when a
//! file is loaded (with a sample name) and by the AKS provider with the real one.

use super::{AksConfig, Environment, ResourceGroupStrategy};

/// The default resource group prefix for the `perEnvironment` strategy.
pub const DEFAULT_RESOURCE_GROUP_PREFIX: &str = "rg-ephemera";

/// ARM allows at most this many tags on a resource.
pub(crate) const MAX_TAGS: usize = 50;
const MAX_TAG_NAME: usize = 512;
pub(crate) const MAX_TAG_VALUE: usize = 256;
/// AKS: dnsPrefix is 1-54 characters.
const MAX_DNS_PREFIX: usize = 54;
/// AKS: cluster names are 1-63 characters.
const MAX_CLUSTER_NAME: usize = 63;
/// ARM: resource group names are 1-90 characters.
const MAX_RESOURCE_GROUP: usize = 90;
/// AKS names the node resource group `MC_<rg>_<cluster>_<location>`, at most 80 characters.
pub const MAX_NODE_RESOURCE_GROUP: usize = 80;

/// The resource group that holds the environment's cluster.
///
/// `perEnvironment`: `<prefix>-<env>`, the prefix being `resourceGroup.name` or `rg-ephemera`.
/// `shared`: the configured name ([`validate`] rejects a shared strategy without one; should it
/// reach here anyway, the default prefix alone is returned rather than an empty name).
pub fn resource_group_name(cfg: &AksConfig, env_name: &str) -> String {
    match cfg.resource_group.strategy {
        ResourceGroupStrategy::PerEnvironment => {
            let prefix = cfg.resource_group.name.as_deref().filter(|p| !p.is_empty());
            format!(
                "{}-{env_name}",
                prefix.unwrap_or(DEFAULT_RESOURCE_GROUP_PREFIX)
            )
        }
        ResourceGroupStrategy::Shared => cfg
            .resource_group
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_RESOURCE_GROUP_PREFIX.to_string()),
    }
}

/// The API server DNS prefix: `dnsPrefix` from the file, else the cluster name cut to AKS's 54
/// characters (trailing hyphens dropped so the prefix still ends alphanumeric).
pub fn dns_prefix(cfg: &AksConfig, cluster_name: &str) -> String {
    match &cfg.dns_prefix {
        Some(p) => p.clone(),
        None => {
            let cut: String = cluster_name.chars().take(MAX_DNS_PREFIX).collect();
            cut.trim_end_matches(['-', '_']).to_string()
        }
    }
}

/// ARM answers locations in their short lower-case form (`West Europe` → `westeurope`).
pub fn normalize_location(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Checks the parts of an AKS configuration that ARM would reject later, so bad input fails
/// before anything is created. `env_name` is the cluster name.
///
/// # Errors
/// A message starting with the offending field, e.g. `provider.aks.systemPool.autoscale: ...`.
pub fn validate(cfg: &AksConfig, env_name: &str) -> Result<(), String> {
    names(cfg, env_name)?;
    cluster(cfg)?;
    system_pool(cfg)?;
    tags(cfg)
}

/// `Err("provider.aks.<field>: <msg>")`.
fn bad(field: &str, msg: String) -> Result<(), String> {
    Err(format!("provider.aks.{field}: {msg}"))
}

/// The subscription, location and every name derived from the environment name.
fn names(cfg: &AksConfig, env_name: &str) -> Result<(), String> {
    if cfg.subscription.trim().is_empty() {
        return bad("subscription", "must not be empty".into());
    }
    if cfg.location.trim().is_empty() {
        return bad("location", "must not be empty".into());
    }
    if !is_cluster_name(env_name) {
        return Err(format!(
            "environment name {env_name:?} is not a valid AKS cluster name (1-{MAX_CLUSTER_NAME} letters, digits, \
             '-' or '_', starting and ending with a letter or digit)"
        ));
    }
    if cfg.resource_group.strategy == ResourceGroupStrategy::Shared
        && cfg.resource_group.name.as_deref().is_none_or(str::is_empty)
    {
        return bad(
            "resourceGroup.name",
            "the shared strategy needs the name of an existing resource group".into(),
        );
    }
    let rg = resource_group_name(cfg, env_name);
    if !is_resource_group_name(&rg) {
        return bad(
            "resourceGroup.name",
            format!(
                "resource group name {rg:?} is invalid (1-{MAX_RESOURCE_GROUP} letters, digits, '_', '-', '.', '(' or ')', \
                 not ending with '.')"
            ),
        );
    }
    let node_rg = format!("MC_{rg}_{env_name}_{}", normalize_location(&cfg.location));
    if node_rg.len() > MAX_NODE_RESOURCE_GROUP {
        return bad(
            "resourceGroup",
            format!(
                "the node resource group {node_rg} would be {} characters; ARM allows {MAX_NODE_RESOURCE_GROUP} \
                 (shorten resourceGroup.name, naming.prefix or the environment name)",
                node_rg.len()
            ),
        );
    }
    let prefix = dns_prefix(cfg, env_name);
    if !is_dns_prefix(&prefix) {
        return bad(
            "dnsPrefix",
            format!(
                "{prefix:?} is invalid (1-{MAX_DNS_PREFIX} letters, digits or '-', starting and ending with a letter or digit)"
            ),
        );
    }
    Ok(())
}

/// The cluster's network plugin, tier and Kubernetes version.
fn cluster(cfg: &AksConfig) -> Result<(), String> {
    if !matches!(cfg.network_plugin.as_str(), "azure" | "kubenet" | "none") {
        return bad(
            "networkPlugin",
            format!(
                "{:?} is not one of azure, kubenet, none",
                cfg.network_plugin
            ),
        );
    }
    if !matches!(cfg.tier.as_str(), "Free" | "Standard" | "Premium") {
        return bad(
            "tier",
            format!("{:?} is not one of Free, Standard, Premium", cfg.tier),
        );
    }
    if let Some(v) = &cfg.kubernetes_version
        && !v.is_empty()
        && !is_kubernetes_version(v)
    {
        return bad(
            "kubernetesVersion",
            format!("{v:?} is not <major>.<minor> or <major>.<minor>.<patch>"),
        );
    }
    Ok(())
}

/// The System pool's VM size and its count or autoscale bounds.
fn system_pool(cfg: &AksConfig) -> Result<(), String> {
    let pool = &cfg.system_pool;
    if pool.vm_size.trim().is_empty() {
        return bad("systemPool.vmSize", "must not be empty".into());
    }
    match &pool.autoscale {
        None if !(1..=1000).contains(&pool.count) => {
            return bad(
                "systemPool.count",
                format!("{} is outside 1..=1000 for a System pool", pool.count),
            );
        }
        Some(a) if a.min < 1 || a.max > 1000 || a.min > a.max => {
            return bad(
                "systemPool.autoscale",
                format!(
                    "min {} / max {} must satisfy 1 <= min <= max <= 1000 for a System pool",
                    a.min, a.max
                ),
            );
        }
        _ => {}
    }
    Ok(())
}

/// The file's tags, within ARM's limits and clear of the ownership prefix.
fn tags(cfg: &AksConfig) -> Result<(), String> {
    for (k, v) in &cfg.tags {
        if k.is_empty()
            || k.len() > MAX_TAG_NAME
            || k.contains(['<', '>', '%', '&', '\\', '?', '/'])
        {
            return bad(
                &format!("tags.{k}"),
                format!("ARM tag names are 1-{MAX_TAG_NAME} characters without < > % & \\ ? /"),
            );
        }
        if v.len() > MAX_TAG_VALUE {
            return bad(
                &format!("tags.{k}"),
                format!("ARM tag values are at most {MAX_TAG_VALUE} characters"),
            );
        }
        if k.to_ascii_lowercase().starts_with("ephemera-") {
            return bad(
                &format!("tags.{k}"),
                "the ephemera- prefix is reserved for ownership tags".into(),
            );
        }
    }
    Ok(())
}

/// Checks a user-assigned identity's resource id; the message starts with the field path.
///
/// # Errors
/// Anything but `/subscriptions/<id>/resourceGroups/<group>/providers/
/// Microsoft.ManagedIdentity/userAssignedIdentities/<name>`.
pub fn check_identity_id(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    let ok = id.starts_with('/')
        && parts.len() == 8
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && parts[4].eq_ignore_ascii_case("providers")
        && parts[5].eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && parts[6].eq_ignore_ascii_case("userAssignedIdentities")
        && [parts[1], parts[3], parts[7]].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "provider.aks.dns.identity: {id:?} is not the resource id of a user-assigned managed identity \
             (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)"
        ))
    }
}

/// The client id of the managed identity cert-manager uses for DNS-01, from
/// `addons.certManager.values.azureDNS.clientID`.
pub fn dns01_client_id(env: &Environment) -> Option<&str> {
    env.addons
        .cert_manager
        .values
        .get("azureDNS")?
        .get("clientID")?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn is_cluster_name(s: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=MAX_CLUSTER_NAME).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && ends_ok(s.chars().next())
        && ends_ok(s.chars().last())
}

fn is_dns_prefix(s: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=MAX_DNS_PREFIX).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && ends_ok(s.chars().next())
        && ends_ok(s.chars().last())
}

fn is_resource_group_name(s: &str) -> bool {
    (1..=MAX_RESOURCE_GROUP).contains(&s.len())
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
        && !s.ends_with('.')
}

fn is_kubernetes_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}
