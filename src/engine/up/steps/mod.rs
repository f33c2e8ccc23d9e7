//! The steps of `up`, in the order they run ([`STEPS`], and `run` below, which runs them).
//!
//! Each step is an ensure in a module of its own: it takes the run's `Context` and the typed
//! outputs of the steps before it, and returns its own. The runner (engine/runner.rs) wraps each
//! one in progress, timing and, once the lease is held, the lease guard; it also owns rollback.
//! docs/lifecycle.md lists the same steps (a test below compares them).

use std::path::PathBuf;
use std::sync::Arc;

use super::UpOptions;
use crate::config::Environment;
use crate::engine::runner::Runner;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::providers::Ensured;
use crate::providers::any::AnyProvider;
use crate::record::Record;
use crate::templates::Renderer;

pub mod addons;
pub mod app;
pub mod certificate;
pub mod cluster;
pub mod dns;
pub mod identity;
pub mod kubeconfig;
pub mod report;

/// What `up` does, in order. A step that has nothing to do is skipped or left out; the
/// certificate step runs before the app for a wildcard certificate, after it for the preview's
/// own.
pub const STEPS: [&str; 9] = [
    cluster::NAME,
    kubeconfig::NAME,
    identity::NAME,
    addons::NAME,
    dns::NAME,
    certificate::NAME,
    app::NAME,
    certificate::NAME,
    report::NAME,
];

/// What every step of one `up` reads; none of it changes while they run.
pub(crate) struct Context<'a> {
    pub opts: &'a UpOptions,
    pub env: &'a Environment,
    pub plan: &'a Plan,
    pub renderer: &'a Arc<Renderer>,
    pub provider: &'a AnyProvider,
    /// The ownership record the plan made; the cluster step writes it on creation.
    pub record: &'a Record,
    pub name: &'a str,
    pub progress: Arc<dyn Progress>,
    /// `--timeout` and `--deadline`; a wait that names what it waits for ends within
    /// [`crate::deadline::Bounds::remaining`].
    pub bounds: &'a crate::deadline::Bounds,
}

/// What the steps leave behind, for the report.
pub(crate) struct Converged {
    pub cluster: Ensured,
    pub kubeconfig: PathBuf,
    /// The record as stored, with the URL stamped.
    pub record: Record,
    pub rollout: Option<crate::app::RolloutStatus>,
}

/// A cluster ready for an app: what the steps up to `addons` leave behind.
pub(crate) struct Prepared {
    pub cluster: Ensured,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
}

/// The steps up to and including `addons`: the cluster, its kubeconfig, the lease (held from
/// here on), the DNS-01 identity and the add-ons. A warm-pool member is made by these alone.
///
/// # Errors
/// The first step that fails, or the lease when another run takes the environment.
pub(crate) async fn prepare(
    ctx: &Context<'_>,
    run: &mut Runner<'_>,
) -> Result<Prepared, crate::Error> {
    let cluster = run.step(cluster::NAME, cluster::ensure(ctx)).await?;
    run.created(cluster.created);
    let (kubeconfig, path) = run.step(kubeconfig::NAME, kubeconfig::write(ctx)).await?;
    let client = kubeconfig.client().await?;
    // From here on every step runs under this run's lease.
    run.hold(&client).await?;

    if let Some(identity) = identity::wanted(ctx, &cluster)? {
        run.step(identity::NAME, identity::ensure(ctx, &identity))
            .await?;
    }
    match addons::wanted(ctx, &cluster, &client).await {
        Some(fingerprint) => {
            let install = addons::install(ctx, &client, &fingerprint);
            run.step(addons::NAME, install).await?;
        }
        None => run.skip(addons::NAME, addons::UP_TO_DATE),
    }
    Ok(Prepared {
        cluster,
        client,
        kubeconfig: path,
    })
}

/// Runs the steps of `up` through `run`, in the order of [`STEPS`].
///
/// # Errors
/// The first step that fails, or the lease when another run takes the environment.
pub(crate) async fn run(
    ctx: &Context<'_>,
    run: &mut Runner<'_>,
) -> Result<Converged, crate::Error> {
    let Prepared {
        cluster,
        client,
        kubeconfig: path,
    } = prepare(ctx, run).await?;
    let (mut route, dns) = dns::route(ctx)?;
    if let Some(dns) = dns {
        let pr = cluster.record.pr;
        let host = run
            .step(dns::NAME, dns::ensure(ctx, &client, &dns, pr))
            .await?;
        route.set_host(ctx, &host);
    }
    let wildcard = certificate::wildcard_zone(ctx.env);
    if let Some(zone) = wildcard {
        let serves = cluster.serves_traffic;
        let ensure = certificate::ensure_wildcard(ctx, &client, zone, serves);
        run.step(certificate::NAME, ensure).await?;
    }
    let app = app::apply(ctx, &client, &route.manifests);
    let rollout = run.step(app::NAME, app).await?;
    if certificate::awaited(ctx.env, cluster.serves_traffic, wildcard.is_some()) {
        run.step(certificate::NAME, certificate::wait(ctx, &client))
            .await?;
    }
    match &route.url {
        Some(url) => {
            let check = report::check(ctx, url, cluster.serves_traffic);
            run.step(report::NAME, check).await?;
        }
        None => run.skip(report::NAME, report::NO_INGRESS),
    }
    let url = route.url.as_deref();
    let record = report::stamp(ctx, &cluster.record, url, cluster.created).await?;
    Ok(Converged {
        cluster,
        kubeconfig: path,
        record,
        rollout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step names in the first column of the table under `## \`up\`` in docs/lifecycle.md.
    fn documented_steps(doc: &str) -> Vec<String> {
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("`up`"))
            .expect("docs/lifecycle.md has a section ## `up`");
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .map(|cell| cell.trim().trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn the_lifecycle_doc_lists_the_steps_of_up_in_their_order() {
        let doc = include_str!("../../../../docs/lifecycle.md");
        assert_eq!(
            documented_steps(doc),
            STEPS,
            "docs/lifecycle.md, table of up's steps"
        );
    }

    fn runs_in_order(steps: &[&str]) -> bool {
        let mut order = crate::engine::runner::Order::new(&STEPS);
        steps.iter().all(|s| order.advance(s))
    }

    #[test]
    fn the_runs_of_up_follow_its_declared_order_and_a_misplaced_step_does_not() {
        // A rerun on the fast path, a local run, and an AKS run with a zone and an identity.
        assert!(runs_in_order(&[
            "cluster",
            "kubeconfig",
            "addons",
            "app",
            "report"
        ]));
        assert!(runs_in_order(&[
            "cluster",
            "kubeconfig",
            "addons",
            "dns",
            "certificate",
            "app",
            "report"
        ]));
        assert!(runs_in_order(&[
            "cluster",
            "kubeconfig",
            "identity",
            "addons",
            "dns",
            "app",
            "certificate",
            "report"
        ]));
        assert!(!runs_in_order(&["cluster", "kubeconfig", "app", "addons"]));
        assert!(!runs_in_order(&["kubeconfig", "cluster"]));
        assert!(!runs_in_order(&[
            "cluster",
            "certificate",
            "app",
            "certificate",
            "certificate"
        ]));
        assert!(!runs_in_order(&["cluster", "rollout"]));
    }
}
