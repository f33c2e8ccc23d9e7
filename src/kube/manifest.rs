//! Manifests: multi-document YAML to objects, object identities, overlay merging and the
//! ownership labels.

use std::collections::BTreeMap;

use ::kube::api::DynamicObject;
use serde_json::Value;

use super::KubeError;

/// The identity of an object: apiVersion, kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    pub fn of(obj: &DynamicObject) -> ObjectId {
        let (api_version, kind) = obj
            .types
            .as_ref()
            .map(|t| (t.api_version.clone(), t.kind.clone()))
            .unwrap_or_default();
        ObjectId {
            api_version,
            kind,
            namespace: obj.metadata.namespace.clone(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The API group, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// Identity ignoring the version, so `v1beta1` and `v1` of one object match.
    pub fn group_kind_key(&self) -> (String, String, Option<String>, String) {
        (
            self.group().to_string(),
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// YAML options matching what kubectl accepts: YAML 1.1 octal (`0644`) and booleans, and limits
/// large enough for the biggest upstream install manifests (Argo CD's is 1.9 MB).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 50_000_000,
            max_nodes: 20_000_000,
            max_documents: 100_000,
        },
        legacy_octal_numbers: true,
    }
}

/// Splits multi-document YAML into objects. Empty documents are skipped; a `v1` `List` is
/// expanded into its items.
///
/// # Errors
/// [`KubeError::Parse`] naming `origin` and the document: YAML that does not parse, a document
/// that is not a mapping, or one without `apiVersion`, `kind` or `metadata.name`.
pub fn parse_manifest(text: &str, origin: &str) -> Result<Vec<DynamicObject>, KubeError> {
    parse_values(text, origin)?
        .into_iter()
        .map(|(document, v)| {
            to_object(v).map_err(|message| KubeError::Parse {
                origin: origin.to_string(),
                document,
                message,
            })
        })
        .collect()
}

/// Like [`parse_manifest`], but keeps each document as JSON (with its `null`s, which patch
/// overlays use to remove keys), numbered from 1.
///
/// # Errors
/// As [`parse_manifest`].
pub fn parse_values(text: &str, origin: &str) -> Result<Vec<(usize, Value)>, KubeError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            let msg = e.without_snippet().to_string();
            let first = msg.lines().next().unwrap_or("invalid YAML");
            let first = first.rfind(" at line ").map_or(first, |i| &first[..i]);
            KubeError::Parse {
                origin: origin.to_string(),
                document: 0,
                message: format!("{first}{at}"),
            }
        })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let document = i + 1;
        let parse_err = |message: String| KubeError::Parse {
            origin: origin.to_string(),
            document,
            message,
        };
        if doc.is_null() {
            continue;
        }
        let items = if doc.get("kind").and_then(Value::as_str) == Some("List")
            && doc.get("items").is_some()
        {
            doc.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        } else {
            vec![doc]
        };
        for item in items {
            identity_of(&item).map_err(&parse_err)?;
            out.push((document, item));
        }
    }
    Ok(out)
}

/// Checks that a document is an object with apiVersion, kind and metadata.name.
fn identity_of(doc: &Value) -> Result<(), String> {
    let Value::Object(map) = doc else {
        return Err("not a mapping".into());
    };
    let field = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let kind = field("kind").ok_or("no kind")?;
    let api_version = field("apiVersion").ok_or_else(|| format!("{kind} has no apiVersion"))?;
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(format!(
            "{api_version} {kind} has no metadata.name (generateName is not supported: a rerun would create another object)"
        ));
    }
    Ok(())
}

fn to_object(doc: Value) -> Result<DynamicObject, String> {
    identity_of(&doc)?;
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    serde_json::from_value(doc).map_err(|e| format!("{kind} {name}: {e}"))
}

/// Removes `null` values from maps, recursively: in a manifest `null` means "not set", and a
/// patch overlay uses it to remove a key.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Merges a patch into a base object:
/// - maps merge key by key, and `null` removes a key;
/// - lists of maps that all have a `name` merge item by item on `name` (new names are appended);
/// - lists of plain values merge as sets (new values are appended, order kept);
/// - anything else is replaced.
pub fn merge_patch(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(bv) => merge_patch(bv, pv),
                    None => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if named_maps(b) && named_maps(p) => {
            for item in p {
                let name = item.get("name");
                match b.iter_mut().find(|x| x.get("name") == name) {
                    Some(existing) => merge_patch(existing, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if plain(b) && plain(p) => {
            for item in p {
                if !b.contains(item) {
                    b.push(item.clone());
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn named_maps(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.get("name").is_some_and(Value::is_string))
}

fn plain(items: &[Value]) -> bool {
    items.iter().all(|i| !i.is_object() && !i.is_array())
}

/// Adds `labels` to an object's `metadata.labels`, replacing values of the same keys.
pub fn add_labels(obj: &mut DynamicObject, labels: &BTreeMap<String, String>) {
    let existing = obj.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        existing.insert(k.clone(), v.clone());
    }
}

/// An object as a JSON value (types, metadata and body), for merging.
pub fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Back from a JSON value.
///
/// # Errors
/// A message when the value is no longer an object with apiVersion, kind and name.
pub fn from_value(value: Value) -> Result<DynamicObject, String> {
    to_object(value)
}

/// The `status.conditions` of an object, as `type -> (status, reason, message)`.
pub fn conditions(obj: &Value) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for c in obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let s = |k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        out.insert(s("type"), (s("status"), s("reason"), s("message")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_become_objects_and_empty_ones_are_skipped() {
        let objs = parse_manifest(
            "---\n# comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns1}\ndata: {mode: 0644}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: ns1}}\n",
            "test.yaml",
        )
        .unwrap();
        let ids: Vec<String> = objs.iter().map(|o| ObjectId::of(o).to_string()).collect();
        assert_eq!(ids, ["ConfigMap ns1/a", "Namespace ns1"]);
        // YAML 1.1 octal, as kubectl reads it.
        assert_eq!(objs[0].data["data"]["mode"], json!(420));
    }

    #[test]
    fn documents_without_identity_are_errors_naming_file_and_document() {
        let err = parse_manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {generateName: x-}\n", "bundle/x.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("bundle/x.yaml: document 2: v1 Secret has no metadata.name"),
            "{err}"
        );
        let err = parse_manifest("- a\n- b\n", "y.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "y.yaml: document 1: not a mapping");
        let err = parse_manifest("a: [\n", "z.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with("z.yaml: document 0: ") && err.contains("line"),
            "{err}"
        );
    }

    #[test]
    fn every_shared_manifest_parses() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/manifests");
        let mut count = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    count += parse_manifest(&text, &p.display().to_string())
                        .unwrap()
                        .len();
                }
            }
        }
        // 59 Argo CD + 15 Rollouts + 19 + 19 ingress-nginx + 6 cert-manager + 10 + 12 Gateway API
        // + 11 + 13 NGF.
        assert_eq!(count, 59 + 15 + 19 + 19 + 6 + 10 + 12 + 11 + 13);
    }

    #[test]
    fn merge_patch_follows_the_documented_rules() {
        let mut base = json!({
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "containers": [{"name": "a", "args": ["--x", "--y"], "image": "i:1"}, {"name": "b"}],
                "ports": [{"port": 80}, {"port": 443}],
            }
        });
        let patch = json!({
            "spec": {
                "type": "ClusterIP",
                "externalTrafficPolicy": null,
                "containers": [{"name": "a", "args": ["--y", "--z"]}, {"name": "c"}],
                "ports": [{"port": 8080}],
            }
        });
        merge_patch(&mut base, &patch);
        assert_eq!(
            base,
            json!({
                "spec": {
                    "type": "ClusterIP",
                    "containers": [{"name": "a", "args": ["--x", "--y", "--z"], "image": "i:1"}, {"name": "b"}, {"name": "c"}],
                    "ports": [{"port": 8080}],
                }
            })
        );
    }

    #[test]
    fn nulls_are_stripped_recursively() {
        let mut v = json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}]});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"b": {"d": 1}, "e": [{}]}));
    }
}
