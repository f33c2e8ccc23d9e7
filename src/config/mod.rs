//! Environment files: `apiVersion: ephemera.dev/v1alpha1`, `kind: Environment`.
//!
//! The types here are the schema. Unknown fields are errors (`deny_unknown_fields`), and every
//! error names the file, line, column and field path.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod aks;
pub mod duration;
pub mod host;
mod positions;
mod regions;
mod registry;
pub mod schema;
mod strict;
mod validate;
pub(crate) use validate::is_guid;

pub use positions::{Pos, Positions};

pub const API_VERSION: &str = "ephemera.dev/v1alpha1";
pub const KIND: &str = "Environment";

/// One environment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Must be `ephemera.dev/v1alpha1`.
    #[schemars(extend("const" = "ephemera.dev/v1alpha1"))]
    pub api_version: String,
    /// Must be `Environment`.
    #[schemars(extend("const" = "Environment"))]
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
    /// The longest an environment may live from its creation, however often `up` and `deploy`
    /// move its expiry (each moves it to at least now + `ttl`), e.g. `7d`; at least `ttl`.
    /// Absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// A warm pool: clusters made ahead, with every add-on installed, that `up` claims instead
    /// of creating one (see docs/pool.md). Absent: no pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
    #[serde(default)]
    pub notifications: Notifications,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHub>,
    /// `ephemera release`: the GitOps repository a new image is committed to, and the Argo CD
    /// Application that syncs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
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
// One value per process: boxing the AKS variant would only complicate every match on it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ProviderConfig {
    Aks(AksConfig),
    Kind(KindConfig),
    Local(LocalConfig),
    /// A long-lived cluster ephemera never creates or deletes (production): `down` and `gc`
    /// refuse it.
    Existing(ExistingConfig),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Aks(_) => "aks",
            ProviderConfig::Kind(_) => "kind",
            ProviderConfig::Local(_) => "local",
            ProviderConfig::Existing(_) => "existing",
        }
    }
}

/// `provider.existing`: how to reach a cluster that exists without ephemera. Exactly one of
/// `kubeconfig` and `aksCluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExistingConfig {
    /// A kubeconfig file (relative paths are relative to the environment file); `--kubeconfig`
    /// overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig's context; default its current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// An AKS cluster's resource id
    /// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/managedClusters/…`):
    /// its user kubeconfig is fetched over ARM (listClusterUserCredential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks_cluster: Option<String>,
    #[serde(default)]
    pub cloud: Cloud,
    /// The namespace of the app's Rollout; default `app.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `release`: where `ephemera release` commits a new image, and what it waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    pub repository: ReleaseRepository,
    /// The file to change, relative to the repository root, e.g. `apps/cats/values.yaml`.
    pub file: String,
    /// A YAML key path in a Helm values file, e.g. `image.tag`. One of `key` and
    /// `kustomizeImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What `key` receives: `tag` (default; the digest for an image given by digest) or `image`
    /// (the whole reference).
    #[serde(default)]
    pub value: ReleaseValue,
    /// The `name` of the kustomization's `images:` entry whose `newTag` (or `digest`) is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize_image: Option<String>,
    /// `push` (default): commit to `repository.branch`. `pullRequest`: push a branch and open a
    /// pull request (GitHub), without waiting for a sync.
    #[serde(default)]
    pub mode: ReleaseMode,
    pub argocd: ArgoCdApplication,
    /// Commit author; default `ephemera <ephemera@users.noreply.github.com>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<CommitAuthor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRepository {
    /// The repository's HTTPS clone URL, without credentials (GitHub, Azure Repos, GitLab, …).
    pub url: String,
    #[serde(default = "default_release_branch")]
    pub branch: String,
    /// Name of the environment variable that holds the token. Never the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The user name sent with the token (basic auth): `x-access-token` (default) for GitHub,
    /// any name for Azure Repos, `oauth2` for GitLab.
    #[serde(default = "default_release_username")]
    pub username: String,
}

fn default_release_branch() -> String {
    "main".into()
}
fn default_release_username() -> String {
    "x-access-token".into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReleaseValue {
    #[default]
    Tag,
    Image,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReleaseMode {
    #[default]
    Push,
    PullRequest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgoCdApplication {
    /// The Application's name.
    pub application: String,
    /// Its namespace; default `argocd`.
    #[serde(default = "default_argocd_namespace")]
    pub namespace: String,
}

fn default_argocd_namespace() -> String {
    "argocd".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitAuthor {
    pub name: String,
    pub email: String,
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
        NodePool {
            vm_size: default_vm_size(),
            count: default_count(),
            autoscale: None,
        }
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
    /// Regions of this cloud that ephemera's embedded list does not know yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_locations: Vec<String>,
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud {
            name: default_cloud(),
            resource_manager: None,
            authority_host: None,
            extra_locations: Vec::new(),
        }
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
    /// Resource id of the user-assigned managed identity cert-manager signs in as for DNS-01
    /// (`addons.certManager.values.azureDNS.clientID` is its client id). With it, each cluster
    /// gets its OIDC issuer and workload identity enabled, and the identity one federated
    /// credential per environment, deleted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
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
    /// More kubeadm config patches for the control-plane node, each one YAML document as kind's
    /// `kubeadmConfigPatches` takes them (e.g. `failCgroupV1: false` on cgroup v1 hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubeadm_config_patches: Vec<String>,
    /// Images from the local container engine that `up` loads into the cluster
    /// (`kind load docker-image`), for images built on the runner and never pushed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_images: Vec<String>,
    /// How long kind waits for the control plane (`kind create cluster --wait`), e.g. `5m`
    /// (default), 30s to 1h. A run that finds the cluster already there waits as long for it;
    /// a cluster still not answering then was left half-made by a killed run and is made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
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
        LocalConfig {
            nodes: default_nodes(),
            bin_dir: None,
        }
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
        Addon {
            enabled: true,
            version: None,
            values: BTreeMap::new(),
        }
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
        IngressAddon {
            enabled: true,
            implementation: IngressImplementation::default(),
            version: None,
            values: BTreeMap::new(),
        }
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
    /// Pull credentials for a private registry: `up` keeps a `kubernetes.io/dockerconfigjson`
    /// Secret in the app's namespace, and the Rollout's pods reference it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
}

/// A private registry's pull credentials. The password or token itself is never in the file:
/// `passwordEnv` names the environment variable that holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    /// The registry host (and port), as in image references, e.g. `ghcr.io`.
    pub server: String,
    /// The user name (for GHCR with `GITHUB_TOKEN`: any non-empty name, e.g. the GitHub actor).
    pub username: String,
    /// Name of the environment variable that holds the password or token (GHCR: `GITHUB_TOKEN`).
    /// Never the value.
    pub password_env: String,
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
    /// How far `up` and `deploy` take a new image on a preview: `full` (default) promotes it to
    /// 100%; `steps` stops at the first pause so the canary steps can be rehearsed.
    #[serde(default, skip_serializing_if = "PreviewCanary::is_full")]
    pub preview: PreviewCanary,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            steps: default_steps(),
            preview: PreviewCanary::default(),
        }
    }
}

/// `app.canary.preview`: what `up` and `deploy` do with the canary steps of a preview.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PreviewCanary {
    /// The new image ends serving 100%: the Rollout is fully promoted, as `promote --full` does,
    /// and waited for until Healthy. A reviewer always sees the newest commit.
    #[default]
    Full,
    /// The canary stops at its first pause (e.g. 20%); `promote` moves it on.
    Steps,
}

impl PreviewCanary {
    pub fn is_full(&self) -> bool {
        *self == PreviewCanary::Full
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
        CanaryStep::Pause(Pause {
            duration: Some("30s".into()),
        }),
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
        Routing {
            base_domain: None,
            host: default_host(),
            wildcard_dns: default_wildcard(),
        }
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
        Tls {
            issuer: Issuer::default(),
            email: None,
            wildcard: false,
            expected_prs_per_week: default_prs_per_week(),
        }
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

/// The warm pool of an environment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    /// How many idle members `pool ensure` keeps ready, 1 to 50.
    pub size: u32,
    /// Members older than this are replaced by `pool ensure`, e.g. `24h`, `7d`.
    #[serde(default = "default_pool_max_age")]
    pub max_age: String,
    /// AKS only: idle members are stopped (the managed cluster `stop` operation) and started
    /// on claim, which costs only their disks while idle but adds the start to the claim.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

fn default_pool_max_age() -> String {
    "24h".into()
}

impl Pool {
    /// `maxAge` as a duration (validated when the file was loaded).
    pub fn max_age_duration(&self) -> std::time::Duration {
        duration::parse_lifetime(&self.max_age).unwrap_or(duration::MAX_TTL)
    }
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
    /// Which messages to send: events (`up`, `deploy`, `promote`, `abort`, `extend`, `down`,
    /// `gc`, `notify`, `release`) and outcomes (`success`, `failure`, `superseded`). A message is sent when
    /// its event is listed (or no event is) and its outcome is listed (or no outcome is):
    /// `[up, down]` is every outcome of those two, `[failure]` every failure, `[up, failure]`
    /// failed `up`s only. Default: every event and outcome.
    #[serde(default = "default_slack_on")]
    #[schemars(extend("items" = {"type": "string", "enum": [
        "up", "deploy", "promote", "abort", "extend", "down", "gc", "notify", "release",
        "success", "failure", "superseded"
    ]}))]
    pub on: Vec<String>,
}

/// The events `notifications.slack.on` can name: the commands that notify.
pub const SLACK_EVENTS: [&str; 9] = [
    "up", "deploy", "promote", "abort", "extend", "down", "gc", "notify", "release",
];
/// The outcomes `notifications.slack.on` can name. `superseded` is an `up` that gave way to a
/// newer run or a `down` (exit 4): neither a success nor a failure.
pub const SLACK_OUTCOMES: [&str; 3] = ["success", "failure", "superseded"];

fn default_slack_on() -> Vec<String> {
    SLACK_EVENTS.iter().map(|e| e.to_string()).collect()
}

impl Slack {
    /// Whether a message about `event` that ended in `outcome` is wanted (see [`Slack::on`]).
    pub fn wants(&self, event: &str, outcome: &str) -> bool {
        let listed = |names: &[&str], name: &str| {
            let mut mentioned = self.on.iter().filter(|o| names.contains(&o.as_str()));
            let any = mentioned.clone().next().is_some();
            !any || mentioned.any(|o| o == name)
        };
        listed(&SLACK_EVENTS, event) && listed(&SLACK_OUTCOMES, outcome)
    }
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

/// A bad environment file. The message starts with `file:line:column: field.path:`, all on one
/// line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}{}: {path}{}{message}", .pos.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), if .path.is_empty() { "" } else { ": " })]
    Invalid {
        file: String,
        pos: Option<(u64, u64)>,
        path: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Read { file: String, message: String },
}

/// Where an environment came from: the file name as given and the position of every field, so
/// errors found after parsing (here, in `plan`, in a provider) can still name line and column.
#[derive(Clone, Debug)]
pub struct Source {
    pub file: String,
    positions: Positions,
}

impl Source {
    /// A source for `text` read from `file` (which is only used in messages).
    pub fn new(file: &str, text: &str) -> Self {
        Source {
            file: file.to_string(),
            positions: Positions::index(text),
        }
    }

    /// An error about the field at `path` (e.g. `app.canary.steps[1].setWeight`), placed at that
    /// field, or at its nearest ancestor present in the file.
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            pos: self.positions.find(path),
            path: path.to_string(),
            message: one_line(&message.into()),
        }
    }

    /// Places a message of the form `field.path: text` (as other modules word their
    /// configuration errors) at its field; other messages are placed at the top of the file.
    pub fn locate(&self, message: &str) -> ConfigError {
        match message.split_once(": ") {
            Some((path, rest)) if is_field_path(path) => self.error(path, rest),
            _ => self.error("", message),
        }
    }
}

fn is_field_path(s: &str) -> bool {
    let first = s.split(['.', '[']).next().unwrap_or_default();
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'))
        && matches!(
            first,
            "apiVersion"
                | "kind"
                | "metadata"
                | "provider"
                | "naming"
                | "addons"
                | "app"
                | "routing"
                | "tls"
                | "ttl"
                | "maxLifetime"
                | "limits"
                | "pool"
                | "notifications"
                | "github"
                | "release"
        )
}

/// Control characters (line breaks included) escaped, so every error stays on one line; a long
/// run without spaces (a value pasted from a file) is cut, so an error never echoes megabytes.
fn one_line(s: &str) -> String {
    const LONGEST_RUN: usize = 120;
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    escaped
        .split(' ')
        .map(|run| cut(run, LONGEST_RUN))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An environment file, parsed and validated, with its [`Source`].
#[derive(Clone, Debug)]
pub struct Loaded {
    pub env: Environment,
    pub source: Source,
}

/// Reads and validates an environment file.
///
/// # Errors
/// [`ConfigError::Read`] when the file cannot be read; [`ConfigError::Invalid`] naming
/// `file:line:column: field.path` for syntax errors, unknown fields, wrong types and every
/// semantic check.
pub fn load(path: &Path) -> Result<Environment, ConfigError> {
    load_with_source(path).map(|l| l.env)
}

/// As [`load`], keeping the [`Source`] for errors found later.
///
/// # Errors
/// As [`load`].
pub fn load_with_source(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let read_error = |message: String| ConfigError::Read {
        file: file.clone(),
        message,
    };
    let bytes = read_limited(path, MAX_FILE_BYTES).map_err(read_error)?;
    let text =
        String::from_utf8(bytes).map_err(|_| read_error("not UTF-8 text, so not YAML".into()))?;
    let mut loaded = parse(&file, &text)?;
    if let (ProviderConfig::Local(l), Some(dir)) = (&mut loaded.env.provider, path.parent()) {
        l.bin_dir = l.bin_dir.take().map(|dirs| relative_to(dir, &dirs));
    }
    if let (ProviderConfig::Existing(e), Some(dir)) = (&mut loaded.env.provider, path.parent()) {
        e.kubeconfig = e.kubeconfig.take().map(|k| relative_to(dir, &k));
    }
    Ok(loaded)
}

/// `dirs` (separated by `:`) with each relative entry made relative to `base`, the environment
/// file's directory, instead of the current directory.
fn relative_to(base: &Path, dirs: &str) -> String {
    dirs.split(':')
        .map(|d| {
            if d.is_empty() || Path::new(d).is_absolute() {
                d.to_string()
            } else {
                base.join(d).display().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The largest environment file (or template) read: far above any real one, and small enough
/// that a wrong path (a log, an image, `/dev/zero`) is refused at once instead of read whole.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a regular file of at most `limit` bytes. Anything else is refused before it is opened
/// for reading: a FIFO would block forever, a device could be endless.
///
/// # Errors
/// A message for after the file's name: not found, not a regular file, too large, unreadable.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| io_message(&e))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if !kind.is_file() {
        return Err("is not a regular file (a FIFO, socket or device); give a file".into());
    }
    if meta.len() > limit {
        return Err(format!(
            "is {} bytes; files over {limit} bytes are refused",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| io_message(&e))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "is over {limit} bytes; files that large are refused"
        ));
    }
    Ok(bytes)
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not an environment file".into(),
        _ => e.to_string(),
    }
}

/// Parses and validates environment text; `file` names it in errors.
///
/// # Errors
/// As [`load`].
pub fn parse(file: &str, text: &str) -> Result<Loaded, ConfigError> {
    let source = Source::new(file, text);
    let at = |e: &serde_saphyr::Error, path: &str| {
        let message = saphyr_message(e, text);
        let pos = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line(), l.column()));
        // The parser places some errors by position only: name the field there (for a
        // duplicate key, the field it repeats).
        let duplicate = match inner_error(e) {
            serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => Some(k.as_str()),
            _ => None,
        };
        let path = match (pos, duplicate) {
            (Some(p), Some(key)) if path.is_empty() => {
                source.positions.duplicated(p, key).unwrap_or(path)
            }
            (Some(p), None) if path.is_empty() => source.positions.on_line(p).unwrap_or(path),
            _ => path,
        };
        ConfigError::Invalid {
            file: file.to_string(),
            pos: pos.or_else(|| source.positions.find(path)),
            path: path.to_string(),
            message: one_line(&message),
        }
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(source.error(
            "",
            format!("the file is empty; an environment starts with apiVersion: {API_VERSION} and kind: {KIND}"),
        ));
    }
    // First as plain data: syntax errors, and a wrong apiVersion or kind, come before any
    // complaint about fields that would only confuse when the file is not an Environment at all.
    let doc: serde_json::Value =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| at(&e, ""))?;
    let Some(map) = doc.as_object() else {
        return Err(source.error(
            "",
            format!("expected a mapping with apiVersion: {API_VERSION} and kind: {KIND}"),
        ));
    };
    for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match map.get(field) {
            Some(serde_json::Value::String(v)) if v == want => {}
            Some(v) => {
                return Err(source.error(field, format!("{v} is not supported; expected {want}")));
            }
            None => return Err(source.error(field, format!("missing; expected {field}: {want}"))),
        }
    }
    let mut path = String::new();
    let env: Environment =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        })
        .map_err(|e| {
            let p = if path == "." { "" } else { path.as_str() };
            at(&e, p)
        })?;
    let mut env = env;
    existing_installs_only_what_is_asked(&mut env, &doc);
    if let Some((path, message)) = strict::quoted_scalar(&doc)
        .or_else(|| strict::rewritten(&env, &doc))
        .or_else(|| strict::endpoint_beside_named_cloud(&env))
    {
        return Err(source.error(&path, message));
    }
    // Placed by its path as given: a key that is not a plain name (`app.env."bad key"`) is still
    // found on its own line.
    validate::validate(&env).map_err(|(path, message)| source.error(&path, message))?;
    // After validation, which explains a malformed name better than "not a region" would.
    if let ProviderConfig::Aks(aks) = &env.provider
        && let Some((path, message)) = regions::unknown_location(aks)
    {
        return Err(source.error(&path, message));
    }
    Ok(Loaded { env, source })
}

/// On a long-lived cluster (`provider.existing`) an add-on is installed only when the file names
/// it under `addons:` (previews get every add-on unless disabled): `up` there must change nothing
/// the file does not ask for.
fn existing_installs_only_what_is_asked(env: &mut Environment, doc: &serde_json::Value) {
    if !matches!(env.provider, ProviderConfig::Existing(_)) {
        return;
    }
    let named = |key: &str| doc.pointer(&format!("/addons/{key}")).is_some();
    let a = &mut env.addons;
    a.ingress.enabled &= named("ingress");
    a.cert_manager.enabled &= named("certManager");
    a.argo_cd.enabled &= named("argoCd");
    a.argo_rollouts.enabled &= named("argoRollouts");
}

/// How environment files are read: YAML 1.2 booleans only (`true`, `false`), so `enabled: yes`
/// or `on: off` is an error instead of a boolean that YAML 1.1 readers and people disagree on.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// The error inside the deserializer's alias and snippet wrappers.
fn inner_error(e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    inner
}

/// The deserializer's message without its location suffix or source snippet.
fn saphyr_message(e: &serde_saphyr::Error, text: &str) -> String {
    use serde_saphyr::MessageFormatter as _;
    let inner = inner_error(e);
    use serde_saphyr::Error as E;
    match inner {
        E::DuplicateMappingKey { key, .. } => {
            return match key {
                Some(k) => format!(
                    "the key {:?} appears twice in this mapping; keep one",
                    cut(k, 40)
                ),
                None => "a key appears twice in this mapping; keep one".into(),
            };
        }
        E::MultipleDocuments { .. } => {
            return "a second YAML document (after ---); an environment file holds exactly one"
                .into();
        }
        E::Budget { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            return "the file expands to too much data (anchors and aliases nested or repeated \
                    beyond ephemera's limits); write the values out"
                .into();
        }
        E::ExpectedMappingEndAfterEnumVariantValue { location } => {
            let extra = scalar_at(text, location.line(), location.column())
                .and_then(|s| s.split(':').next().map(|k| k.trim().to_string()))
                .filter(|k| !k.is_empty());
            return match extra {
                Some(k) => format!(
                    "{k:?} cannot stand beside the key before it: this mapping takes exactly one key"
                ),
                None => "this mapping takes exactly one key; another one follows it".into(),
            };
        }
        E::UnknownAnchor { .. } => return "an alias (*name) names no anchor (&name)".into(),
        E::InvalidBooleanStrict { location } => {
            let found = scalar_at(text, location.line(), location.column());
            let yaml11 = found.as_deref().is_some_and(|f| {
                matches!(
                    f.to_ascii_lowercase().as_str(),
                    "yes" | "no" | "on" | "off" | "y" | "n"
                )
            });
            return match found {
                Some(f) if yaml11 => format!(
                    "{f:?} is not true or false (a YAML 1.1 boolean, which ephemera does not read as one)"
                ),
                Some(f) => format!("{f:?} is not true or false"),
                None => "expected true or false".into(),
            };
        }
        _ => {}
    }
    if let serde_saphyr::Error::InvalidScalar { ty, location } = inner {
        let expected = match *ty {
            "u8" => "a whole number from 0 to 255".to_string(),
            "u16" => "a whole number from 0 to 65535".to_string(),
            "u32" => "a whole number from 0 to 4294967295".to_string(),
            "u64" => "a whole number from 0 to 18446744073709551615".to_string(),
            "bool" | "boolean" => "true or false".to_string(),
            other => format!("a value of type {other}"),
        };
        return match scalar_at(text, location.line(), location.column()) {
            Some(found) => format!("{found:?} is not {expected}"),
            None => format!("expected {expected}"),
        };
    }
    serde_saphyr::DefaultMessageFormatter
        .format_message(inner)
        .into_owned()
}

/// `s` cut to at most `max` characters, with an ellipsis when cut, for messages: a value from a
/// file may be megabytes long.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// The plain scalar starting at 1-based `line`:`column` of `text`, for messages (at most 40
/// characters).
fn scalar_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let rest: String = l
        .chars()
        .skip(usize::try_from(column).ok()?.checked_sub(1)?)
        .collect();
    let value = rest.split(" #").next().unwrap_or_default().trim();
    (!value.is_empty()).then(|| value.chars().take(40).collect())
}

impl Environment {
    /// The domain preview hosts live under: `routing.baseDomain`, else the AKS DNS zone.
    pub fn base_domain(&self) -> Option<&str> {
        self.routing
            .base_domain
            .as_deref()
            .or(match &self.provider {
                ProviderConfig::Aks(a) => a.dns.as_ref().map(|d| d.zone.as_str()),
                _ => None,
            })
    }

    /// The host pattern in force: `routing.host`, except that the default pattern becomes the
    /// wildcard-DNS pattern `{{env}}.{{ip}}.{{wildcardDns}}` when there is no base domain.
    pub fn host_pattern(&self) -> &str {
        if self.base_domain().is_none() && self.routing.host == default_host() {
            WILDCARD_HOST_PATTERN
        } else {
            &self.routing.host
        }
    }

    /// Whether the host needs the load balancer's IP, which exists only once `up` has made it.
    pub fn host_needs_ip(&self) -> bool {
        self.host_pattern().contains("ip}}")
    }

    /// The variables a host pattern may use.
    pub fn host_variables(&self, env_name: &str, pr: Option<u64>, ip: &str) -> serde_json::Value {
        let mut vars = serde_json::json!({
            "env": env_name,
            "ip": ip,
            "wildcardDns": self.routing.wildcard_dns,
        });
        if let Some(d) = self.base_domain() {
            vars["baseDomain"] = d.into();
        }
        if let Some(pr) = pr {
            vars["pr"] = pr.into();
        }
        vars
    }

    /// The TTL as a duration (validated when the file was loaded).
    pub fn ttl_duration(&self) -> std::time::Duration {
        duration::parse_ttl(&self.ttl).unwrap_or(duration::MIN_TTL)
    }

    /// `maxLifetime` as a duration (validated when the file was loaded); `None` without a cap.
    pub fn max_lifetime_duration(&self) -> Option<std::time::Duration> {
        let d = self.max_lifetime.as_deref()?;
        duration::parse_lifetime(d).ok()
    }
}

/// The host pattern used when there is no base domain.
pub const WILDCARD_HOST_PATTERN: &str = "{{env}}.{{ip}}.{{wildcardDns}}";

/// Renders a host pattern with [`Environment::host_variables`]: strict (an unknown variable is
/// an error), no escaping.
///
/// # Errors
/// A message naming the problem, for use after `routing.host:`.
pub fn render_host(pattern: &str, vars: &serde_json::Value) -> Result<String, String> {
    strict::plain_variables(pattern)?;
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.render_template(pattern, vars).map_err(|e| match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(v)) => {
            format!("unknown variable `{v}`; the host pattern may use env, pr, baseDomain (when set), ip and wildcardDns")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: t
provider:
  local: {}
app:
  name: cats
  canary:
    steps:
    - setWeight: 20
    - setWeight: 0
    - setWeight: 100
";

    fn err(text: &str) -> String {
        parse("env.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn shipped_environments_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("environments");
        for name in [
            "pr-aks.yaml",
            "pr-kind.yaml",
            "adhoc-aks.yaml",
            "local.yaml",
        ] {
            load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn semantic_errors_name_line_column_and_path() {
        assert_eq!(
            err(MINIMAL),
            "env.yaml:12:7: app.canary.steps[1].setWeight: must be 1..100"
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_place() {
        let e = err(&MINIMAL.replace("  name: cats\n", "  name: cats\n  colour: blue\n"));
        assert!(e.starts_with("env.yaml:9:3: app"), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = err(&MINIMAL.replace("  name: cats\n", "  name: cats\n  replicas: two\n"));
        assert!(e.starts_with("env.yaml:9:13: app.replicas: "), "{e}");
    }

    #[test]
    fn the_preview_canary_defaults_to_full_and_takes_only_full_or_steps() {
        let valid = MINIMAL.replace("setWeight: 0", "setWeight: 50");
        let env = parse("env.yaml", &valid).unwrap();
        assert_eq!(env.env.app.canary.preview, PreviewCanary::Full);
        let steps = valid.replace("  canary:\n", "  canary:\n    preview: steps\n");
        let env = parse("env.yaml", &steps).unwrap();
        assert_eq!(env.env.app.canary.preview, PreviewCanary::Steps);
        let e = err(&valid.replace("  canary:\n", "  canary:\n    preview: halfway\n"));
        assert!(e.starts_with("env.yaml:10:14: app.canary.preview: "), "{e}");
        assert!(e.contains("halfway") && e.contains("steps"), "{e}");
    }

    #[test]
    fn max_lifetime_is_optional_and_at_least_the_ttl() {
        let valid = MINIMAL.replace("setWeight: 0", "setWeight: 50");
        let env = parse("env.yaml", &valid).unwrap();
        assert_eq!(env.env.max_lifetime_duration(), None);
        let capped = format!("{valid}ttl: 1d\nmaxLifetime: 7d\n");
        let env = parse("env.yaml", &capped).unwrap();
        assert_eq!(
            env.env.max_lifetime_duration(),
            Some(std::time::Duration::from_secs(7 * 86400))
        );
        let short = format!("{valid}ttl: 1d\nmaxLifetime: 12h\n");
        assert_eq!(
            err(&short),
            "env.yaml:15:1: maxLifetime: \"12h\" is shorter than ttl \"1d\""
        );
        let bad = format!("{valid}maxLifetime: forever\n");
        let e = err(&bad);
        assert!(
            e.starts_with("env.yaml:14:1: maxLifetime: \"forever\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn wrong_api_version_comes_first() {
        let e = err(&MINIMAL
            .replace("v1alpha1", "v9")
            .replace("name: cats", "nom: cats"));
        assert_eq!(
            e,
            "env.yaml:1:1: apiVersion: \"ephemera.dev/v9\" is not supported; expected ephemera.dev/v1alpha1"
        );
    }

    #[test]
    fn syntax_errors_and_empty_files() {
        assert!(
            err("# nothing\n\n").starts_with("env.yaml: the file is empty"),
            "{}",
            err("#\n")
        );
        let e = err("apiVersion: [\n");
        assert!(e.starts_with("env.yaml:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_relative_bin_dir_is_relative_to_the_environment_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env.yaml");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/local.yaml");
        let text = std::fs::read_to_string(shipped).unwrap().replace(
            "    nodes: 2\n",
            "    nodes: 2\n    binDir: k8s/bin:/opt/bin\n",
        );
        assert!(text.contains("binDir"));
        std::fs::write(&file, text).unwrap();
        let env = load(&file).unwrap();
        let ProviderConfig::Local(l) = env.provider else {
            panic!("a local environment")
        };
        assert_eq!(
            l.bin_dir.unwrap(),
            format!("{}:/opt/bin", dir.path().join("k8s/bin").display())
        );
    }
}
