//! Semantic checks on a parsed environment. Each failure is `(field path, message)`; the loader
//! turns the path into a line and column.

use super::duration;
use super::*;
use crate::names::{ImageRef, is_dns_label, is_dns_name, is_env_var_name};

type Check = Result<(), (String, String)>;

fn fail(path: impl Into<String>, message: impl Into<String>) -> Check {
    Err((path.into(), message.into()))
}

/// The longest `naming.prefix`: room is left for `-pr-` and a nine-digit PR number within
/// [`crate::names::MAX_NAME_LEN`].
pub const MAX_PREFIX_LEN: usize = crate::names::MAX_NAME_LEN - 13;
/// `<app>-canary` must stay a 63-character label.
const MAX_APP_NAME_LEN: usize = 63 - "-canary".len();

pub(super) fn validate(env: &Environment) -> Check {
    if !is_dns_label(&env.metadata.name) {
        return fail(
            "metadata.name",
            format!(
                "{:?} is not a DNS-1123 label (lowercase letters, digits, '-')",
                env.metadata.name
            ),
        );
    }
    if let Some(p) = &env.naming.prefix
        && (!is_dns_label(p) || p.len() > MAX_PREFIX_LEN)
    {
        return fail(
            "naming.prefix",
            format!(
                "{p:?} must be a DNS-1123 label of at most {MAX_PREFIX_LEN} characters (lowercase letters, digits, '-')"
            ),
        );
    }
    match &env.provider {
        ProviderConfig::Aks(a) => aks(a)?,
        ProviderConfig::Kind(k) => kind(k)?,
        ProviderConfig::Local(l) => {
            if !(1..=1000).contains(&l.nodes) {
                return fail(
                    "provider.local.nodes",
                    format!("{} is outside 1..=1000", l.nodes),
                );
            }
            if let Some(dirs) = &l.bin_dir {
                bin_dir(dirs)?;
            }
        }
        ProviderConfig::Existing(e) => existing(e)?,
    }
    addons(&env.addons)?;
    app(env)?;
    if let Some(r) = &env.app.registry {
        super::registry::validate(r)?;
    }
    routing(env)?;
    tls(env)?;
    let ttl = duration::parse_ttl(&env.ttl).map_err(|m| ("ttl".to_string(), m))?;
    if let Some(max) = &env.max_lifetime {
        let d = duration::parse_lifetime(max).map_err(|m| ("maxLifetime".to_string(), m))?;
        if d < ttl {
            return fail(
                "maxLifetime",
                format!("{max:?} is shorter than ttl {:?}", env.ttl),
            );
        }
    }
    if env.limits.max_environments == Some(0) {
        return fail("limits.maxEnvironments", "must be at least 1");
    }
    if let Some(p) = &env.pool {
        pool(env, p)?;
    }
    if let Some(s) = &env.notifications.slack {
        slack(s)?;
    }
    if let Some(r) = &env.release {
        release(r)?;
    }
    if let Some(g) = &env.github {
        if let Some(r) = &g.repository
            && !is_repository(r)
        {
            return fail("github.repository", format!("{r:?} is not owner/name"));
        }
        if let Some(u) = &g.api_url
            && !is_url(u, &["https"])
        {
            return fail("github.apiUrl", format!("{u:?} is not an https:// URL"));
        }
    }
    Ok(())
}

fn existing(e: &ExistingConfig) -> Check {
    let p = "provider.existing";
    match (&e.kubeconfig, &e.aks_cluster) {
        (Some(_), Some(_)) => {
            return fail(
                format!("{p}.aksCluster"),
                "give kubeconfig or aksCluster, not both",
            );
        }
        (None, None) => {
            return fail(
                p,
                "give kubeconfig (a file, with an optional context) or aksCluster (a resource id)",
            );
        }
        (Some(k), None) if k.trim().is_empty() => {
            return fail(format!("{p}.kubeconfig"), "is empty");
        }
        (None, Some(id)) if !is_managed_cluster_id(id) => {
            return fail(
                format!("{p}.aksCluster"),
                format!(
                    "{:?} is not a managed cluster's resource id (/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.ContainerService/managedClusters/<name>)",
                    cut(id, 80)
                ),
            );
        }
        _ => {}
    }
    if e.aks_cluster.is_none() && e.context.is_some() && e.kubeconfig.is_none() {
        return fail(format!("{p}.context"), "needs kubeconfig");
    }
    if let Some(ns) = &e.namespace
        && !is_dns_label(ns)
    {
        return fail(
            format!("{p}.namespace"),
            format!("{ns:?} is not a DNS-1123 label"),
        );
    }
    Ok(())
}

/// `/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.ContainerService/managedClusters/<name>`.
pub(crate) fn is_managed_cluster_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
    };
    matches!(
        parts.as_slice(),
        ["", subs, sub, rgs, rg, providers, ns, mcs, name]
            if subs.eq_ignore_ascii_case("subscriptions") && is_guid(sub)
            && rgs.eq_ignore_ascii_case("resourceGroups") && name_ok(rg)
            && providers.eq_ignore_ascii_case("providers")
            && ns.eq_ignore_ascii_case("Microsoft.ContainerService")
            && mcs.eq_ignore_ascii_case("managedClusters") && name_ok(name)
    )
}

fn release(r: &Release) -> Check {
    let p = "release";
    release_repository(&r.repository)?;
    release_target(r)?;
    if !is_dns_name(&r.argocd.application) {
        return fail(
            format!("{p}.argocd.application"),
            format!(
                "{:?} is not a Kubernetes object name",
                cut(&r.argocd.application, 80)
            ),
        );
    }
    if !is_dns_label(&r.argocd.namespace) {
        return fail(
            format!("{p}.argocd.namespace"),
            format!("{:?} is not a DNS-1123 label", cut(&r.argocd.namespace, 80)),
        );
    }
    if let Some(a) = &r.author {
        if a.name.trim().is_empty() || a.name.contains(['<', '>', '\n']) {
            return fail(
                format!("{p}.author.name"),
                "must be a non-empty name without '<', '>' or line breaks",
            );
        }
        if !is_email(&a.email) || a.email.contains(['<', '>']) {
            return fail(
                format!("{p}.author.email"),
                format!("{:?} is not an e-mail address", cut(&a.email, 80)),
            );
        }
    }
    Ok(())
}

fn release_repository(r: &ReleaseRepository) -> Check {
    let p = "release.repository";
    let url = &r.url;
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://[::1]:",
    ]
    .iter()
    .any(|l| url.starts_with(l));
    if !(is_url(url, &["https"]) || loopback && is_url(url, &["http"])) {
        return fail(
            format!("{p}.url"),
            format!("{:?} is not an https:// URL", cut(url, 80)),
        );
    }
    let authority = url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if authority.contains('@') {
        return fail(
            format!("{p}.url"),
            "holds credentials; put the token in the variable tokenEnv names instead",
        );
    }
    if !is_branch(&r.branch) {
        return fail(
            format!("{p}.branch"),
            format!("{:?} is not a branch name", cut(&r.branch, 80)),
        );
    }
    if let Some(t) = &r.token_env
        && !is_env_var_name(t)
    {
        return fail(
            format!("{p}.tokenEnv"),
            format!("{t:?} is not an environment variable name"),
        );
    }
    if r.username.is_empty() || r.username.contains([':', '\n', '\r']) {
        return fail(
            format!("{p}.username"),
            "must be a non-empty name without ':'",
        );
    }
    Ok(())
}

fn release_target(r: &Release) -> Check {
    let p = "release";
    let f = &r.file;
    if f.is_empty()
        || f.starts_with('/')
        || f.split('/')
            .any(|s| s == ".." || s.is_empty() || s == ".git")
        || f.chars().any(char::is_control)
    {
        return fail(
            format!("{p}.file"),
            format!(
                "{:?} is not a path inside the repository (relative, no '..')",
                cut(f, 80)
            ),
        );
    }
    match (&r.key, &r.kustomize_image) {
        (Some(_), Some(_)) => {
            return fail(
                format!("{p}.kustomizeImage"),
                "give key or kustomizeImage, not both",
            );
        }
        (None, None) => {
            return fail(
                p,
                "give key (a YAML path such as image.tag) or kustomizeImage (the images: entry's name)",
            );
        }
        (Some(k), None)
            if k.split('.')
                .any(|s| s.is_empty() || s.chars().any(char::is_control)) =>
        {
            return fail(
                format!("{p}.key"),
                format!(
                    "{:?} is not a dotted key path such as image.tag",
                    cut(k, 80)
                ),
            );
        }
        (None, Some(i))
            if i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return fail(
                format!("{p}.kustomizeImage"),
                format!("{:?} is not an image name", cut(i, 80)),
            );
        }
        _ => {}
    }
    Ok(())
}

/// A git branch name that is safe as a ref and as an argument: no leading '-', no '..', no
/// spaces or control characters.
fn is_branch(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with(['-', '/'])
        && !b.ends_with(['/', '.'])
        && !b.contains("..")
        && !b.contains("//")
        && !b.ends_with(".lock")
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn pool(env: &Environment, p: &super::Pool) -> Check {
    if !(1..=50).contains(&p.size) {
        return fail("pool.size", format!("{} is outside 1..=50", p.size));
    }
    duration::parse_lifetime(&p.max_age).map_err(|m| ("pool.maxAge".to_string(), m))?;
    if p.stopped && !matches!(env.provider, ProviderConfig::Aks(_)) {
        return fail(
            "pool.stopped",
            "only AKS clusters can be stopped; remove it or use provider aks",
        );
    }
    if matches!(env.provider, ProviderConfig::Existing(_)) {
        return fail(
            "pool",
            "a long-lived cluster (provider.existing) has no pool; remove pool",
        );
    }
    if let Some(limit) = env.limits.max_environments
        && p.size > limit
    {
        return fail(
            "pool.size",
            format!(
                "{} is more than limits.maxEnvironments ({limit}), which counts pool members",
                p.size
            ),
        );
    }
    Ok(())
}

fn aks(a: &AksConfig) -> Check {
    let p = "provider.aks";
    if !is_guid(&a.subscription) {
        return fail(
            format!("{p}.subscription"),
            format!(
                "{:?} is not a subscription id (a GUID such as 00000000-0000-0000-0000-000000000000)",
                a.subscription
            ),
        );
    }
    if a.location.is_empty()
        || !a
            .location
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return fail(
            format!("{p}.location"),
            format!(
                "{:?} is not an Azure region name such as westeurope (lowercase, no spaces)",
                a.location
            ),
        );
    }
    let vm = &a.system_pool.vm_size;
    if !vm.starts_with("Standard_") || !vm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return fail(
            format!("{p}.systemPool.vmSize"),
            format!("{vm:?} is not a VM size such as Standard_D4s_v5"),
        );
    }
    if let Some(auto) = &a.system_pool.autoscale
        && auto.min > auto.max
    {
        return fail(
            format!("{p}.systemPool.autoscale.min"),
            format!("min {} is greater than max {}", auto.min, auto.max),
        );
    }
    if let Some(rg) = &a.resource_group.name
        && rg.is_empty()
    {
        return fail(format!("{p}.resourceGroup.name"), "must not be empty");
    }
    cloud(&a.cloud)?;
    if let Some(d) = &a.dns {
        if !is_dns_name(&d.zone) || !d.zone.contains('.') {
            return fail(
                format!("{p}.dns.zone"),
                format!("{:?} is not a DNS zone such as previews.acme.dev", d.zone),
            );
        }
        if d.resource_group.is_empty() {
            return fail(format!("{p}.dns.resourceGroup"), "must not be empty");
        }
        if let Some(s) = &d.subscription
            && !is_guid(s)
        {
            return fail(
                format!("{p}.dns.subscription"),
                format!("{s:?} is not a subscription id (a GUID)"),
            );
        }
        if !(1..=2_147_483_647).contains(&d.ttl) {
            return fail(
                format!("{p}.dns.ttl"),
                format!("{} is outside 1..=2147483647 seconds", d.ttl),
            );
        }
    }
    // The provider's own checks (network plugin, tier, version, pool sizes, tags), with a
    // sample name. Checks that depend on the name (cluster, resource group and node resource
    // group names) mention it; they are skipped here and made with the real name by `plan` and
    // `up`.
    const SAMPLE: &str = "pr-1";
    match super::aks::validate(a, SAMPLE) {
        Ok(()) => Ok(()),
        Err(text) => match text.split_once(": ") {
            _ if text.contains(SAMPLE) => Ok(()),
            Some((path, message)) if path.starts_with(p) => fail(path, message),
            _ => fail(p, text),
        },
    }
}

fn cloud(c: &Cloud) -> Check {
    let p = "provider.aks.cloud";
    match c.name.as_str() {
        "AzureCloud" | "AzureChinaCloud" | "AzureUSGovernment" => {}
        "Custom" => {
            if c.resource_manager.is_none() || c.authority_host.is_none() {
                return fail(
                    format!("{p}.name"),
                    "a Custom cloud needs resourceManager and authorityHost",
                );
            }
        }
        other => {
            return fail(
                format!("{p}.name"),
                format!(
                    "{other:?} is not one of AzureCloud, AzureChinaCloud, AzureUSGovernment, Custom"
                ),
            );
        }
    }
    for (field, v) in [
        ("resourceManager", &c.resource_manager),
        ("authorityHost", &c.authority_host),
    ] {
        if let Some(u) = v
            && !is_url(u, &["https"])
        {
            return fail(
                format!("{p}.{field}"),
                format!("{u:?} is not an https:// URL"),
            );
        }
    }
    Ok(())
}

fn kind(k: &KindConfig) -> Check {
    let p = "provider.kind";
    if let Some(img) = &k.node_image {
        ImageRef::parse(&format!("{p}.nodeImage"), img)
            .map_err(|crate::names::NameError::Invalid { what, message }| (what, message))?;
    }
    for (i, img) in k.load_images.iter().enumerate() {
        ImageRef::parse(&format!("{p}.loadImages[{i}]"), img)
            .map_err(|crate::names::NameError::Invalid { what, message }| (what, message))?;
    }
    if let Some(w) = &k.wait {
        let d = duration::parse(w, &['s', 'm', 'h']).map_err(|m| (format!("{p}.wait"), m))?;
        if d < std::time::Duration::from_secs(30) || d > std::time::Duration::from_secs(3600) {
            return fail(format!("{p}.wait"), format!("{w:?} is outside 30s..1h"));
        }
    }
    for (i, patch) in k.kubeadm_config_patches.iter().enumerate() {
        let doc: Result<serde_json::Value, _> = serde_saphyr::from_str(patch);
        if !matches!(doc, Ok(serde_json::Value::Object(_))) {
            return fail(
                format!("{p}.kubeadmConfigPatches[{i}]"),
                "must be one YAML mapping (a kubeadm config document)",
            );
        }
    }
    if let Some(maps) = &k.extra_port_mappings {
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in maps.iter().enumerate() {
            let at = format!("{p}.extraPortMappings[{i}]");
            if m.container_port == 0 {
                return fail(format!("{at}.containerPort"), "must be 1..65535");
            }
            if m.host_port == 0 {
                return fail(format!("{at}.hostPort"), "must be 1..65535");
            }
            if !matches!(m.protocol.as_str(), "TCP" | "UDP" | "SCTP") {
                return fail(
                    format!("{at}.protocol"),
                    format!("{:?} is not one of TCP, UDP, SCTP", m.protocol),
                );
            }
            if !seen.insert((m.host_port, m.protocol.clone())) {
                return fail(
                    format!("{at}.hostPort"),
                    format!("host port {}/{} is mapped twice", m.host_port, m.protocol),
                );
            }
        }
    }
    if let Some(m) = &k.registry_mirror {
        if m.host.is_empty() || m.host.contains(['/', ' ']) || m.host.chars().any(char::is_control)
        {
            return fail(
                format!("{p}.registryMirror.host"),
                format!("{:?} is not a registry host such as docker.io", m.host),
            );
        }
        if !is_url(&m.endpoint, &["http", "https"]) {
            return fail(
                format!("{p}.registryMirror.endpoint"),
                format!("{:?} is not an http:// or https:// URL", m.endpoint),
            );
        }
    }
    Ok(())
}

/// `provider.local.binDir`: directories separated by `:`, each absolute or relative to the
/// environment file (resolved by `load`), and never climbing out of it with `..`.
fn bin_dir(dirs: &str) -> Check {
    let field = "provider.local.binDir";
    if dirs.split(':').all(str::is_empty) {
        return fail(field, "is empty; leave it out to use the default cache");
    }
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        if dir.chars().any(char::is_control) {
            return fail(field, format!("{dir:?} holds a control character"));
        }
        let path = std::path::Path::new(dir);
        if !path.is_absolute()
            && path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return fail(
                field,
                format!(
                    "{dir:?} climbs out of the environment file's directory; give an absolute path or one below it"
                ),
            );
        }
    }
    Ok(())
}

fn addons(a: &Addons) -> Check {
    let versions = [
        ("ingress", &a.ingress.version),
        ("certManager", &a.cert_manager.version),
        ("argoCd", &a.argo_cd.version),
        ("argoRollouts", &a.argo_rollouts.version),
    ];
    for (name, v) in versions {
        if let Some(v) = v
            && (v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')))
        {
            return fail(
                format!("addons.{name}.version"),
                format!("{v:?} is not a version such as v1.2.3"),
            );
        }
    }
    Ok(())
}

fn app(env: &Environment) -> Check {
    let a = &env.app;
    if !is_dns_label(&a.name)
        || !a.name.starts_with(|c: char| c.is_ascii_lowercase())
        || a.name.len() > MAX_APP_NAME_LEN
    {
        return fail(
            "app.name",
            format!(
                "{:?} must be a DNS-1035 label of at most {MAX_APP_NAME_LEN} characters (lowercase letters, digits, '-', \
                 starting with a letter): it names the Rollout and its Services",
                a.name
            ),
        );
    }
    if let Some(img) = &a.image {
        ImageRef::parse("app.image", img)
            .map_err(|crate::names::NameError::Invalid { what, message }| (what, message))?;
    }
    if a.port == 0 {
        return fail("app.port", "must be 1..65535");
    }
    if !(1..=100).contains(&a.replicas) {
        return fail("app.replicas", format!("{} is outside 1..=100", a.replicas));
    }
    if !a.health_path.starts_with('/')
        || a.health_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return fail(
            "app.healthPath",
            format!("{:?} must be a path starting with /", a.health_path),
        );
    }
    app_env(a)?;
    app_resources(a)?;
    canary(&a.canary)?;
    // A long-lived cluster runs its own Argo Rollouts controller; ephemera installs none there
    // unless the file asks.
    if !env.addons.argo_rollouts.enabled && !matches!(env.provider, ProviderConfig::Existing(_)) {
        return fail(
            "addons.argoRollouts.enabled",
            "the app is delivered as an Argo Rollout, so argo-rollouts must be enabled",
        );
    }
    match &a.gitops {
        Some(g) => gitops(env, g),
        None => Ok(()),
    }
}

/// `app.env`: variable names and values without control characters.
fn app_env(a: &App) -> Check {
    for (k, v) in &a.env {
        let first_ok =
            k.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.'));
        if !first_ok
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return fail(
                format!("app.env.{k}"),
                "is not a valid environment variable name",
            );
        }
        if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return fail(
                format!("app.env.{k}"),
                "the value contains control characters",
            );
        }
    }
    Ok(())
}

/// `app.resources`: known resource names and quantities.
fn app_resources(a: &App) -> Check {
    if let Some(r) = &a.resources {
        for (section, m) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in m {
                if !matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") && !k.contains('/')
                {
                    return fail(
                        format!("app.resources.{section}.{k}"),
                        "is not cpu, memory, ephemeral-storage or a vendor/resource name",
                    );
                }
                if !is_quantity(v) {
                    return fail(
                        format!("app.resources.{section}.{k}"),
                        format!("{v:?} is not a quantity such as 250m, 1, 512Mi"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// `app.gitops`: Argo CD enabled, a git URL, a relative path, a revision and a parameter name.
fn gitops(env: &Environment, g: &GitOps) -> Check {
    if !env.addons.argo_cd.enabled {
        return fail(
            "app.gitops",
            "GitOps mode needs addons.argoCd.enabled: true",
        );
    }
    if !(is_url(&g.repo_url, &["https", "ssh", "http"]) || g.repo_url.starts_with("git@")) {
        return fail(
            "app.gitops.repoUrl",
            format!(
                "{:?} is not a git URL (https://, ssh:// or git@)",
                g.repo_url
            ),
        );
    }
    if g.path.is_empty() || g.path.starts_with('/') || g.path.split('/').any(|s| s == "..") {
        return fail(
            "app.gitops.path",
            format!("{:?} must be a relative path inside the repository", g.path),
        );
    }
    if g.target_revision.is_empty() {
        return fail("app.gitops.targetRevision", "must not be empty");
    }
    if g.image_parameter.is_empty() || g.image_parameter.chars().any(char::is_whitespace) {
        return fail(
            "app.gitops.imageParameter",
            format!("{:?} is not a parameter name", g.image_parameter),
        );
    }
    Ok(())
}

fn canary(c: &Canary) -> Check {
    if c.steps.is_empty() {
        return fail(
            "app.canary.steps",
            "needs at least one step (e.g. setWeight: 100)",
        );
    }
    if c.steps.len() > 32 {
        return fail(
            "app.canary.steps",
            format!("{} steps; at most 32", c.steps.len()),
        );
    }
    let mut last_weight = None;
    for (i, step) in c.steps.iter().enumerate() {
        match step {
            CanaryStep::SetWeight(w) => {
                if !(1..=100).contains(w) {
                    return fail(format!("app.canary.steps[{i}].setWeight"), "must be 1..100");
                }
                last_weight = Some((i, *w));
            }
            CanaryStep::Pause(Pause { duration: Some(d) }) => {
                duration::parse_pause(d)
                    .map_err(|m| (format!("app.canary.steps[{i}].pause.duration"), m))?;
            }
            CanaryStep::Pause(_) => {}
        }
    }
    match last_weight {
        None => fail("app.canary.steps", "needs a setWeight step"),
        Some((i, w)) if w != 100 => fail(
            format!("app.canary.steps[{i}].setWeight"),
            format!("the last setWeight is {w}; it must be 100 so the canary ends fully promoted"),
        ),
        Some(_) => Ok(()),
    }
}

fn routing(env: &Environment) -> Check {
    let r = &env.routing;
    if let Some(d) = &r.base_domain
        && (!is_dns_name(d) || !d.contains('.'))
    {
        return fail(
            "routing.baseDomain",
            format!("{d:?} is not a domain such as previews.acme.dev"),
        );
    }
    if !is_dns_name(&r.wildcard_dns) || !r.wildcard_dns.contains('.') {
        return fail(
            "routing.wildcardDns",
            format!("{:?} is not a domain such as nip.io", r.wildcard_dns),
        );
    }
    if let (Some(d), ProviderConfig::Aks(AksConfig { dns: Some(z), .. })) =
        (&r.base_domain, &env.provider)
        && d != &z.zone
        && !d.ends_with(&format!(".{}", z.zone))
    {
        return fail(
            "routing.baseDomain",
            format!(
                "{d:?} is not inside the DNS zone {:?}, so its records cannot be created there",
                z.zone
            ),
        );
    }
    // A sample rendering catches unknown variables and hosts that are not DNS names.
    let sample_ip = std::net::Ipv4Addr::LOCALHOST;
    match super::host::render_preview_host(env, "pr-1", Some(1), Some(sample_ip)) {
        Ok(_) => Ok(()),
        Err(m) => fail("routing.host", m),
    }
}

fn tls(env: &Environment) -> Check {
    if let ProviderConfig::Aks(AksConfig { dns: Some(z), .. }) = &env.provider
        && let Some(id) = &z.identity
    {
        if let Err(m) = super::aks::check_identity_id(id) {
            let m = m.strip_prefix("provider.aks.dns.identity: ").unwrap_or(&m);
            return fail("provider.aks.dns.identity", m);
        }
        if super::aks::dns01_client_id(env).is_none() {
            return fail(
                "provider.aks.dns.identity",
                "needs addons.certManager.values.azureDNS.clientID, the identity's client id, which cert-manager signs in with",
            );
        }
    }
    let t = &env.tls;
    if let Some(e) = &t.email
        && !is_email(e)
    {
        return fail("tls.email", format!("{e:?} is not an e-mail address"));
    }
    if t.wildcard {
        if env.base_domain().is_none() {
            return fail(
                "tls.wildcard",
                "a wildcard certificate needs routing.baseDomain",
            );
        }
        let acme = matches!(t.issuer, Issuer::Letsencrypt | Issuer::LetsencryptStaging);
        let has_zone = matches!(
            &env.provider,
            ProviderConfig::Aks(AksConfig { dns: Some(_), .. })
        );
        if acme && !has_zone {
            return fail(
                "tls.wildcard",
                "Let's Encrypt issues wildcard certificates only through DNS-01, which needs provider.aks.dns",
            );
        }
    }
    Ok(())
}

fn slack(s: &Slack) -> Check {
    if s.webhook_env.contains("://") {
        // Never echo it: it is a secret.
        return fail(
            "notifications.slack.webhookEnv",
            "holds a URL; it must name the environment variable that holds the webhook URL (the URL is a secret)",
        );
    }
    if !is_env_var_name(&s.webhook_env) {
        return fail(
            "notifications.slack.webhookEnv",
            format!(
                "{:?} is not an environment variable name such as SLACK_WEBHOOK_URL",
                s.webhook_env
            ),
        );
    }
    if s.on.is_empty() {
        return fail(
            "notifications.slack.on",
            "lists nothing; leave it out to send every message",
        );
    }
    for (i, o) in s.on.iter().enumerate() {
        let known = |names: &[&str]| names.contains(&o.as_str());
        if !known(&crate::config::SLACK_EVENTS) && !known(&crate::config::SLACK_OUTCOMES) {
            return fail(
                format!("notifications.slack.on[{i}]"),
                format!(
                    "{:?} is not an event ({}) or an outcome ({})",
                    crate::config::cut(o, 40),
                    crate::config::SLACK_EVENTS.join(", "),
                    crate::config::SLACK_OUTCOMES.join(", ")
                ),
            );
        }
    }
    Ok(())
}

/// `s` is a GUID: 8-4-4-4-12 hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_url(s: &str, schemes: &[&str]) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    schemes.contains(&scheme)
        && !host.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_repository(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((o, n)) if ok(o) && ok(n))
}

fn is_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// A Kubernetes quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suf| {
        s.strip_suffix(suf).is_some_and(|n| {
            let (int, frac) = n.split_once('.').unwrap_or((n, "0"));
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && !frac.is_empty()
                && frac.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["1", "250m", "0.5", "512Mi", "2Gi", "100k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.", "-1", "1 Gi", "1gb", "1.5.5"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn guids_urls_repositories() {
        assert!(is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_guid("0000-0000"));
        assert!(is_url("https://management.azure.com/", &["https"]));
        assert!(!is_url("http://x", &["https"]));
        assert!(!is_url("https://", &["https"]));
        assert!(is_repository("acme/cats"));
        assert!(!is_repository("acme"));
        assert!(is_email("a@b.dev"));
        assert!(!is_email("a@b"));
    }
}
