//! Running the real `ephemera` binary, in a process environment the test controls.

use std::process::Output;

/// The fixed time plan snapshots are taken at.
pub const NOW: &str = "2026-11-28T10:00:00Z";

/// `ephemera` with a clean environment: no GitHub Actions variables, no SOURCE_DATE_EPOCH, no
/// RUST_LOG, no template or manifest overrides; run from the repository root.
pub fn ephemera() -> assert_cmd::Command {
    let mut c =
        assert_cmd::Command::cargo_bin("ephemera").expect("the ephemera binary is built for tests");
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in CLEARED {
        c.env_remove(var);
    }
    c
}

/// The variables [`ephemera`] removes from the environment.
pub const CLEARED: [&str; 8] = [
    "GITHUB_HEAD_REF",
    "GITHUB_REPOSITORY",
    "GITHUB_ACTIONS",
    "SOURCE_DATE_EPOCH",
    "RUST_LOG",
    "EPHEMERA_TEMPLATES",
    "EPHEMERA_MANIFESTS",
    "AZURE_SUBSCRIPTION_ID",
];

/// Runs `ephemera ARGS`.
pub fn run(args: &[&str]) -> Output {
    ephemera().args(args).output().expect("ephemera runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every document of a YAML stream, parsed.
pub fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(text)
        .unwrap_or_else(|e| panic!("output is not a YAML stream: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The first document of `kind` named `name`.
pub fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the plan"))
}
