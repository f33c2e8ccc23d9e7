//! Handlebars templates, embedded in the binary and overridable with `--templates DIR`.
//!
//! Strict mode is on (a missing variable is an error naming the template and line) and HTML
//! escaping is off. Untrusted values must go through the `yaml` helper, which renders any value
//! as a quoted, YAML-safe flow scalar (a JSON string, object or array is valid YAML flow).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "templates/"]
struct Embedded;

/// Template errors always name the template file, and the line when the engine knows it.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// `name` is the file as the user knows it: `templates/<name>` for an embedded template,
    /// the override file's path for one from `--templates`.
    #[error("{name}:{line}:{column}: {message}")]
    Syntax {
        name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// `name` as for [`TemplateError::Syntax`].
    #[error("{name}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Render {
        name: String,
        line: Option<usize>,
        message: String,
    },
    #[error("templates/{0}: no such template")]
    Missing(String),
    #[error("{}: {message}", .path.display())]
    Override { path: PathBuf, message: String },
    /// The `--templates` directory itself is unusable.
    #[error("--templates: {}: {message}", .path.display())]
    Dir { path: PathBuf, message: String },
}

/// The template set: embedded files, with files under an override directory taking their place.
pub struct Renderer {
    hb: Handlebars<'static>,
    override_dir: Option<PathBuf>,
    /// The templates the override directory replaced or added: name → the user's file.
    overridden: std::collections::BTreeMap<String, PathBuf>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("override_dir", &self.override_dir)
            .finish()
    }
}

const TEMPLATE_SUFFIX: &str = ".hbs";

impl Renderer {
    /// Loads the embedded templates, then every `*.hbs` under `override_dir`.
    ///
    /// # Errors
    /// A template that does not parse, named with its line and column.
    pub fn new(override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("yaml", Box::new(yaml_helper));
        for name in Embedded::iter() {
            if !name.ends_with(TEMPLATE_SUFFIX) {
                continue;
            }
            let file =
                Embedded::get(&name).ok_or_else(|| TemplateError::Missing(name.to_string()))?;
            let text = String::from_utf8_lossy(&file.data);
            register(&mut hb, &name, &text, &format!("templates/{name}"))?;
        }
        let mut overridden = std::collections::BTreeMap::new();
        if let Some(dir) = override_dir {
            let files = override_files(dir)?;
            for (rel, path) in files {
                if !rel.ends_with(TEMPLATE_SUFFIX) {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| TemplateError::Override {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                register(&mut hb, &rel, &text, &path.display().to_string())?;
                overridden.insert(rel, path);
            }
        }
        Ok(Renderer {
            hb,
            override_dir: override_dir.map(Path::to_path_buf),
            overridden,
        })
    }

    /// Renders template `name` (relative to `templates/`, e.g. `app/rollout.yaml.hbs`).
    ///
    /// # Errors
    /// A missing template, or a render failure (missing variable, bad helper argument) naming
    /// the template and line.
    pub fn render(&self, name: &str, data: &serde_json::Value) -> Result<String, TemplateError> {
        if !self.hb.has_template(name) {
            return Err(TemplateError::Missing(name.to_string()));
        }
        self.hb.render(name, data).map_err(|e| {
            let message = match e.reason() {
                RenderErrorReason::MissingVariable(Some(var)) => {
                    format!("missing variable `{var}`")
                }
                other => other.to_string(),
            };
            let name = e.template_name.as_deref().unwrap_or(name);
            TemplateError::Render {
                name: match self.overridden.get(name) {
                    Some(path) => path.display().to_string(),
                    None => format!("templates/{name}"),
                },
                line: e.line_no,
                message,
            }
        })
    }

    /// Whether a template of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.hb.has_template(name)
    }

    /// The names of all templates under `prefix`, sorted, so output order is deterministic.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .hb
            .get_templates()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// A non-template data file under `templates/` (such as an add-on's `addon.yaml`), from the
    /// override directory when it has one.
    pub fn data_file(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        if let Some(dir) = &self.override_dir {
            let p = dir.join(name);
            if let Ok(bytes) = std::fs::read(&p) {
                return Some(Cow::Owned(bytes));
            }
        }
        Embedded::get(name).map(|f| f.data)
    }

    /// The names of data files under `prefix` ending in `suffix`, embedded and overridden, sorted.
    pub fn data_files(&self, prefix: &str, suffix: &str) -> Vec<String> {
        let mut v: Vec<String> = Embedded::iter()
            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .map(|n| n.to_string())
            .collect();
        if let Some(dir) = &self.override_dir
            && let Ok(files) = walk(dir)
        {
            v.extend(
                files
                    .into_iter()
                    .map(|(rel, _)| rel)
                    .filter(|n| n.starts_with(prefix) && n.ends_with(suffix)),
            );
        }
        v.sort();
        v.dedup();
        v
    }
}

/// Registers template `name`; `shown` is the file to name in a syntax error.
fn register(
    hb: &mut Handlebars<'static>,
    name: &str,
    text: &str,
    shown: &str,
) -> Result<(), TemplateError> {
    hb.register_template_string(name, text).map_err(|e| {
        let (line, column) = e.pos().unwrap_or((0, 0));
        TemplateError::Syntax {
            name: shown.to_string(),
            line,
            column,
            message: e.reason().to_string(),
        }
    })
}

/// The files of the `--templates` directory `dir`, each checked to take the place of a file
/// ephemera uses: a built-in one of the same name, a new template under `app/` (rendered with
/// the app's), or a file of an add-on under `addons/<name>/` (a new add-on brings its
/// `addon.yaml`). Anything else would be ignored without a word, so it is an error.
///
/// # Errors
/// [`TemplateError::Dir`] when `dir` is not a readable directory; [`TemplateError::Override`]
/// naming a file that matches nothing.
fn override_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, TemplateError> {
    let dir_error = |message: String| TemplateError::Dir {
        path: dir.to_path_buf(),
        message,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(dir_error("is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(dir_error("no such directory".into()));
        }
        Err(e) => return Err(dir_error(e.to_string())),
    }
    let files = walk(dir).map_err(|e| dir_error(e.to_string()))?;
    let addon_of = |rel: &str| {
        rel.strip_prefix("addons/")
            .and_then(|r| r.split_once('/'))
            .map(|(name, _)| format!("addons/{name}/addon.yaml"))
    };
    let defined: std::collections::BTreeSet<String> = files
        .iter()
        .map(|(rel, _)| rel.clone())
        .chain(Embedded::iter().map(|n| n.to_string()))
        .filter(|n| n.starts_with("addons/") && n.ends_with("/addon.yaml"))
        .collect();
    for (rel, path) in &files {
        let known = Embedded::get(rel).is_some()
            || (rel.starts_with("app/") && rel.ends_with(".yaml.hbs"))
            || addon_of(rel).is_some_and(|def| defined.contains(&def));
        if !known {
            return Err(TemplateError::Override {
                path: path.clone(),
                message: "matches no template ephemera uses: --templates replaces files of the \
                          same name under templates/, and adds templates only under app/ \
                          (*.yaml.hbs) or addons/<name>/"
                    .into(),
            });
        }
    }
    Ok(files)
}

/// Every file under `dir`, as (path relative to `dir` with `/` separators, full path).
fn walk(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Renders one value as a YAML-safe flow scalar: JSON encoding, which YAML parses as the same
/// string (or map, or list), whatever quotes, colons, newlines or `$(...)` it holds.
pub fn yaml_quote(value: &serde_json::Value) -> String {
    // serde_json escapes C0 control characters, quotes and backslashes. YAML also refuses DEL and
    // the C1 controls (but U+0085) inside quotes, which JSON leaves raw: escape those too. Both
    // languages read `\uXXXX` the same way.
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
    if !json.chars().any(needs_yaml_escape) {
        return json;
    }
    json.chars()
        .fold(String::with_capacity(json.len() + 8), |mut out, c| {
            if needs_yaml_escape(c) {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push(c);
            }
            out
        })
}

fn needs_yaml_escape(c: char) -> bool {
    c == '\u{7f}' || (('\u{80}'..='\u{9f}').contains(&c) && c != '\u{85}')
}

fn yaml_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("yaml", 0))?;
    if param.is_value_missing() {
        let name = param
            .relative_path()
            .cloned()
            .unwrap_or_else(|| "value".into());
        return Err(RenderErrorReason::MissingVariable(Some(name)).into());
    }
    out.write(&yaml_quote(param.value()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn renderer_with(dir: &Path, files: &[(&str, &str)]) -> Result<Renderer, TemplateError> {
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Renderer::new(Some(dir))
    }

    #[test]
    fn yaml_helper_quotes_hostile_strings() {
        let dir = tempfile::tempdir().unwrap();
        let r = renderer_with(
            dir.path(),
            &[("app/x.yaml.hbs", "branch: {{yaml branch}}\n")],
        )
        .unwrap();
        for hostile in [
            "\": {a: b}",
            "$(rm -rf /)",
            "a\nb: c",
            "'; DROP",
            "# comment",
            "*alias",
            "&anchor",
            "null",
            "yes",
            "del\u{7f} c1\u{9b} nel\u{85}",
        ] {
            let out = r
                .render("app/x.yaml.hbs", &json!({"branch": hostile}))
                .unwrap();
            #[derive(serde::Deserialize)]
            struct Doc {
                branch: String,
            }
            let doc: Doc = serde_saphyr::from_str(&out).unwrap();
            assert_eq!(doc.branch, hostile, "rendered: {out}");
        }
    }

    #[test]
    fn missing_variable_names_template_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let r = renderer_with(
            dir.path(),
            &[("app/y.yaml.hbs", "a: 1\nb: {{yaml nope}}\n")],
        )
        .unwrap();
        let err = r
            .render("app/y.yaml.hbs", &json!({}))
            .unwrap_err()
            .to_string();
        // The user's file, not a built-in path.
        let file = dir.path().join("app/y.yaml.hbs");
        assert!(err.starts_with(&format!("{}:2", file.display())), "{err}");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn syntax_error_names_template_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let err = renderer_with(dir.path(), &[("app/z.yaml.hbs", "a: 1\nb: {{#if x}}\n")])
            .unwrap_err()
            .to_string();
        let file = dir.path().join("app/z.yaml.hbs");
        assert!(err.starts_with(&format!("{}:", file.display())), "{err}");
    }

    #[test]
    fn no_html_escaping() {
        let dir = tempfile::tempdir().unwrap();
        let r = renderer_with(dir.path(), &[("app/e.yaml.hbs", "{{v}}")]).unwrap();
        assert_eq!(
            r.render("app/e.yaml.hbs", &json!({"v": "<a&b>"})).unwrap(),
            "<a&b>"
        );
    }
}
