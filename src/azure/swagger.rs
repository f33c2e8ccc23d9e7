//! The `ManagedCluster` PUT schema of the AKS 2026-08-01 swagger, as a JSON Schema validator.
//!
//! Test support, compiled only for tests: used by the provider's unit tests and by the fake ARM
//! server of the integration tests (which includes this file with `#[path]`), which rejects every
//! PUT body that does not validate. Only `serde_json` and `jsonschema` are used here, so the file
//! compiles in both places.
//!
//! Swagger 2.0 definitions are almost JSON Schema; the conversion:
//! - every `$ref`, local or into the shared ARM common types, is rewritten to one flat
//!   `#/definitions/<file>.<name>` namespace (the swagger's own names keep no prefix);
//! - a property marked `readOnly` becomes the `false` schema (a client must not send it) and
//!   leaves `required`;
//! - an `enum` marked `x-ms-enum.modelAsString` is open (ARM documents new values without a new
//!   api-version; the official create example itself sends `sku.name: Basic`), so only its type
//!   is checked;
//! - every object schema that lists `properties`, has no `additionalProperties` and is not the
//!   base of an `allOf`, gets `unevaluatedProperties: false`, so a misspelt field fails instead of
//!   being ignored by ARM. Draft 2020-12 is used because `unevaluatedProperties` sees the
//!   properties declared in `allOf` bases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// `../shared/fixtures/azure` next to the repository.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/azure")
}

/// An official example from `2026-08-01/examples/`.
pub fn example(name: &str) -> Result<Value, String> {
    read_json(&fixtures_dir().join("2026-08-01/examples").join(name))
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (the shared fixtures must be cloned beside the repository as ../shared)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Validates request bodies against one definition of the swagger.
pub struct PutValidator {
    validator: jsonschema::Validator,
}

impl PutValidator {
    /// The validator for `ManagedCluster`, the body of `ManagedClusters_CreateOrUpdate`.
    pub fn load() -> Result<Self, String> {
        Self::for_definition("ManagedCluster")
    }

    /// The validator for any definition of `managedClusters.json`.
    pub fn for_definition(name: &str) -> Result<Self, String> {
        let root = fixtures_dir();
        let mut defs = Map::new();
        let files: [(&str, PathBuf); 4] = [
            ("", root.join("2026-08-01/managedClusters.json")),
            (
                "types",
                root.join("common-types/resource-management/v6/types.json"),
            ),
            (
                "managedidentity",
                root.join("common-types/resource-management/v6/managedidentity.json"),
            ),
            (
                "managedidentitywithdelegation",
                root.join("common-types/resource-management/v6/managedidentitywithdelegation.json"),
            ),
        ];
        for (prefix, path) in &files {
            let doc = read_json(path)?;
            let Some(Value::Object(d)) = doc.get("definitions") else {
                return Err(format!("{}: no definitions", path.display()));
            };
            for (k, v) in d {
                let mut v = v.clone();
                rewrite_refs(&mut v, prefix);
                defs.insert(qualify(prefix, k), v);
            }
        }
        if !defs.contains_key(name) {
            return Err(format!("managedClusters.json has no definition {name}"));
        }
        let bases = allof_bases(&defs);
        for (k, v) in defs.iter_mut() {
            tighten(v, !bases.contains(k));
        }
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/definitions/{name}"),
            "definitions": Value::Object(defs),
        });
        let validator = jsonschema::draft202012::options()
            .build(&schema)
            .map_err(|e| format!("the swagger does not compile as JSON Schema: {e}"))?;
        Ok(PutValidator { validator })
    }

    /// `Ok` when `body` is a valid PUT body; otherwise every violation, one per line, each
    /// with its JSON pointer.
    pub fn check(&self, body: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(body)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { at.as_str() })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

fn qualify(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `../../types.json#/definitions/X` → `#/definitions/types.X`; `#/definitions/X` inside a
/// common-types file gets that file's prefix.
fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                let (file, pointer) = r.split_once('#').unwrap_or((r.as_str(), ""));
                let target_prefix = if file.is_empty() {
                    prefix.to_string()
                } else {
                    let base = file.rsplit('/').next().unwrap_or(file);
                    base.trim_end_matches(".json").to_string()
                };
                if let Some(name) = pointer.strip_prefix("/definitions/") {
                    *r = format!("#/definitions/{}", qualify(&target_prefix, name));
                }
            }
            m.values_mut().for_each(|x| rewrite_refs(x, prefix));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, prefix)),
        _ => {}
    }
}

/// Definitions that another definition extends through `allOf`.
fn allof_bases(defs: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in defs.values() {
        collect_bases(v, &mut out);
    }
    out
}

fn collect_bases(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(all)) = m.get("allOf") {
                for r in all
                    .iter()
                    .filter_map(|x| x.get("$ref"))
                    .filter_map(Value::as_str)
                {
                    if let Some(name) = r.strip_prefix("#/definitions/") {
                        out.insert(name.to_string());
                    }
                }
            }
            m.values().for_each(|x| collect_bases(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_bases(x, out)),
        _ => {}
    }
}

/// Read-only properties become `false`; closed objects get `unevaluatedProperties: false`.
fn tighten(v: &mut Value, close: bool) {
    let Value::Object(m) = v else { return };
    if m.get("x-ms-enum").and_then(|x| x.get("modelAsString")) == Some(&Value::Bool(true)) {
        m.remove("enum");
    }
    let mut read_only = BTreeSet::new();
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        for (name, schema) in props.iter_mut() {
            if schema.get("readOnly") == Some(&Value::Bool(true)) {
                read_only.insert(name.clone());
                *schema = Value::Bool(false);
            } else {
                tighten(schema, true);
            }
        }
        if close && !m.contains_key("additionalProperties") {
            m.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
    }
    if let Some(Value::Array(req)) = m.get_mut("required") {
        req.retain(|r| r.as_str().is_none_or(|r| !read_only.contains(r)));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = m.get_mut(key) {
            tighten(child, true);
        }
    }
    if let Some(Value::Array(all)) = m.get_mut("allOf") {
        // Inline allOf members are merged into this object, so they stay open.
        all.iter_mut().for_each(|x| tighten(x, false));
    }
}
