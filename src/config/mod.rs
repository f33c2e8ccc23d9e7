//! Environment files: `apiVersion: ephemera.dev/v1alpha1`, `kind: Environment`.
//!
//! The types here are the schema. Unknown fields are errors (`deny_unknown_fields`), and every
//! error names the file, line, column and field path.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "ephemera.dev/v1alpha1";
pub const KIND: &str = "Environment";

/// One environment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Must be `ephemera.dev/v1alpha1`.
    pub api_version: String,
    /// Must be `Environment`.
    pub kind: String,
    pub metadata: Metadata,
    /// Which cluster to make.
    pub provider: ProviderConfig,
    #[serde(default)]
    pub naming: Naming,
    #[serde(default)]
    pub addons: Addons,
    pub app: App,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub tls: Tls,
    /// How long an environment lives before `gc` deletes it, e.g. `24h`, `4h`, `30m`.
    #[serde(default = "default_ttl")]
    pub ttl: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub notifications: Notifications,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHub>,
}

fn default_ttl() -> String {
    "24h".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The profile's name, recorded on every environment made from this file.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Exactly one provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ProviderConfig {
    Aks(AksConfig),
    Kind(KindConfig),
    Local(LocalConfig),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Aks(_) => "aks",
            ProviderConfig::Kind(_) => "kind",
            ProviderConfig::Local(_) => "local",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AksConfig {
    /// Subscription id; `AZURE_SUBSCRIPTION_ID` overrides it.
    pub subscription: String,
    /// Azure region, e.g. `westeurope`.
    pub location: String,
    pub resource_group: ResourceGroup,
    /// Kubernetes version, e.g. `1.34`; empty lets AKS pick its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default)]
    pub system_pool: NodePool,
    /// `azure`, `kubenet` or `none`.
    #[serde(default = "default_network_plugin")]
    pub network_plugin: String,
    /// Extra ARM tags on every resource (ownership tags are always added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub cloud: Cloud,
    /// Use Entra ID (AAD) integration: kubeconfigs come from listClusterUserCredential.
    #[serde(default)]
    pub entra_id: bool,
    /// Azure DNS zone for preview hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<AzureDns>,
    /// The DNS prefix for the API server; defaults to the cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_prefix: Option<String>,
    /// SKU tier: `Free`, `Standard` or `Premium`.
    #[serde(default = "default_tier")]
    pub tier: String,
}

fn default_network_plugin() -> String {
    "azure".into()
}
fn default_tier() -> String {
    "Free".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceGroup {
    /// `perEnvironment`: one group per environment, created and deleted with it.
    /// `shared`: an existing group named by `name`, never deleted.
    pub strategy: ResourceGroupStrategy,
    /// For `shared`: the group's name. For `perEnvironment`: a prefix (default `rg-ephemera`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResourceGroupStrategy {
    PerEnvironment,
    Shared,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    #[serde(default = "default_vm_size")]
    pub vm_size: String,
    #[serde(default = "default_count")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

impl Default for NodePool {
    fn default() -> Self {
        NodePool { vm_size: default_vm_size(), count: default_count(), autoscale: None }
    }
}

fn default_vm_size() -> String {
    "Standard_D4s_v5".into()
}
fn default_count() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
}

/// Which Azure cloud. Named clouds, or custom endpoints.
/// `AZURE_RESOURCE_MANAGER_ENDPOINT` and `AZURE_AUTHORITY_HOST` take precedence over both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cloud {
    /// `AzureCloud`, `AzureChinaCloud`, `AzureUSGovernment`, or `Custom`.
    #[serde(default = "default_cloud")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud { name: default_cloud(), resource_manager: None, authority_host: None }
    }
}

fn default_cloud() -> String {
    "AzureCloud".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDns {
    /// The zone, e.g. `previews.acme.dev`.
    pub zone: String,
    /// The zone's resource group.
    pub resource_group: String,
    /// Subscription of the zone; defaults to the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Record TTL in seconds.
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
}

fn default_dns_ttl() -> u32 {
    300
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindConfig {
    /// kind node image, e.g. `kindest/node:v1.34.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image: Option<String>,
    /// Host ports mapped into the control-plane node; defaults to 80 and 443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_port_mappings: Option<Vec<PortMapping>>,
    /// A registry mirror for containerd, e.g. `{host: docker.io, endpoint: http://mirror:5000}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_mirror: Option<RegistryMirror>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "TCP".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryMirror {
    pub host: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalConfig {
    /// Number of simulated (kwok) nodes.
    #[serde(default = "default_nodes")]
    pub nodes: u32,
    /// Where the control-plane binaries are; `EPHEMERA_LOCAL_BIN` overrides it. Defaults to the
    /// cache that `scripts/testcluster build` fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { nodes: default_nodes(), bin_dir: None }
    }
}

fn default_nodes() -> u32 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Naming {
    /// Prepended to every environment name: `<prefix>-pr-42`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addons {
    #[serde(default)]
    pub ingress: IngressAddon,
    #[serde(default)]
    pub cert_manager: Addon,
    #[serde(default)]
    pub argo_cd: Addon,
    #[serde(default)]
    pub argo_rollouts: Addon,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addon {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A pinned version from the add-on's definition; defaults to its newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Values passed to the add-on's overlay templates.
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
}

impl Default for Addon {
    fn default() -> Self {
        Addon { enabled: true, version: None, values: BTreeMap::new() }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressAddon {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub implementation: IngressImplementation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
}

impl Default for IngressAddon {
    fn default() -> Self {
        IngressAddon { enabled: true, implementation: IngressImplementation::default(), version: None, values: BTreeMap::new() }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IngressImplementation {
    /// Gateway API with NGINX Gateway Fabric (the default).
    #[default]
    GatewayApi,
    /// ingress-nginx, as the source pipeline used. Retired in March 2026: no more releases or
    /// security fixes.
    IngressNginx,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct App {
    /// The app's name, used for the Rollout, Services and route.
    pub name: String,
    /// Default image; `--image` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub canary: Canary,
    /// GitOps mode: an Argo CD Application replaces applying the Rollout directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOps>,
}

fn default_port() -> u16 {
    8080
}
fn default_replicas() -> u32 {
    2
}
fn default_health_path() -> String {
    "/healthz".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    #[serde(default = "default_steps")]
    pub steps: Vec<CanaryStep>,
}

impl Default for Canary {
    fn default() -> Self {
        Canary { steps: default_steps() }
    }
}

/// One canary step, as in an Argo Rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CanaryStep {
    /// Percentage of traffic (or replicas) on the canary, 1..100.
    SetWeight(u32),
    /// Pause; without a duration, until promoted.
    Pause(Pause),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pause {
    /// e.g. `30s`, `5m`; absent means until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// The source pipeline's steps: 20%, pause until promoted, 50%, pause 30s, then 100%.
pub fn default_steps() -> Vec<CanaryStep> {
    vec![
        CanaryStep::SetWeight(20),
        CanaryStep::Pause(Pause { duration: None }),
        CanaryStep::SetWeight(50),
        CanaryStep::Pause(Pause { duration: Some("30s".into()) }),
        CanaryStep::SetWeight(100),
    ]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitOps {
    pub repo_url: String,
    pub path: String,
    #[serde(default = "default_revision")]
    pub target_revision: String,
    /// The Helm/Kustomize parameter that receives the image tag.
    #[serde(default = "default_image_parameter")]
    pub image_parameter: String,
}

fn default_revision() -> String {
    "HEAD".into()
}
fn default_image_parameter() -> String {
    "image.tag".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routing {
    /// The domain preview hosts live under. Without one, a wildcard-DNS host is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    /// Host pattern; variables `env` and `baseDomain`.
    #[serde(default = "default_host")]
    pub host: String,
    /// Wildcard-DNS service used when there is no base domain: `<name>.<ip>.<service>`.
    #[serde(default = "default_wildcard")]
    pub wildcard_dns: String,
}

impl Default for Routing {
    fn default() -> Self {
        Routing { base_domain: None, host: default_host(), wildcard_dns: default_wildcard() }
    }
}

fn default_host() -> String {
    "{{env}}.{{baseDomain}}".into()
}
fn default_wildcard() -> String {
    "nip.io".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    #[serde(default)]
    pub issuer: Issuer,
    /// ACME account e-mail (Let's Encrypt issuers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Reuse one wildcard certificate per zone instead of one per environment.
    #[serde(default)]
    pub wildcard: bool,
    /// Expected pull requests per week, for the rate-limit warning in `plan`.
    #[serde(default = "default_prs_per_week")]
    pub expected_prs_per_week: u32,
}

impl Default for Tls {
    fn default() -> Self {
        Tls { issuer: Issuer::default(), email: None, wildcard: false, expected_prs_per_week: default_prs_per_week() }
    }
}

fn default_prs_per_week() -> u32 {
    20
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Issuer {
    Selfsigned,
    #[default]
    LetsencryptStaging,
    Letsencrypt,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// At most this many environments from this file at once; `up` refuses beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_environments: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notifications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<Slack>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slack {
    /// Name of the environment variable that holds the incoming-webhook URL. Never the URL.
    pub webhook_env: String,
    /// `success`, `failure`, or both.
    #[serde(default = "default_slack_on")]
    pub on: Vec<String>,
}

fn default_slack_on() -> Vec<String> {
    vec!["success".into(), "failure".into()]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHub {
    /// `owner/name`; defaults to `GITHUB_REPOSITORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// API base URL (GitHub Enterprise Server); defaults to `GITHUB_API_URL` or the public API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default = "yes")]
    pub deployments: bool,
    #[serde(default = "yes")]
    pub comment: bool,
}

/// A bad environment file. The message starts with `file:line:column: field.path:`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}{}: {path}{}{message}", .pos.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), if .path.is_empty() { "" } else { ": " })]
    Invalid { file: String, pos: Option<(u64, u64)>, path: String, message: String },
    #[error("{file}: {message}")]
    Read { file: String, message: String },
}
