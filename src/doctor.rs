//! `ephemera doctor`: which providers can run on this machine, and for each that cannot, why and
//! the command that fixes it.
//!
//! Everything is checked through a [`Probe`] (environment variables and executables on `PATH`),
//! without touching the network, so the report is the same in a test as on the machine it
//! describes. The Azure check looks at which credential sources are configured; whether the
//! credential is accepted is only known when `up` asks Entra ID for a token.

use std::fmt;

use serde::Serialize;

use crate::config::{Environment, ProviderConfig};
use crate::providers::kind::tools as kind_tools;
use crate::providers::local::{self, bins};
pub use crate::providers::probe::{FakeProbe, Probe, SystemProbe};

/// One finding about a provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Whether this finding is good.
    pub ok: bool,
    /// What was found or is missing.
    pub what: String,
    /// Further lines, such as each credential source tried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// The command or setting that fixes a bad finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: impl Into<String>) -> Self {
        Check {
            ok: true,
            what: what.into(),
            detail: Vec::new(),
            fix: None,
        }
    }

    fn bad(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            ok: false,
            what: what.into(),
            detail: Vec::new(),
            fix: Some(fix.into()),
        }
    }
}

/// Whether one provider can run here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderReport {
    /// `aks`, `kind` or `local`.
    pub provider: &'static str,
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl ProviderReport {
    fn new(provider: &'static str, checks: Vec<Check>) -> Self {
        ProviderReport {
            provider,
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// The environment file `--env` named, and whether its provider can run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Selected {
    /// The environment file's `metadata.name`.
    pub name: String,
    pub provider: &'static str,
    pub ready: bool,
}

/// The whole report: every provider, and the selected environment's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    pub providers: Vec<ProviderReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Selected>,
}

impl DoctorReport {
    /// False only when `--env` named an environment whose provider cannot run here.
    pub fn ok(&self) -> bool {
        self.environment.as_ref().is_none_or(|s| s.ready)
    }

    /// The exit status `doctor` ends with: non-zero when the selected provider cannot run.
    pub fn exit_status(&self) -> crate::ExitStatus {
        if self.ok() {
            crate::ExitStatus::Ok
        } else {
            crate::ExitStatus::Failed
        }
    }
}

/// Checks every provider on the machine `probe` describes. With `env`, the report also says
/// whether that environment's provider can run, and the local check uses its `binDir`.
pub fn doctor(env: Option<&Environment>, probe: &impl Probe) -> DoctorReport {
    let local_cfg = match env.map(|e| &e.provider) {
        Some(ProviderConfig::Local(cfg)) => Some(cfg),
        _ => None,
    };
    let providers = vec![
        ProviderReport::new("aks", aks_checks(probe)),
        ProviderReport::new("kind", kind_checks(probe)),
        ProviderReport::new(
            "local",
            local_checks(local_cfg.and_then(|c| c.bin_dir.as_deref()), probe),
        ),
    ];
    let environment = env.map(|e| {
        let provider = e.provider.kind();
        let ready = providers.iter().any(|p| p.provider == provider && p.ready);
        Selected {
            name: e.metadata.name.clone(),
            provider,
            ready,
        }
    });
    DoctorReport {
        providers,
        environment,
    }
}

fn kind_checks(probe: &impl Probe) -> Vec<Check> {
    let f = kind_tools::check(probe);
    let mut checks = Vec::new();
    if let Some(p) = &f.kind {
        checks.push(Check::ok(format!("kind: {}", p.display())));
    }
    if let Some((name, p)) = &f.runtime {
        checks.push(Check::ok(format!("{name}: {}", p.display())));
    }
    checks.extend(
        f.missing
            .into_iter()
            .map(|m| Check::bad(format!("{} not found on PATH", m.tool), m.hint)),
    );
    checks
}

fn local_checks(bin_dir: Option<&str>, probe: &impl Probe) -> Vec<Check> {
    let search = match bins::Search::resolve(bin_dir, probe) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::bad(
                e.to_string(),
                format!("set {} or HOME", bins::BIN_ENV),
            )];
        }
    };
    let dirs = search
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let (_, missing) = search.locate(probe);
    let mut checks = vec![if missing.is_empty() {
        Check::ok(format!(
            "control-plane binaries: {dirs} ({})",
            search.source
        ))
    } else {
        Check::bad(
            format!(
                "missing {} in {dirs} ({})",
                missing.join(", "),
                search.source
            ),
            search.fix(),
        )
    }];
    match local::state_root(probe) {
        Ok(root) => checks.push(Check::ok(format!("state: {}", root.display()))),
        Err(e) => checks.push(Check::bad(e.to_string(), "set XDG_STATE_HOME or HOME")),
    }
    checks
}

/// What one Azure credential source says: configured, half-configured (an error), or absent.
enum Source {
    Configured(String),
    Broken(String),
    Absent(String),
}

fn azure_sources(probe: &impl Probe) -> Vec<(&'static str, Source)> {
    let set = |k: &str| probe.var_nonempty(k).is_some();
    let absent = |keys: &[&str]| {
        let unset: Vec<&str> = keys.iter().copied().filter(|k| !set(k)).collect();
        match unset.len() {
            1 => format!("{} is not set", unset[0]),
            _ => format!("{} are not set", unset.join(", ")),
        }
    };
    let ids = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID"];
    let mut out = Vec::new();
    out.push((
        "EPHEMERA_AZURE_TOKEN",
        if set("EPHEMERA_AZURE_TOKEN") {
            Source::Configured("a pre-fetched ARM token".into())
        } else {
            Source::Absent("not set".into())
        },
    ));
    for (name, secret) in [
        ("workload identity", "AZURE_FEDERATED_TOKEN_FILE"),
        ("client secret", "AZURE_CLIENT_SECRET"),
    ] {
        let keys = [ids[0], ids[1], secret];
        let source = if keys.iter().all(|k| set(k)) {
            Source::Configured(keys.join(", "))
        } else if set(secret) {
            Source::Broken(format!("{secret} is set but {}", absent(&ids)))
        } else {
            Source::Absent(absent(&keys))
        };
        out.push((name, source));
    }
    let msi = ["IDENTITY_ENDPOINT", "MSI_ENDPOINT"]
        .into_iter()
        .find(|k| set(k));
    out.push((
        "managed identity",
        match msi {
            Some(k) => Source::Configured(format!("{k} is set")),
            None => Source::Absent("neither IDENTITY_ENDPOINT nor MSI_ENDPOINT is set".into()),
        },
    ));
    out.push((
        "Azure CLI",
        match probe.which("az") {
            Some(p) => Source::Configured(format!("{}, using the `az login` session", p.display())),
            None => Source::Absent("az not found on PATH".into()),
        },
    ));
    out
}

const AZURE_FIX: &str = "run `az login` (Azure CLI), or set EPHEMERA_AZURE_TOKEN to an ARM access token, or set \
     AZURE_CLIENT_ID and AZURE_TENANT_ID with AZURE_FEDERATED_TOKEN_FILE (CI OIDC) or AZURE_CLIENT_SECRET";

fn aks_checks(probe: &impl Probe) -> Vec<Check> {
    let sources = azure_sources(probe);
    // The first configured source wins, as in the credential chain; a half-configured one before
    // it stops the chain.
    for (name, s) in &sources {
        match s {
            Source::Configured(how) => {
                return vec![Check::ok(format!("Azure credential: {name} ({how})"))];
            }
            Source::Broken(why) => {
                return vec![Check::bad(
                    format!("Azure credential {name} is half configured: {why}"),
                    AZURE_FIX,
                )];
            }
            Source::Absent(_) => {}
        }
    }
    let mut check = Check::bad("no Azure credential found; tried:", AZURE_FIX);
    check.detail = sources
        .into_iter()
        .map(|(name, s)| match s {
            Source::Absent(why) | Source::Broken(why) | Source::Configured(why) => {
                format!("{name}: {why}")
            }
        })
        .collect();
    vec![check]
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.providers {
            writeln!(
                f,
                "{:<6} {}",
                p.provider,
                if p.ready { "ready" } else { "cannot run here" }
            )?;
            for c in &p.checks {
                writeln!(f, "  {} {}", if c.ok { "✓" } else { "✗" }, c.what)?;
                for d in &c.detail {
                    writeln!(f, "      {d}")?;
                }
                if let Some(fix) = &c.fix {
                    writeln!(f, "    fix: {fix}")?;
                }
            }
        }
        if let Some(s) = &self.environment {
            let verdict = if s.ready {
                "can run here"
            } else {
                "cannot run here"
            };
            writeln!(
                f,
                "\nenvironment {} uses provider {}: {verdict}",
                s.name, s.provider
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_configured_azure_source_wins() {
        let p = FakeProbe::new([
            ("PATH", "/b"),
            ("AZURE_CLIENT_ID", "x"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_SECRET", "s"),
        ])
        .with_executable("/b/az");
        let c = aks_checks(&p);
        assert_eq!(
            c,
            vec![Check::ok(
                "Azure credential: client secret (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)"
            )]
        );
    }

    #[test]
    fn a_half_configured_source_is_a_problem() {
        let p =
            FakeProbe::new([("PATH", "/b"), ("AZURE_CLIENT_SECRET", "s")]).with_executable("/b/az");
        let c = aks_checks(&p);
        assert!(!c[0].ok);
        assert_eq!(
            c[0].what,
            "Azure credential client secret is half configured: AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID, \
             AZURE_TENANT_ID are not set"
        );
    }

    #[test]
    fn without_env_the_report_is_ok_even_when_nothing_runs() {
        let r = doctor(None, &FakeProbe::new([]));
        assert!(r.providers.iter().all(|p| !p.ready));
        assert!(r.ok());
        assert_eq!(r.exit_status(), crate::ExitStatus::Ok);
    }
}
