//! Add-on definitions (`templates/addons/<name>/addon.yaml`) and their resolution against an
//! environment's `addons` section and provider.
//!
//! A definition is data: pinned versions with their sources (upstream URL, sha256, bundle path),
//! the namespace, what to wait for, what it depends on, and handlebars overlays. Loading checks
//! everything that can be checked without a cluster, so a bad definition fails before anything is
//! created.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AddonError;
use crate::config::{self, IngressImplementation};
use crate::kube::wait::Check;
use crate::templates::Renderer;

/// Where definitions live under `templates/`.
pub const PREFIX: &str = "addons/";
/// The definition file of each add-on directory.
pub const FILE: &str = "addon.yaml";
/// The providers a definition may name.
pub const PROVIDERS: &[&str] = &["aks", "kind", "local"];
/// The step every add-on has: applying its manifests (CRDs Established included).
pub const APPLY_STEP: &str = "apply";

/// One add-on definition, as written in `addon.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub description: String,
    /// Namespace of the add-on; namespaced objects without one are put here, and it is created.
    pub namespace: String,
    /// Shown by `plan` and `up` whenever the add-on is selected (e.g. a retirement warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// `addon` (all of it) or `addon/step`; ignored when that add-on is not installed.
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    /// Newest first; the first is the default.
    pub versions: Vec<VersionDef>,
    /// Facts other add-ons' templates and the app see (e.g. the Gateway's name).
    #[serde(default)]
    pub exports: Map<String, Value>,
    #[serde(default)]
    pub values: ValuesDef,
    #[serde(default)]
    pub waits: Vec<WaitDef>,
    #[serde(default)]
    pub overlays: Vec<OverlayDef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionDef {
    pub version: String,
    /// Upstream component versions inside this add-on version, for people.
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    /// Applied in this order (CRDs first regardless); a later source wins for the same object.
    pub sources: Vec<SourceDef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceDef {
    pub url: String,
    /// Lowercase hex; `null` when unknown (then it is never downloaded, see docs/addons.md).
    pub sha256: Option<String>,
    /// Path inside a `--manifests` bundle.
    pub bundle: String,
    /// Only for these providers; empty means all.
    #[serde(default)]
    pub providers: Vec<String>,
}

/// Template values: defaults, then per-provider values, then the environment file's `values`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValuesDef {
    #[serde(default)]
    pub default: Map<String, Value>,
    #[serde(default)]
    pub providers: BTreeMap<String, Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitDef {
    /// Step id, unique in the add-on; overlays and other add-ons refer to it.
    pub id: String,
    /// Only for these providers; empty means all.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Start after this `after` overlay is applied (its objects are what is waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub objects: Vec<ObjectCheck>,
}

/// One object and the check it must pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectCheck {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub check: Check,
}

impl std::fmt::Display for ObjectCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverlayDef {
    /// Step id for `after` overlays, unique in the add-on.
    pub name: String,
    /// Template name under `templates/`.
    pub template: String,
    pub mode: OverlayMode,
    #[serde(default)]
    pub when: When,
    /// For `after` overlays: the wait ids of this add-on to pass first. Empty: right after apply.
    #[serde(default)]
    pub needs: Vec<String>,
}

/// How an overlay's documents are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OverlayMode {
    /// Each document is merged into the upstream object of the same apiVersion, kind, namespace
    /// and name before anything is applied (maps merge, `null` removes a key, lists of maps with
    /// `name` merge by name, lists of plain values merge as sets, other lists are replaced). A
    /// document that matches no upstream object is an error.
    Patch,
    /// The documents are new objects, applied once `needs` have passed.
    After,
}

/// Conditions on an overlay; empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct When {
    #[serde(default)]
    pub providers: Vec<String>,
    /// The selected ingress implementation (`gateway-api`, `ingress-nginx`).
    #[serde(default)]
    pub ingress: Vec<String>,
}

/// A dependency on another add-on, or on one step of it. Written `name` or `name/step`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency {
    pub addon: String,
    /// A step id (`apply`, a wait id or an `after` overlay name); `None` means the whole add-on.
    pub step: Option<String>,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{}/{}", self.addon, step),
            None => f.write_str(&self.addon),
        }
    }
}

impl Serialize for Dependency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (addon, step) = match text.split_once('/') {
            Some((a, s)) => (a.to_string(), Some(s.to_string())),
            None => (text.clone(), None),
        };
        if addon.is_empty()
            || step
                .as_deref()
                .is_some_and(|s| s.is_empty() || s.contains('/'))
        {
            return Err(serde::de::Error::custom(format!(
                "dependency {text:?} is not `addon` or `addon/step`"
            )));
        }
        Ok(Dependency { addon, step })
    }
}

/// One source of an add-on version, chosen for the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub url: String,
    pub sha256: Option<String>,
    pub bundle: String,
}

/// A wait step, chosen for the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wait {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub objects: Vec<ObjectCheck>,
}

/// An overlay, chosen for the provider and ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlay {
    pub name: String,
    pub template: String,
    pub mode: OverlayMode,
    pub needs: Vec<String>,
}

/// An add-on as it will be installed: one version, for one provider, with its values merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedAddon {
    pub name: String,
    pub version: String,
    pub namespace: String,
    pub description: String,
    pub components: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub sources: Vec<Source>,
    /// Only on add-ons that are installed too.
    pub depends_on: Vec<Dependency>,
    pub waits: Vec<Wait>,
    pub overlays: Vec<Overlay>,
    pub values: Map<String, Value>,
    pub exports: Map<String, Value>,
}

impl ResolvedAddon {
    /// Step ids of this add-on: `apply`, then each wait id and `after` overlay name.
    pub fn steps(&self) -> Vec<&str> {
        step_ids(
            self.waits.iter().map(|w| w.id.as_str()),
            self.overlays.iter().map(|o| (o.name.as_str(), o.mode)),
        )
    }
}

/// Every add-on definition known to this build (embedded, or overridden with `--templates`).
#[derive(Clone, Debug)]
pub struct Catalog {
    definitions: BTreeMap<String, Definition>,
}

impl Catalog {
    /// Loads and checks every `addons/<name>/addon.yaml` the renderer knows.
    ///
    /// # Errors
    /// [`AddonError::Definition`] naming the file (and line when known) and the field: YAML that
    /// does not parse, unknown fields, a name that differs from the directory, a sha256 that is not
    /// 64 hex digits, a URL that is not https, a bundle path that leaves the bundle, duplicate or
    /// dangling step ids, a missing overlay template, an unknown dependency.
    pub fn load(renderer: &Renderer) -> Result<Catalog, AddonError> {
        let mut definitions = BTreeMap::new();
        for file in renderer.data_files(PREFIX, &format!("/{FILE}")) {
            let bytes = renderer
                .data_file(&file)
                .ok_or_else(|| definition_error(&file, None, "cannot be read".into()))?;
            let text = String::from_utf8(bytes.into_owned())
                .map_err(|_| definition_error(&file, None, "is not UTF-8".into()))?;
            let def = parse(&file, &text)?;
            check(&file, &def, renderer)?;
            definitions.insert(def.name.clone(), def);
        }
        let catalog = Catalog { definitions };
        catalog.check_dependencies()?;
        Ok(catalog)
    }

    /// The definitions by name.
    pub fn definitions(&self) -> &BTreeMap<String, Definition> {
        &self.definitions
    }

    /// One definition.
    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.definitions.get(name)
    }

    /// The add-ons an environment's `addons` section selects, for `provider_kind`, in an order
    /// where each comes after what it depends on.
    ///
    /// # Errors
    /// - [`AddonError::UnknownVersion`] naming the add-on and its known versions;
    /// - [`AddonError::Invalid`] for an unknown provider, a selected add-on without a definition, a
    ///   version with no source for the provider, or a dependency cycle.
    pub fn resolve(
        &self,
        addons: &config::Addons,
        provider_kind: &str,
    ) -> Result<Vec<ResolvedAddon>, AddonError> {
        // A long-lived cluster (`provider.existing`) is a real cluster with a cloud load
        // balancer, as AKS is: it gets the add-ons' sources and overlays for aks.
        let provider_kind = if provider_kind == "existing" {
            "aks"
        } else {
            provider_kind
        };
        if !PROVIDERS.contains(&provider_kind) {
            return Err(AddonError::Invalid(format!(
                "unknown provider {provider_kind:?}; known: {}",
                PROVIDERS.join(", ")
            )));
        }
        let ingress_name = match addons.ingress.implementation {
            IngressImplementation::GatewayApi => "gateway-api",
            IngressImplementation::IngressNginx => "ingress-nginx",
        };
        let selected: Vec<(&str, Option<&str>, &BTreeMap<String, Value>)> = [
            (
                addons.ingress.enabled,
                ingress_name,
                addons.ingress.version.as_deref(),
                &addons.ingress.values,
            ),
            (
                addons.cert_manager.enabled,
                "cert-manager",
                addons.cert_manager.version.as_deref(),
                &addons.cert_manager.values,
            ),
            (
                addons.argo_cd.enabled,
                "argo-cd",
                addons.argo_cd.version.as_deref(),
                &addons.argo_cd.values,
            ),
            (
                addons.argo_rollouts.enabled,
                "argo-rollouts",
                addons.argo_rollouts.version.as_deref(),
                &addons.argo_rollouts.values,
            ),
        ]
        .into_iter()
        .filter(|(enabled, ..)| *enabled)
        .map(|(_, name, version, values)| (name, version, values))
        .collect();
        let ingress = addons.ingress.enabled.then_some(ingress_name);
        let names: BTreeSet<&str> = selected.iter().map(|(n, ..)| *n).collect();

        let mut resolved = Vec::new();
        for (name, version, values) in selected {
            let def = self.get(name).ok_or_else(|| {
                AddonError::Invalid(format!(
                    "add-on {name} has no definition in templates/{PREFIX}{name}/{FILE}"
                ))
            })?;
            resolved.push(resolve_one(
                def,
                version,
                values,
                provider_kind,
                ingress,
                &names,
            )?);
        }
        order(resolved)
    }

    fn check_dependencies(&self) -> Result<(), AddonError> {
        for def in self.definitions.values() {
            let file = format!("templates/{PREFIX}{}/{FILE}", def.name);
            for (i, dep) in def.depends_on.iter().enumerate() {
                let Some(target) = self.get(&dep.addon) else {
                    return Err(definition_error(
                        &file,
                        None,
                        format!("dependsOn[{i}]: no add-on named {}", dep.addon),
                    ));
                };
                if dep.addon == def.name {
                    return Err(definition_error(
                        &file,
                        None,
                        format!("dependsOn[{i}]: an add-on cannot depend on itself"),
                    ));
                }
                if let Some(step) = &dep.step {
                    let known = definition_steps(target);
                    if !known.contains(&step.as_str()) {
                        return Err(definition_error(
                            &file,
                            None,
                            format!(
                                "dependsOn[{i}]: {} has no step {step}; its steps: {}",
                                dep.addon,
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn definition_steps(def: &Definition) -> Vec<&str> {
    step_ids(
        def.waits.iter().map(|w| w.id.as_str()),
        def.overlays.iter().map(|o| (o.name.as_str(), o.mode)),
    )
}

fn step_ids<'a>(
    waits: impl Iterator<Item = &'a str>,
    overlays: impl Iterator<Item = (&'a str, OverlayMode)>,
) -> Vec<&'a str> {
    std::iter::once(APPLY_STEP)
        .chain(waits)
        .chain(
            overlays
                .filter(|(_, mode)| *mode == OverlayMode::After)
                .map(|(name, _)| name),
        )
        .collect()
}

fn definition_error(file: &str, pos: Option<(u64, u64)>, message: String) -> AddonError {
    let file = if file.starts_with("templates/") {
        file.to_string()
    } else {
        format!("templates/{file}")
    };
    AddonError::Definition { file, pos, message }
}

fn parse(file: &str, text: &str) -> Result<Definition, AddonError> {
    serde_saphyr::from_str::<Definition>(text).map_err(|e| {
        let pos = e.location().map(|l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        // Keep one line, without the position the message repeats at its end.
        let first = message.lines().next().unwrap_or("invalid YAML");
        let message = match first.rfind(" at line ") {
            Some(i) if pos.is_some() => first[..i].to_string(),
            _ => first.to_string(),
        };
        definition_error(file, pos, message)
    })
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A bundle path must stay inside the bundle: relative, `/`-separated, no `.` or `..` parts.
pub(crate) fn is_bundle_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn is_step_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check(file: &str, def: &Definition, renderer: &Renderer) -> Result<(), AddonError> {
    let checked = check_name(file, def)
        .and_then(|()| check_versions(def))
        .and_then(|()| check_values(def))
        .and_then(|()| check_waits(def))
        .and_then(|steps| check_overlays(def, renderer, steps));
    checked.map_err(|(field, message)| definition_error(file, None, format!("{field}: {message}")))
}

/// A field of a definition and what is wrong with it.
type Bad = (String, String);

fn bad<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, Bad> {
    Err((field.into(), message.into()))
}

/// The name matches the directory.
fn check_name(file: &str, def: &Definition) -> Result<(), Bad> {
    let dir = file
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(&format!("/{FILE}")))
        .unwrap_or_default();
    if def.name != dir {
        return bad(
            "name",
            format!("{:?} differs from its directory {dir:?}", def.name),
        );
    }
    if def.versions.is_empty() {
        return bad("versions", "at least one version is required");
    }
    Ok(())
}

/// Each version is unique, has https sources with well-formed sums and paths, and has a source
/// for every provider.
fn check_versions(def: &Definition) -> Result<(), Bad> {
    let mut seen = BTreeSet::new();
    for (v, version) in def.versions.iter().enumerate() {
        if !seen.insert(version.version.as_str()) {
            return bad(
                format!("versions[{v}].version"),
                format!("{} appears twice", version.version),
            );
        }
        if version.sources.is_empty() {
            return bad(
                format!("versions[{v}].sources"),
                "at least one source is required",
            );
        }
        for (s, source) in version.sources.iter().enumerate() {
            let at = format!("versions[{v}].sources[{s}]");
            if !source.url.starts_with("https://") {
                return bad(format!("{at}.url"), "must be an https URL");
            }
            if let Some(sum) = &source.sha256
                && !is_sha256(sum)
            {
                return bad(
                    format!("{at}.sha256"),
                    "must be 64 lowercase hex digits, or null when unknown",
                );
            }
            if !is_bundle_path(&source.bundle) {
                return bad(
                    format!("{at}.bundle"),
                    "must be a relative path inside the bundle, without `.` or `..`",
                );
            }
            check_providers(&source.providers).or_else(|m| bad(format!("{at}.providers"), &m))?;
        }
        for provider in PROVIDERS {
            if !version
                .sources
                .iter()
                .any(|s| s.providers.is_empty() || s.providers.iter().any(|p| p == provider))
            {
                return bad(
                    format!("versions[{v}].sources"),
                    format!("no source for provider {provider}"),
                );
            }
        }
    }
    Ok(())
}

/// Per-provider values name known providers.
fn check_values(def: &Definition) -> Result<(), Bad> {
    for (p, provider) in def.values.providers.keys().enumerate() {
        if !PROVIDERS.contains(&provider.as_str()) {
            return bad(
                format!("values.providers[{p}]"),
                format!("unknown provider {provider:?}"),
            );
        }
    }
    Ok(())
}

/// Each wait has a unique step id, known providers, an existing `after` overlay and objects.
/// Returns the step ids taken so far (apply and the waits).
fn check_waits(def: &Definition) -> Result<BTreeSet<&str>, Bad> {
    let mut steps = BTreeSet::from([APPLY_STEP]);
    let after_overlays: BTreeSet<&str> = def
        .overlays
        .iter()
        .filter(|o| o.mode == OverlayMode::After)
        .map(|o| o.name.as_str())
        .collect();
    for (w, wait) in def.waits.iter().enumerate() {
        if !is_step_id(&wait.id) || !steps.insert(wait.id.as_str()) {
            return bad(
                format!("waits[{w}].id"),
                format!("{:?} is not a unique step id of [a-z0-9-]", wait.id),
            );
        }
        check_providers(&wait.providers).or_else(|m| bad(format!("waits[{w}].providers"), &m))?;
        if let Some(after) = &wait.after
            && !after_overlays.contains(after.as_str())
        {
            return bad(
                format!("waits[{w}].after"),
                format!("no overlay {after:?} with mode `after`"),
            );
        }
        if wait.objects.is_empty() {
            return bad(
                format!("waits[{w}].objects"),
                "at least one object is required",
            );
        }
    }
    Ok(steps)
}

/// Each overlay has a unique name (also among the steps), an existing template, known
/// conditions, and needs only waits that do not wait for it.
fn check_overlays<'d>(
    def: &'d Definition,
    renderer: &Renderer,
    mut steps: BTreeSet<&'d str>,
) -> Result<(), Bad> {
    let waits: BTreeSet<&str> = def.waits.iter().map(|w| w.id.as_str()).collect();
    let mut names = BTreeSet::new();
    for (o, overlay) in def.overlays.iter().enumerate() {
        if !is_step_id(&overlay.name) || !names.insert(overlay.name.as_str()) {
            return bad(
                format!("overlays[{o}].name"),
                format!("{:?} is not a unique name of [a-z0-9-]", overlay.name),
            );
        }
        if overlay.mode == OverlayMode::After && !steps.insert(overlay.name.as_str()) {
            return bad(
                format!("overlays[{o}].name"),
                format!("{:?} is also a wait id", overlay.name),
            );
        }
        if !renderer.has(&overlay.template) {
            return bad(
                format!("overlays[{o}].template"),
                format!("no template templates/{}", overlay.template),
            );
        }
        check_providers(&overlay.when.providers)
            .or_else(|m| bad(format!("overlays[{o}].when.providers"), &m))?;
        for (i, ingress) in overlay.when.ingress.iter().enumerate() {
            if ingress != "gateway-api" && ingress != "ingress-nginx" {
                return bad(
                    format!("overlays[{o}].when.ingress[{i}]"),
                    "must be gateway-api or ingress-nginx",
                );
            }
        }
        if overlay.mode == OverlayMode::Patch && !overlay.needs.is_empty() {
            return bad(
                format!("overlays[{o}].needs"),
                "a patch overlay is merged before applying and cannot wait",
            );
        }
        for (n, need) in overlay.needs.iter().enumerate() {
            if !waits.contains(need.as_str()) {
                return bad(
                    format!("overlays[{o}].needs[{n}]"),
                    format!("no wait with id {need:?}"),
                );
            }
            if def
                .waits
                .iter()
                .any(|w| w.id == *need && w.after.as_deref() == Some(overlay.name.as_str()))
            {
                return bad(
                    format!("overlays[{o}].needs[{n}]"),
                    format!("wait {need:?} itself waits for this overlay"),
                );
            }
        }
    }
    Ok(())
}

fn check_providers(providers: &[String]) -> Result<(), String> {
    match providers.iter().find(|p| !PROVIDERS.contains(&p.as_str())) {
        Some(p) => Err(format!(
            "unknown provider {p:?}; known: {}",
            PROVIDERS.join(", ")
        )),
        None => Ok(()),
    }
}

fn for_provider(providers: &[String], provider: &str) -> bool {
    providers.is_empty() || providers.iter().any(|p| p == provider)
}

/// Merges `overlay` into `base` recursively: objects merge key by key, anything else replaces.
pub(crate) fn merge_values(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    for (k, v) in overlay {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge_values(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn resolve_one(
    def: &Definition,
    version: Option<&str>,
    user_values: &BTreeMap<String, Value>,
    provider: &str,
    ingress: Option<&str>,
    installed: &BTreeSet<&str>,
) -> Result<ResolvedAddon, AddonError> {
    let chosen = match version {
        None => def.versions.first(),
        Some(v) => def.versions.iter().find(|d| d.version == v),
    };
    let Some(chosen) = chosen else {
        return Err(AddonError::UnknownVersion {
            addon: def.name.clone(),
            version: version.unwrap_or_default().to_string(),
            known: def.versions.iter().map(|v| v.version.clone()).collect(),
        });
    };
    let sources: Vec<Source> = chosen
        .sources
        .iter()
        .filter(|s| for_provider(&s.providers, provider))
        .map(|s| Source {
            url: s.url.clone(),
            sha256: s.sha256.clone(),
            bundle: s.bundle.clone(),
        })
        .collect();
    let mut values = def.values.default.clone();
    if let Some(p) = def.values.providers.get(provider) {
        merge_values(&mut values, p);
    }
    let user: Map<String, Value> = user_values
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merge_values(&mut values, &user);
    let overlays: Vec<Overlay> = def
        .overlays
        .iter()
        .filter(|o| for_provider(&o.when.providers, provider))
        .filter(|o| {
            o.when.ingress.is_empty()
                || ingress.is_some_and(|i| o.when.ingress.iter().any(|w| w == i))
        })
        .map(|o| Overlay {
            name: o.name.clone(),
            template: o.template.clone(),
            mode: o.mode,
            needs: o.needs.clone(),
        })
        .collect();
    let after: BTreeSet<&str> = overlays.iter().map(|o| o.name.as_str()).collect();
    let waits: Vec<Wait> = def
        .waits
        .iter()
        .filter(|w| for_provider(&w.providers, provider))
        // A wait on an overlay's objects goes when the overlay does not apply here.
        .filter(|w| w.after.as_deref().is_none_or(|a| after.contains(a)))
        .map(|w| Wait {
            id: w.id.clone(),
            after: w.after.clone(),
            objects: w.objects.clone(),
        })
        .collect();
    let wait_ids: BTreeSet<&str> = waits.iter().map(|w| w.id.as_str()).collect();
    // A need on a wait that does not run for this provider is already met.
    let overlays = overlays
        .into_iter()
        .map(|mut o| {
            o.needs.retain(|n| wait_ids.contains(n.as_str()));
            o
        })
        .collect();
    let depends_on = def
        .depends_on
        .iter()
        .filter(|d| installed.contains(d.addon.as_str()))
        .cloned()
        .collect();
    Ok(ResolvedAddon {
        name: def.name.clone(),
        version: chosen.version.clone(),
        namespace: def.namespace.clone(),
        description: def.description.clone(),
        components: chosen.components.clone(),
        notice: def.notice.clone(),
        sources,
        depends_on,
        waits,
        overlays,
        values,
        exports: def.exports.clone(),
    })
}

/// Orders add-ons so each comes after the add-ons it depends on, keeping the given order
/// otherwise. A step dependency on a step this provider skips falls back to the add-on's apply.
fn order(mut addons: Vec<ResolvedAddon>) -> Result<Vec<ResolvedAddon>, AddonError> {
    for i in 0..addons.len() {
        let deps = addons[i].depends_on.clone();
        addons[i].depends_on = deps
            .into_iter()
            .map(|mut d| {
                if let (Some(step), Some(target)) =
                    (&d.step, addons.iter().find(|a| a.name == d.addon))
                    && !target.steps().contains(&step.as_str())
                {
                    d.step = Some(APPLY_STEP.to_string());
                }
                d
            })
            .collect();
    }
    let mut out: Vec<ResolvedAddon> = Vec::with_capacity(addons.len());
    while !addons.is_empty() {
        let placed: BTreeSet<String> = out.iter().map(|a| a.name.clone()).collect();
        let Some(i) = addons
            .iter()
            .position(|a| a.depends_on.iter().all(|d| placed.contains(&d.addon)))
        else {
            let names: Vec<&str> = addons.iter().map(|a| a.name.as_str()).collect();
            return Err(AddonError::Invalid(format!(
                "add-ons {} depend on each other in a cycle",
                names.join(", ")
            )));
        };
        out.push(addons.remove(i));
    }
    Ok(out)
}

/// The `ingress` exports of the selected ingress add-on, if any: what overlays and the app use to
/// attach routes (`implementation`, and `gatewayName`/`gatewayNamespace` or `ingressClassName`).
pub fn ingress_exports(addons: &[ResolvedAddon]) -> Option<&Map<String, Value>> {
    addons
        .iter()
        .map(|a| &a.exports)
        .find(|e| e.contains_key("implementation"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Addon, Addons, IngressAddon};

    fn embedded() -> (Renderer, Catalog) {
        let r = Renderer::new(None).unwrap();
        let c = Catalog::load(&r).unwrap();
        (r, c)
    }

    #[test]
    fn embedded_definitions_load() {
        let (_, c) = embedded();
        let names: Vec<&str> = c.definitions().keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "argo-cd",
                "argo-rollouts",
                "cert-manager",
                "gateway-api",
                "ingress-nginx"
            ]
        );
    }

    #[test]
    fn defaults_resolve_in_dependency_order() {
        let (_, c) = embedded();
        let r = c.resolve(&Addons::default(), "aks").unwrap();
        let names: Vec<&str> = r.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["gateway-api", "cert-manager", "argo-cd", "argo-rollouts"]
        );
        let cm = &r[1];
        assert_eq!(
            cm.depends_on,
            vec![Dependency {
                addon: "gateway-api".into(),
                step: Some("apply".into())
            }]
        );
        assert!(cm.overlays.iter().any(|o| o.name == "gateway-api-solver"));
        assert!(!cm.overlays.iter().any(|o| o.name == "simulated-webhook"));
        assert_eq!(r[0].values["serviceType"], "LoadBalancer");
    }

    #[test]
    fn ingress_nginx_picks_the_variant_per_provider() {
        let (_, c) = embedded();
        let addons = Addons {
            ingress: IngressAddon {
                implementation: IngressImplementation::IngressNginx,
                ..Default::default()
            },
            ..Default::default()
        };
        let kind = c.resolve(&addons, "kind").unwrap();
        let nginx = kind.iter().find(|a| a.name == "ingress-nginx").unwrap();
        assert_eq!(nginx.sources.len(), 1);
        assert!(nginx.sources[0].bundle.ends_with("kind/deploy.yaml"));
        assert_eq!(nginx.values["serviceType"], "NodePort");
        assert!(nginx.notice.as_deref().unwrap().contains("retirement"));
        let local = c.resolve(&addons, "local").unwrap();
        let nginx = local.iter().find(|a| a.name == "ingress-nginx").unwrap();
        assert!(nginx.sources[0].bundle.ends_with("cloud/deploy.yaml"));
        assert_eq!(nginx.values["serviceType"], "ClusterIP");
        assert!(nginx.overlays.iter().any(|o| o.name == "simulated-webhook"));
        // Without Gateway API, cert-manager neither depends on it nor enables its solver.
        let cm = local.iter().find(|a| a.name == "cert-manager").unwrap();
        assert!(cm.depends_on.is_empty());
        assert!(!cm.overlays.iter().any(|o| o.name == "gateway-api-solver"));
    }

    #[test]
    fn controller_only_waits_are_skipped_on_local() {
        let (_, c) = embedded();
        let local = c.resolve(&Addons::default(), "local").unwrap();
        let gw = local.iter().find(|a| a.name == "gateway-api").unwrap();
        let ids: Vec<&str> = gw.waits.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["controller"]);
        let cm = local.iter().find(|a| a.name == "cert-manager").unwrap();
        let issuer = cm
            .overlays
            .iter()
            .find(|o| o.name == "cluster-issuer")
            .unwrap();
        assert_eq!(issuer.needs, ["webhook"]);
        let kind = c.resolve(&Addons::default(), "kind").unwrap();
        let gw = kind.iter().find(|a| a.name == "gateway-api").unwrap();
        let ids: Vec<&str> = gw.waits.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["controller", "gatewayclass", "gateway-programmed"]);
    }

    #[test]
    fn unknown_version_names_addon_and_known_versions() {
        let (_, c) = embedded();
        let addons = Addons {
            cert_manager: Addon {
                version: Some("v9.9.9".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = c.resolve(&addons, "aks").unwrap_err();
        assert_eq!(err.exit_status(), crate::ExitStatus::Usage);
        assert_eq!(
            err.to_string(),
            "cert-manager has no version v9.9.9; known versions: v1.21.1"
        );
    }

    #[test]
    fn disabled_addons_are_left_out_and_user_values_win() {
        let (_, c) = embedded();
        let mut values = BTreeMap::new();
        values.insert("insecure".to_string(), Value::Bool(false));
        let addons = Addons {
            ingress: IngressAddon {
                enabled: false,
                ..Default::default()
            },
            cert_manager: Addon {
                enabled: false,
                ..Default::default()
            },
            argo_cd: Addon {
                values,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = c.resolve(&addons, "local").unwrap();
        let names: Vec<&str> = r.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["argo-cd", "argo-rollouts"]);
        assert_eq!(r[0].values["insecure"], Value::Bool(false));
        assert!(ingress_exports(&r).is_none());
    }

    #[test]
    fn unknown_provider_is_refused() {
        let (_, c) = embedded();
        let err = c
            .resolve(&Addons::default(), "gke")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown provider \"gke\""), "{err}");
    }

    #[test]
    fn every_pinned_sha256_matches_the_shared_bundle() {
        let bundle =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/manifests");
        let (_, c) = embedded();
        let mut checked = 0;
        for def in c.definitions().values() {
            for v in &def.versions {
                for s in &v.sources {
                    let Some(want) = &s.sha256 else { continue };
                    let bytes = std::fs::read(bundle.join(&s.bundle)).unwrap_or_else(|e| {
                        panic!(
                            "{}: {e} (the shared fixtures must be at ../shared)",
                            s.bundle
                        )
                    });
                    use sha2::Digest;
                    assert_eq!(
                        &hex::encode(sha2::Sha256::digest(&bytes)),
                        want,
                        "{}",
                        s.bundle
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 11 + 2 + 6 + 1 + 1);
    }

    fn override_dir(name: &str, yaml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PREFIX).join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join(FILE), yaml).unwrap();
        dir
    }

    fn load_err(name: &str, yaml: &str) -> String {
        let dir = override_dir(name, yaml);
        let r = Renderer::new(Some(dir.path())).unwrap();
        Catalog::load(&r).unwrap_err().to_string()
    }

    const MINIMAL: &str = "name: x\ndescription: d\nnamespace: x\nversions:\n  - version: v1\n    sources:\n      - url: https://example.invalid/x.yaml\n        sha256: null\n        bundle: x/x.yaml\n";

    #[test]
    fn a_minimal_override_definition_loads() {
        let dir = override_dir("x", MINIMAL);
        let r = Renderer::new(Some(dir.path())).unwrap();
        let c = Catalog::load(&r).unwrap();
        assert_eq!(c.get("x").unwrap().versions[0].sources[0].sha256, None);
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let err = load_err(
            "x",
            &MINIMAL.replace("namespace: x\n", "namespace: x\nnamspace: y\n"),
        );
        assert!(err.starts_with("templates/addons/x/addon.yaml:4:"), "{err}");
        assert!(err.contains("namspace"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (
                MINIMAL.replace("sha256: null", "sha256: abc"),
                "versions[0].sources[0].sha256",
            ),
            (
                MINIMAL.replace("https://", "http://"),
                "versions[0].sources[0].url",
            ),
            (
                MINIMAL.replace("bundle: x/x.yaml", "bundle: ../x.yaml"),
                "versions[0].sources[0].bundle",
            ),
            (MINIMAL.replace("name: x", "name: y"), "name: \"y\" differs"),
            (
                format!("{MINIMAL}dependsOn: [nope]\n"),
                "dependsOn[0]: no add-on named nope",
            ),
            (
                format!("{MINIMAL}dependsOn: [cert-manager/nope]\n"),
                "cert-manager has no step nope",
            ),
            (
                format!(
                    "{MINIMAL}overlays:\n  - {{name: a, template: addons/x/none.hbs, mode: patch}}\n"
                ),
                "overlays[0].template: no template",
            ),
            (
                format!(
                    "{MINIMAL}waits:\n  - id: w\n    after: nope\n    objects: [{{apiVersion: v1, kind: Service, name: s, check: endpointsReady}}]\n"
                ),
                "waits[0].after",
            ),
            (
                format!(
                    "{MINIMAL}waits:\n  - id: w\n    objects: [{{apiVersion: v1, kind: Service, name: s, check: shiny}}]\n"
                ),
                "shiny",
            ),
        ];
        for (yaml, want) in cases {
            let err = load_err("x", &yaml);
            assert!(err.starts_with("templates/addons/x/addon.yaml"), "{err}");
            assert!(err.contains(want), "want {want:?} in {err}");
        }
    }
}
