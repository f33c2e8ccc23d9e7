//! Changes one scalar of a YAML file in place, by position: every other byte of the file
//! (comments, quoting, blank lines, key order) stays as it was.
//!
//! The file is read line by line as block-style YAML to find where each key's value sits; the
//! result is parsed again and must equal the original document with just that one value changed,
//! so a file this reader misunderstands is refused instead of being corrupted.

use serde_json::Value;

/// Which value to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A key path such as `image.tag` (each part a mapping key), as in a Helm values file.
    Key(Vec<String>),
    /// The `images:` entry of a kustomization whose `name` is this: its `newTag` (or `digest`
    /// when `digest` is true) is set, and added after `name` when missing.
    KustomizeImage { name: String, digest: bool },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Key(parts) => f.write_str(&parts.join(".")),
            Target::KustomizeImage { name, digest } => {
                let field = if *digest { "digest" } else { "newTag" };
                write!(f, "images[name={name}].{field}")
            }
        }
    }
}

/// The file after an edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    /// False when the value already was the wanted one (`text` is then the input).
    pub changed: bool,
}

/// Why a file could not be edited. The message names the target, never the file's content
/// beyond the one value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{target}: not found")]
    NotFound { target: String },
    #[error("{target}: found {count} times")]
    Ambiguous { target: String, count: usize },
    #[error("{target}: line {line} holds a {what}, not a plain value this editor can replace")]
    NotScalar {
        target: String,
        line: usize,
        what: &'static str,
    },
    #[error("line {line}: {why}")]
    Unreadable { line: usize, why: String },
    #[error("not valid YAML: {0}")]
    Parse(String),
    #[error(
        "{target}: the edited file did not read back as the same document with one value changed"
    )]
    Verify { target: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// One `key: value` found in the file.
#[derive(Clone, Debug)]
struct Entry {
    path: Vec<Seg>,
    /// 0-based line index.
    line: usize,
    /// Column of the key.
    key_col: usize,
    /// Byte range of the value's text within the line (empty for a parent key).
    value: std::ops::Range<usize>,
}

/// Sets `target` to `value` in `text`.
///
/// # Errors
/// The target is missing, ambiguous or not a plain scalar; the file is not block-style YAML
/// this reader follows; or the result does not read back as intended.
pub fn set(text: &str, target: &Target, value: &str) -> Result<Edited, EditError> {
    let original = parse(text)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let entries = scan(&lines)?;
    let (path, edit) = match target {
        Target::Key(parts) => {
            let path: Vec<Seg> = parts.iter().map(|p| Seg::Key(p.clone())).collect();
            let e = unique(&entries, &path, target)?;
            (path, Change::Replace(e))
        }
        Target::KustomizeImage { name, digest } => {
            kustomize(&entries, &lines, name, *digest, target)?
        }
    };
    if pointer(&original, &path) == Some(&Value::String(value.to_string())) {
        return Ok(Edited {
            text: text.to_string(),
            changed: false,
        });
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match edit {
        Change::Replace(e) => {
            let line = lines[e.line];
            let old = &line[e.value.clone()];
            if old.is_empty()
                || matches!(
                    old.as_bytes()[0],
                    b'{' | b'[' | b'|' | b'>' | b'&' | b'*' | b'!'
                )
            {
                let what = if old.is_empty() {
                    "mapping or list"
                } else {
                    "flow collection, block scalar, anchor or tag"
                };
                return Err(EditError::NotScalar {
                    target: target.to_string(),
                    line: e.line + 1,
                    what,
                });
            }
            out[e.line] = format!(
                "{}{}{}",
                &line[..e.value.start],
                scalar(old, value),
                &line[e.value.end..]
            );
        }
        Change::Insert { after, col, key } => {
            let line = format!("{}{key}: {}", " ".repeat(col), quoted(value));
            if lines[after].ends_with('\n') {
                out.insert(after + 1, format!("{line}\n"));
            } else {
                // The entry ends the file without a newline: so does the added line.
                out[after] = format!("{}\n", lines[after]);
                out.insert(after + 1, line);
            }
        }
    }
    let edited: String = out.concat();
    verify(&original, &edited, &path, value, target)?;
    Ok(Edited {
        text: edited,
        changed: true,
    })
}

enum Change {
    Replace(Entry),
    Insert {
        after: usize,
        col: usize,
        key: &'static str,
    },
}

fn unique<'a>(entries: &'a [Entry], path: &[Seg], target: &Target) -> Result<Entry, EditError> {
    let found: Vec<&'a Entry> = entries.iter().filter(|e| e.path == path).collect();
    match found.as_slice() {
        [] => Err(EditError::NotFound {
            target: target.to_string(),
        }),
        [one] => Ok((*one).clone()),
        many => Err(EditError::Ambiguous {
            target: target.to_string(),
            count: many.len(),
        }),
    }
}

fn kustomize(
    entries: &[Entry],
    lines: &[&str],
    name: &str,
    digest: bool,
    target: &Target,
) -> Result<(Vec<Seg>, Change), EditError> {
    let images = Seg::Key("images".into());
    let named: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            matches!(e.path.as_slice(), [i, Seg::Index(_), Seg::Key(k)] if *i == images && k == "name")
                && unquote(&lines[e.line][e.value.clone()]).as_deref() == Some(name)
        })
        .collect();
    let entry = match named.as_slice() {
        [] => {
            return Err(EditError::NotFound {
                target: target.to_string(),
            });
        }
        [one] => *one,
        many => {
            return Err(EditError::Ambiguous {
                target: target.to_string(),
                count: many.len(),
            });
        }
    };
    let key = if digest { "digest" } else { "newTag" };
    let mut path = entry.path.clone();
    path.pop();
    path.push(Seg::Key(key.into()));
    let change = match entries.iter().find(|e| e.path == path) {
        Some(e) => Change::Replace(e.clone()),
        None => Change::Insert {
            after: entry.line,
            col: entry.key_col,
            key,
        },
    };
    Ok((path, change))
}

/// The new value written in the style of the old one: plain stays plain when the value reads
/// back as that string, single quotes stay single, anything else is double-quoted.
fn scalar(old: &str, value: &str) -> String {
    if old.starts_with('\'') {
        return format!("'{}'", value.replace('\'', "''"));
    }
    if !old.starts_with('"') && is_plain_safe(value) {
        return value.to_string();
    }
    quoted(value)
}

fn quoted(value: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar with the same value.
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{}\"", value.escape_default()))
}

/// Characters that never start or change a YAML construct inside a plain scalar, and a value
/// that reads back as that very string (not a number, bool or null).
fn is_plain_safe(value: &str) -> bool {
    let chars_ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+' | '@'))
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    chars_ok
        && serde_saphyr::from_str::<Value>(&format!("v: {value}\n"))
            .is_ok_and(|v| v.get("v") == Some(&Value::String(value.to_string())))
}

fn unquote(raw: &str) -> Option<String> {
    let v: Value = serde_saphyr::from_str(&format!("v: {raw}\n")).ok()?;
    v.get("v")?.as_str().map(str::to_string)
}

fn parse(text: &str) -> Result<Value, EditError> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| EditError::Parse(first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn pointer<'a>(doc: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

fn set_at(doc: &mut Value, path: &[Seg], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str()),
            Seg::Index(i) => cur.get_mut(*i),
        };
        let Some(next) = next else { return false };
        cur = next;
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(map)) => {
            map.insert(k.clone(), value);
            true
        }
        (Seg::Index(i), Value::Array(items)) if *i < items.len() => {
            items[*i] = value;
            true
        }
        _ => false,
    }
}

fn verify(
    original: &Value,
    edited: &str,
    path: &[Seg],
    value: &str,
    target: &Target,
) -> Result<(), EditError> {
    let mut want = original.clone();
    let fail = || EditError::Verify {
        target: target.to_string(),
    };
    if !set_at(&mut want, path, Value::String(value.into())) {
        return Err(fail());
    }
    match parse(edited) {
        Ok(have) if have == want => Ok(()),
        _ => Err(fail()),
    }
}

/// Finds every `key: value` of the block-style document in `lines`, with its path.
fn scan(lines: &[&str]) -> Result<Vec<Entry>, EditError> {
    let mut entries = Vec::new();
    // Open parents: (column, segment).
    let mut stack: Vec<(usize, Seg)> = Vec::new();
    // Inside a block scalar (`|`, `>`): lines indented deeper than this column belong to it.
    let mut block_scalar: Option<usize> = None;
    for (no, raw) in lines.iter().enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(col) = block_scalar {
            if rest.is_empty() || indent > col {
                continue;
            }
            block_scalar = None;
        }
        if rest.is_empty() || rest.starts_with('#') || rest == "---" || rest.starts_with("--- ") {
            continue;
        }
        if rest.starts_with('\t') {
            return Err(EditError::Unreadable {
                line: no + 1,
                why: "a tab indents this line".into(),
            });
        }
        let (col, body) = items(&mut stack, indent, rest);
        let Some((key, value_at)) = key_of(body) else {
            continue;
        };
        stack.retain(|(c, _)| *c < col);
        let value_start = col + value_at;
        let value_end = value_end(line, value_start);
        let mut path: Vec<Seg> = stack.iter().map(|(_, s)| s.clone()).collect();
        path.push(Seg::Key(key));
        let value_text = &line[value_start..value_end];
        if value_text.starts_with('|') || value_text.starts_with('>') {
            block_scalar = Some(col);
        }
        if value_text.is_empty() {
            stack.push((col, path.last().cloned().unwrap_or(Seg::Index(0))));
        }
        entries.push(Entry {
            path,
            line: no,
            key_col: col,
            value: value_start..value_end,
        });
    }
    Ok(entries)
}

/// Consumes the `- ` sequence-item markers at the start of `rest` (at column `indent`), pushing
/// an index for each; returns the column and text after them.
fn items<'a>(stack: &mut Vec<(usize, Seg)>, indent: usize, rest: &'a str) -> (usize, &'a str) {
    let (mut col, mut body) = (indent, rest);
    while body == "-" || body.starts_with("- ") {
        // The previous item of this same sequence, if any, decides the index.
        let mut index = 0;
        while let Some((c, seg)) = stack.last() {
            if *c > col || (*c == col && matches!(seg, Seg::Index(_))) {
                if let (true, Seg::Index(i)) = (*c == col, seg) {
                    index = i + 1;
                }
                stack.pop();
            } else {
                break;
            }
        }
        stack.push((col, Seg::Index(index)));
        let after = body[1..].trim_start_matches(' ');
        col += body.len() - after.len();
        body = after;
    }
    (col, body)
}

/// `key: value` → the key (unquoted) and the byte offset of the value within `body`.
fn key_of(body: &str) -> Option<(String, usize)> {
    let (key, after_key) = match body.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let end = body[1..].find(*q as char)? + 2;
            (unquote(&body[..end])?, end)
        }
        _ => {
            let end = body
                .find(": ")
                .or_else(|| body.ends_with(':').then(|| body.len() - 1))?;
            let key = &body[..end];
            if key.contains(" #") || key.starts_with(['{', '[', '&', '*', '!', '?']) {
                return None;
            }
            (key.trim_end().to_string(), end)
        }
    };
    let rest = body[after_key..].strip_prefix(':')?;
    let spaces = rest.len() - rest.trim_start_matches(' ').len();
    Some((key, after_key + 1 + spaces))
}

/// Where the value starting at `start` ends: before a ` #` comment outside quotes, and before
/// trailing spaces.
fn value_end(line: &str, start: usize) -> usize {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut end = line.len();
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(b'"') if b == b'\\' => i += 1,
            Some(_) => {}
            None if (b == b'"' || b == b'\'') && i == start => quote = Some(b),
            None if b == b'#' && (i == start || bytes[i - 1] == b' ') => {
                end = i;
                break;
            }
            None => {}
        }
        i += 1;
    }
    start + line[start..end].trim_end().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Target {
        Target::Key(path.split('.').map(str::to_string).collect())
    }

    const VALUES: &str = "# Production values\nreplicaCount: 3\nimage:\n  repository: ghcr.io/acme/cats   # the app\n  # the tag the release job sets\n  tag: \"sha-1111\"  # bumped by ephemera\n  pullPolicy: IfNotPresent\nresources: {}\nnote: |\n  tag: not-this\n";

    #[test]
    fn a_helm_key_changes_in_place_and_nothing_else() {
        let out = set(VALUES, &key("image.tag"), "sha-2222").unwrap();
        assert!(out.changed);
        assert_eq!(out.text, VALUES.replace("\"sha-1111\"", "\"sha-2222\""));
    }

    #[test]
    fn a_plain_value_stays_plain_unless_it_would_read_back_as_another_type() {
        let text = "image:\n  tag: v1 # c\n";
        for (value, written) in [
            ("v2", "v2"),
            ("1.0", "\"1.0\""),
            ("true", "\"true\""),
            ("a: #b", "\"a: #b\""),
        ] {
            let out = set(text, &key("image.tag"), value).unwrap();
            assert_eq!(
                out.text,
                format!("image:\n  tag: {written} # c\n"),
                "{value}"
            );
        }
    }

    #[test]
    fn the_same_value_is_no_change() {
        let out = set(VALUES, &key("image.tag"), "sha-1111").unwrap();
        assert!(!out.changed);
        assert_eq!(out.text, VALUES);
    }

    #[test]
    fn missing_ambiguous_and_non_scalar_targets_are_refused() {
        assert_eq!(
            set(VALUES, &key("image.digest"), "x"),
            Err(EditError::NotFound {
                target: "image.digest".into()
            })
        );
        assert!(matches!(
            set(VALUES, &key("image"), "x"),
            Err(EditError::NotScalar { line: 3, .. })
        ));
        assert!(matches!(
            set(VALUES, &key("resources"), "x"),
            Err(EditError::NotScalar { line: 8, .. })
        ));
        assert!(matches!(
            set("a: [\n", &key("a"), "x"),
            Err(EditError::Parse(_))
        ));
    }

    const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- rollout.yaml\nimages:\n# the app\n- name: ghcr.io/acme/cats\n  newTag: sha-1111\n- name: ghcr.io/acme/sidecar\n";

    #[test]
    fn a_kustomize_image_entry_changes_its_new_tag() {
        let t = Target::KustomizeImage {
            name: "ghcr.io/acme/cats".into(),
            digest: false,
        };
        let out = set(KUSTOMIZATION, &t, "sha-2222").unwrap();
        assert_eq!(
            out.text,
            KUSTOMIZATION.replace("newTag: sha-1111", "newTag: sha-2222")
        );
    }

    #[test]
    fn a_missing_new_tag_is_added_under_its_entry() {
        let t = Target::KustomizeImage {
            name: "ghcr.io/acme/sidecar".into(),
            digest: false,
        };
        let out = set(KUSTOMIZATION, &t, "v2").unwrap();
        assert_eq!(out.text, format!("{KUSTOMIZATION}  newTag: \"v2\"\n"));
        let no_newline = KUSTOMIZATION.trim_end_matches('\n');
        let out = set(no_newline, &t, "v2").unwrap();
        assert_eq!(out.text, format!("{no_newline}\n  newTag: \"v2\""));
    }

    #[test]
    fn indented_sequences_and_digests_work_too() {
        let text = "images:\n  - name: a\n    digest: sha256:aa\n  - name: b\n    newTag: x\n";
        let t = Target::KustomizeImage {
            name: "a".into(),
            digest: true,
        };
        let out = set(text, &t, "sha256:bb").unwrap();
        assert_eq!(out.text, text.replace("sha256:aa", "\"sha256:bb\""));
        let t = Target::KustomizeImage {
            name: "b".into(),
            digest: false,
        };
        assert_eq!(
            set(text, &t, "v2").unwrap().text,
            text.replace("newTag: x", "newTag: v2")
        );
        let t = Target::KustomizeImage {
            name: "c".into(),
            digest: false,
        };
        assert!(matches!(
            set(text, &t, "y"),
            Err(EditError::NotFound { .. })
        ));
    }
}
