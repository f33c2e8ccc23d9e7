//! What a provider would be asked to create, for `plan`: request bodies and configs, rendered
//! without touching any cluster or cloud.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::ProviderError;
use super::aks::spec;
use crate::config::{
    AksConfig, Environment, KindConfig, LocalConfig, ProviderConfig, ResourceGroupStrategy,
};
use crate::record::Record;
use crate::templates::Renderer;

/// The kind cluster config template.
pub const KIND_CLUSTER_TEMPLATE: &str = "providers/kind/cluster.yaml.hbs";
/// Where containerd looks for per-registry `hosts.toml` files in kind nodes.
pub const KIND_CERTS_D: &str = "/etc/containerd/certs.d";

/// Everything the provider would be asked for, as titled documents.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderPlan {
    /// `aks`, `kind` or `local`.
    pub kind: String,
    /// The cluster's name at the provider.
    pub cluster_name: String,
    /// (title, body): for AKS the ARM PUT requests, for kind the cluster config, for local the
    /// simulated nodes and where the control-plane binaries come from.
    pub documents: Vec<(String, Value)>,
}

/// Renders the provider's request for environment `name`.
///
/// # Errors
/// [`ProviderError::Config`] with a `provider.<kind>.<field>: ...` message when the
/// configuration cannot make this environment (for example an AKS node resource group name over
/// 80 characters, from the AKS provider's own checks); template errors for kind as
/// [`ProviderError::Config`] naming the template.
pub fn plan_request(
    env: &Environment,
    name: &str,
    record: &Record,
    renderer: &Renderer,
) -> Result<ProviderPlan, ProviderError> {
    let documents = match &env.provider {
        ProviderConfig::Aks(cfg) => aks(cfg, name, record)?,
        ProviderConfig::Kind(cfg) => kind(cfg, &super::kind::cluster_name(name), renderer)?,
        ProviderConfig::Local(cfg) => local(cfg),
        // Nothing is created: the cluster exists.
        ProviderConfig::Existing(_) => Vec::new(),
    };
    let cluster_name = match &env.provider {
        ProviderConfig::Kind(_) => super::kind::cluster_name(name),
        _ => name.to_string(),
    };
    let mut documents = documents;
    if !matches!(env.provider, ProviderConfig::Aks(_)) {
        // kind and local clusters carry the record in a ConfigMap (AKS: in the ARM tags above).
        documents.push((
            format!(
                "the environment's record: ConfigMap {}/{}",
                super::configmap::NAMESPACE,
                super::configmap::NAME
            ),
            super::configmap::desired(record),
        ));
    }
    Ok(ProviderPlan {
        kind: env.provider.kind().to_string(),
        cluster_name,
        documents,
    })
}

fn aks(
    cfg: &AksConfig,
    name: &str,
    record: &Record,
) -> Result<Vec<(String, Value)>, ProviderError> {
    let rg = spec::resource_group_name(cfg, name);
    let mut docs = Vec::new();
    let subscription = &cfg.subscription;
    if cfg.resource_group.strategy == ResourceGroupStrategy::PerEnvironment {
        docs.push((
            format!(
                "PUT {}?api-version={}",
                spec::resource_group_id(subscription, &rg),
                spec::RESOURCE_GROUPS_API_VERSION
            ),
            spec::resource_group_body(cfg, record)?,
        ));
    }
    docs.push((
        format!(
            "PUT {}?api-version={}",
            spec::cluster_resource_id(subscription, &rg, name),
            spec::MANAGED_CLUSTERS_API_VERSION
        ),
        spec::managed_cluster_body(cfg, name, record)?,
    ));
    Ok(docs)
}

/// The directory on the host that holds the kind nodes' registry mirror `hosts.toml` for kind
/// cluster `cluster`, mounted at [`KIND_CERTS_D`]`/<host>`. The kind provider writes the file
/// there before creating the cluster.
pub fn kind_mirror_dir(cluster: &str, host: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("{cluster}-kind"))
        .join("certs.d")
        .join(host)
}

/// containerd's `hosts.toml` sending pulls for the mirrored registry to `endpoint`.
pub fn kind_hosts_toml(host: &str, endpoint: &str) -> String {
    let server = if host == "docker.io" {
        "https://registry-1.docker.io".to_string()
    } else {
        format!("https://{host}")
    };
    format!(
        "server = {}\n\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
        toml_string(&server),
        toml_string(endpoint)
    )
}

fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The kind cluster config for the kind cluster `cluster` (see [`super::kind::cluster_name`]), as
/// YAML text. The node is labelled with the environment's name.
///
/// # Errors
/// A template error, as [`ProviderError::Config`].
pub fn kind_cluster_config(
    cfg: &KindConfig,
    cluster: &str,
    renderer: &Renderer,
) -> Result<String, ProviderError> {
    let env_name = cluster.strip_prefix(super::kind::PREFIX).unwrap_or(cluster);
    let ports: Vec<Value> = match &cfg.extra_port_mappings {
        Some(m) => m
            .iter()
            .map(|p| json!({"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol}))
            .collect(),
        None => [80, 443].iter().map(|p| json!({"containerPort": p, "hostPort": p, "protocol": "TCP"})).collect(),
    };
    let mirror = cfg.registry_mirror.as_ref().map(|m| {
        json!({
            "host": m.host,
            "endpoint": m.endpoint,
            "hostDir": kind_mirror_dir(cluster, &m.host).display().to_string(),
            "containerDir": format!("{KIND_CERTS_D}/{}", m.host),
        })
    });
    let data = json!({
        "name": cluster,
        "nodeImage": cfg.node_image,
        "nodeLabels": node_labels(env_name),
        "portMappings": ports,
        "registryMirror": mirror,
        "kubeadmConfigPatches": cfg.kubeadm_config_patches,
    });
    renderer
        .render(KIND_CLUSTER_TEMPLATE, &data)
        .map_err(|e| ProviderError::Config(e.to_string()))
}

fn node_labels(name: &str) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(crate::labels::MANAGED_BY.into(), crate::MANAGER.into());
    m.insert(crate::labels::ENVIRONMENT.into(), name.into());
    Value::Object(m)
}

fn kind(
    cfg: &KindConfig,
    cluster: &str,
    renderer: &Renderer,
) -> Result<Vec<(String, Value)>, ProviderError> {
    let text = kind_cluster_config(cfg, cluster, renderer)?;
    let config: Value = serde_saphyr::from_str(&text).map_err(|e| {
        ProviderError::Config(format!(
            "templates/{KIND_CLUSTER_TEMPLATE}: the rendered cluster config is not YAML: {e}"
        ))
    })?;
    let mut docs = vec![(
        format!("kind create cluster --name {cluster} --config <this document>"),
        config,
    )];
    if let Some(m) = &cfg.registry_mirror {
        docs.push((
            format!(
                "registry mirror for {}: {}/hosts.toml",
                m.host,
                kind_mirror_dir(cluster, &m.host).display()
            ),
            json!({ "hostsToml": kind_hosts_toml(&m.host, &m.endpoint) }),
        ));
    }
    Ok(docs)
}

fn local(cfg: &LocalConfig) -> Vec<(String, Value)> {
    use super::local::bins;
    let source = match &cfg.bin_dir {
        Some(d) => json!({ "from": "provider.local.binDir", "dirs": d, "override": bins::BIN_ENV }),
        None => json!({
            "from": "the scripts/testcluster cache",
            "override": bins::BIN_ENV,
            "build": bins::BUILD_COMMAND,
        }),
    };
    vec![(
        "local control plane: a real API server with simulated (kwok) nodes".to_string(),
        json!({
            "nodes": cfg.nodes,
            "components": {
                "kubernetes": bins::KUBERNETES_VERSION,
                "etcd": bins::ETCD_VERSION,
                "kwok": bins::KWOK_VERSION,
            },
            "binaries": source,
            "servesTraffic": false,
        }),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_escapes_the_endpoint() {
        let t = kind_hosts_toml("docker.io", "http://mirror:5000/\"x");
        assert!(
            t.starts_with("server = \"https://registry-1.docker.io\"\n"),
            "{t}"
        );
        assert!(t.contains("[host.\"http://mirror:5000/\\\"x\"]"), "{t}");
    }
}
