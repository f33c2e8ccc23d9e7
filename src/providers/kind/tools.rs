//! What the kind provider needs on this machine: the `kind` CLI, and a container runtime it can
//! drive (docker or podman, or the one `KIND_EXPERIMENTAL_PROVIDER` names).

use std::path::PathBuf;

use crate::providers::ProviderError;
use crate::providers::probe::Probe;

/// The kind release the install hint names.
pub const KIND_VERSION: &str = "v0.32.0";

/// kind's own variable for choosing the node runtime.
pub const RUNTIME_ENV: &str = "KIND_EXPERIMENTAL_PROVIDER";

/// A tool that is missing, and how to get it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    pub tool: String,
    pub hint: String,
}

/// The tools found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    pub kind: PathBuf,
    /// `docker`, `podman` or `nerdctl`, and where it is.
    pub runtime: (String, PathBuf),
}

fn kind_hint() -> String {
    format!(
        "install kind: `go install sigs.k8s.io/kind@{KIND_VERSION}` (it lands in $(go env GOPATH)/bin, which must be \
         on PATH), or put the release binary for your platform on PATH"
    )
}

fn runtime_hint(name: &str) -> String {
    match name {
        "podman" => "install Podman (Debian/Ubuntu: `apt-get install podman`)".into(),
        "nerdctl" => "install nerdctl with containerd, and put nerdctl on PATH".into(),
        _ => "install Docker Engine (Debian/Ubuntu: `apt-get install docker.io`) and start it \
              (`systemctl start docker`), or install Podman (`apt-get install podman`)"
            .into(),
    }
}

/// What was found and what is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub kind: Option<PathBuf>,
    /// `docker`, `podman` or `nerdctl`, and where it is.
    pub runtime: Option<(String, PathBuf)>,
    pub missing: Vec<Missing>,
}

/// Looks for kind and a container runtime.
pub fn check(probe: &impl Probe) -> Findings {
    let mut missing = Vec::new();
    let runtime = match probe.var_nonempty(RUNTIME_ENV) {
        Some(name) => {
            let found = probe.which(&name).map(|p| (name.clone(), p));
            if found.is_none() {
                missing.push(Missing {
                    tool: format!("{name} (chosen by {RUNTIME_ENV})"),
                    hint: format!("{}, or unset {RUNTIME_ENV}", runtime_hint(&name)),
                });
            }
            found
        }
        None => {
            let found = ["docker", "podman"]
                .into_iter()
                .find_map(|n| probe.which(n).map(|p| (n.to_string(), p)));
            if found.is_none() {
                missing.push(Missing {
                    tool: "docker or podman".into(),
                    hint: runtime_hint("docker"),
                });
            }
            found
        }
    };
    let kind = probe.which("kind");
    if kind.is_none() {
        missing.push(Missing {
            tool: "kind".into(),
            hint: kind_hint(),
        });
    }
    Findings {
        kind,
        runtime,
        missing,
    }
}

/// Checks for kind and a container runtime.
///
/// # Errors
/// Every missing tool, each with how to install it.
pub fn find(probe: &impl Probe) -> Result<Tools, Vec<Missing>> {
    match check(probe) {
        Findings {
            kind: Some(kind),
            runtime: Some(runtime),
            ..
        } => Ok(Tools { kind, runtime }),
        f => Err(f.missing),
    }
}

/// The missing tools as one error: what is missing, and how to install each.
pub fn missing_error(missing: &[Missing]) -> ProviderError {
    ProviderError::MissingTool {
        tool: missing
            .iter()
            .map(|m| m.tool.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        hint: missing
            .iter()
            .map(|m| m.hint.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::probe::FakeProbe;

    #[test]
    fn finds_docker_first_then_podman() {
        let p = FakeProbe::new([("PATH", "/b")])
            .with_executable("/b/kind")
            .with_executable("/b/podman");
        let t = find(&p).unwrap();
        assert_eq!(
            t.runtime,
            ("podman".to_string(), PathBuf::from("/b/podman"))
        );
        let p = p.with_executable("/b/docker");
        assert_eq!(find(&p).unwrap().runtime.0, "docker");
    }

    #[test]
    fn names_everything_missing() {
        let err = missing_error(&find(&FakeProbe::new([("PATH", "/b")])).unwrap_err()).to_string();
        assert!(
            err.starts_with("docker or podman and kind is not available: install Docker Engine"),
            "{err}"
        );
        assert!(err.contains("go install sigs.k8s.io/kind@v0.32.0"), "{err}");
    }

    #[test]
    fn the_runtime_kind_is_told_to_use_must_exist() {
        let p = FakeProbe::new([("PATH", "/b"), (RUNTIME_ENV, "podman")])
            .with_executable("/b/kind")
            .with_executable("/b/docker");
        let m = find(&p).unwrap_err();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].tool, "podman (chosen by KIND_EXPERIMENTAL_PROVIDER)");
    }
}
