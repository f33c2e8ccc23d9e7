//! CI integration: GitHub Actions step outputs and the job summary.
//!
//! When `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` are set, `up` writes its outputs (name, url,
//! kubeconfig path, expires-at) and a markdown summary there. Values are written with a random
//! heredoc delimiter, so no value (not even one holding newlines) can forge another output.

use std::io::Write;
use std::path::Path;

/// One output for a later step.
pub type Output<'a> = (&'a str, String);

/// Appends `outputs` to the file named by `GITHUB_OUTPUT`, if set.
///
/// # Errors
/// I/O errors writing the file.
pub fn write_outputs(outputs: &[Output<'_>]) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        return Ok(false);
    };
    append(Path::new(&path), &format_outputs(outputs, &delimiter()))?;
    Ok(true)
}

/// Appends `markdown` to the file named by `GITHUB_STEP_SUMMARY`, if set.
///
/// # Errors
/// I/O errors writing the file.
pub fn write_summary(markdown: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(false);
    };
    append(Path::new(&path), markdown)?;
    Ok(true)
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn delimiter() -> String {
    let n: u128 = rand::random();
    format!("ephemera_{n:032x}")
}

/// `key<<DELIM\nvalue\nDELIM\n` for each output.
fn format_outputs(outputs: &[Output<'_>], delim: &str) -> String {
    let mut s = String::new();
    for (key, value) in outputs {
        s.push_str(&format!("{key}<<{delim}\n{value}\n{delim}\n"));
    }
    s
}

/// How a PR ended, when the Actions event says (`pull_request` or `pull_request_target` with
/// action `closed`): merged or closed unmerged. `None` outside Actions, for other events, and
/// when the event cannot be read.
pub fn closed_pr_from_event() -> Option<PrEnd> {
    let path = std::env::var_os("GITHUB_EVENT_PATH")?;
    let text = std::fs::read_to_string(path).ok()?;
    pr_end(&serde_json::from_str(&text).ok()?)
}

/// How a PR ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrEnd {
    Merged,
    Closed,
}

impl PrEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            PrEnd::Merged => "merged",
            PrEnd::Closed => "closed",
        }
    }
}

fn pr_end(event: &serde_json::Value) -> Option<PrEnd> {
    let pr = event.get("pull_request")?;
    if event.get("action")?.as_str()? != "closed" {
        return None;
    }
    Some(if pr.get("merged")?.as_bool()? {
        PrEnd::Merged
    } else {
        PrEnd::Closed
    })
}

/// Escapes text for a markdown table cell.
pub fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_use_a_heredoc_that_values_cannot_break() {
        let d = delimiter();
        let text = format_outputs(
            &[("name", "pr-1".into()), ("url", "x\nname=evil".into())],
            &d,
        );
        assert_eq!(
            text,
            format!("name<<{d}\npr-1\n{d}\nurl<<{d}\nx\nname=evil\n{d}\n")
        );
        assert_ne!(delimiter(), d, "delimiters are random");
    }

    #[test]
    fn a_closed_event_says_whether_the_pr_was_merged() {
        let ev = |action: &str, merged: bool| serde_json::json!({"action": action, "pull_request": {"number": 4, "merged": merged}});
        assert_eq!(pr_end(&ev("closed", true)), Some(PrEnd::Merged));
        assert_eq!(pr_end(&ev("closed", false)), Some(PrEnd::Closed));
        assert_eq!(pr_end(&ev("unlabeled", false)), None);
        assert_eq!(pr_end(&serde_json::json!({"schedule": "17 * * * *"})), None);
    }

    #[test]
    fn markdown_cells_are_escaped() {
        assert_eq!(md_cell("a|b\n<script>"), "a\\|b &lt;script&gt;");
    }
}
