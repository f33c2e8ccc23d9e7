//! The command line itself: help, exit codes, the error chain, logs on stderr.

use crate::common::cli::{NOW, ephemera, run, stderr, stdout, yaml_docs};

const SUBCOMMANDS: [&str; 14] = [
    "notify",
    "up",
    "down",
    "list",
    "status",
    "gc",
    "plan",
    "kubeconfig",
    "deploy",
    "promote",
    "abort",
    "extend",
    "doctor",
    "lock",
];

/// `plan` for the local environment at the fixed time.
const PLAN_LOCAL: [&str; 9] = [
    "plan",
    "--env",
    "environments/local.yaml",
    "--pr",
    "7",
    "--image",
    "ghcr.io/acme/cats:1",
    "--now",
    NOW,
];

#[test]
fn help_lists_every_subcommand() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("cli_help", stdout(&o));
}

#[test]
fn every_subcommand_help_has_an_example() {
    for sub in SUBCOMMANDS {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success(), "{sub}");
        let out = stdout(&o);
        assert!(
            out.contains(&format!("Example:\n  ephemera {sub} ")),
            "{sub} --help has no example:\n{out}"
        );
        for flag in [
            "--output",
            "--log-format",
            "--kubeconfig",
            "-v, --verbose",
            "-q, --quiet",
        ] {
            assert!(out.contains(flag), "{sub} --help lacks {flag}");
        }
    }
}

#[test]
fn plan_help_snapshot() {
    insta::assert_snapshot!("cli_plan_help", stdout(&run(&["plan", "--help"])));
}

/// The engine-backed subcommands on the local provider, with a state directory of the test's
/// own and no environment in it: nothing to list, nothing to show, and `down` of what is not
/// there succeeds.
#[test]
fn engine_subcommands_on_an_empty_local_provider() {
    let state = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        ephemera()
            .args(args)
            .env("XDG_STATE_HOME", state.path())
            .output()
            .unwrap()
    };
    let o = cmd(&[
        "list",
        "--env",
        "environments/local.yaml",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );

    let o = cmd(&[
        "down",
        "--env",
        "environments/local.yaml",
        "--pr",
        "9",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "pr-9: already-gone\n");

    let o = cmd(&["status", "--env", "environments/local.yaml", "--pr", "9"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pr-9 does not exist"), "{}", stderr(&o));

    for sub in ["promote", "abort", "deploy", "kubeconfig"] {
        let mut args = vec![sub, "--env", "environments/local.yaml", "--pr", "9"];
        if sub == "deploy" {
            args.extend(["--image", "ghcr.io/acme/cats:2"]);
        }
        let o = cmd(&args);
        assert_eq!(o.status.code(), Some(2), "{sub}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "error: environment pr-9 does not exist\n",
            "{sub}"
        );
    }

    let o = cmd(&[
        "extend",
        "--env",
        "environments/local.yaml",
        "--pr",
        "9",
        "--by",
        "forever",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: --by: "), "{}", stderr(&o));
}

#[test]
fn doctor_reports_as_json() {
    let o = run(&["doctor", "--output", "json"]);
    assert!(
        o.status.success(),
        "without --env the report alone does not fail: {}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert!(v["providers"].is_array(), "{v}");
}

#[test]
fn every_subcommand_checks_its_input_first() {
    for sub in [
        "up",
        "down",
        "status",
        "kubeconfig",
        "deploy",
        "promote",
        "abort",
    ] {
        let o = run(&[sub, "--env", "environments/local.yaml", "--pr", "0"]);
        assert_eq!(o.status.code(), Some(2), "{sub}");
        assert_eq!(
            stderr(&o),
            "error: --pr: \"0\" is not a pull request number (a positive integer such as 42)\n",
            "{sub}"
        );
    }
}

#[test]
fn version() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        format!("ephemera {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn logs_go_to_stderr_as_json_and_results_stay_on_stdout() {
    let o = run(&[&PLAN_LOCAL[..], &["-vv", "--log-format", "json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "-vv logs something");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert!(v["level"].is_string(), "{l}");
    }
    assert!(err.contains("planning"), "{err}");
    // stdout is still exactly the plan.
    assert!(yaml_docs(&stdout(&o)).len() > 5);
}

#[test]
fn rust_log_controls_logs() {
    let base = PLAN_LOCAL;
    let quiet = ephemera().args(base).output().unwrap();
    assert_eq!(stderr(&quiet), "", "no logs at the default level");
    let loud = ephemera()
        .args(base)
        .env("RUST_LOG", "ephemera=debug")
        .output()
        .unwrap();
    assert!(stderr(&loud).contains("planning"), "{}", stderr(&loud));
    assert_eq!(quiet.stdout, loud.stdout);
}

/// A write under `--out` that fails names the flag, in one line (the causes joined in it).
#[test]
fn a_failed_write_under_out_is_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("file");
    std::fs::write(&out, "not a directory").unwrap();
    let o = run(&[
        "plan",
        "--env",
        "environments/local.yaml",
        "--pr",
        "7",
        "--image",
        "ghcr.io/acme/cats:1",
        "--out",
        out.join("plan").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: --out: "), "{err}");
    assert!(err.contains("Not a directory"), "{err}");
}
