//! The command line: clap structs, settings, one module per subcommand, the printer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ephemera::ExitStatus;

pub mod abort;
mod announce;
pub mod deploy;
pub mod doctor;
pub mod down;
pub mod extend;
pub mod gc;
pub mod kubeconfig;
pub mod list;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod pool;
pub mod printer;
pub mod promote;
pub mod release;
pub mod status;
pub mod up;

/// Short-lived preview environments for pull requests.
#[derive(Debug, Parser)]
#[command(name = "ephemera", version, propagate_version = true, term_width = 100)]
#[command(
    about = "Short-lived preview environments for pull requests: a cluster, add-ons, the PR's image as a canary."
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 timed out, 4 lease held."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More logs on stderr (-v info, -vv debug, -vvv trace); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr: no progress, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Results on stdout as text or JSON.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Log lines as text or JSON.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Kubeconfig file to write or use (mode 0600).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Template directory overriding the embedded templates file by file.
    #[arg(long, global = true, value_name = "DIR", env = "EPHEMERA_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Directories of upstream add-on manifests (offline bundles), separated like PATH.
    #[arg(long, global = true, value_name = "DIR", env = "EPHEMERA_MANIFESTS")]
    pub manifests: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The environment file and which environment of it.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").args(["pr", "name"]).required(true))]
pub struct TargetArgs {
    /// Environment file, e.g. environments/pr-aks.yaml.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    /// Pull request number; names the environment pr-<N> (with naming.prefix).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pr: Option<String>,
    /// Environment name instead of a PR (an ad-hoc environment).
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub name: Option<String>,
}

/// `--timeout` and `--deadline` for the commands that only read or nudge an environment
/// (`promote`, `abort`, `extend`, `status`, `list`, `kubeconfig`): an unreachable cloud or
/// cluster ends them with exit 3 instead of minutes of retries.
#[derive(Debug, Args)]
pub struct BoundArgs {
    /// The longest to wait without progress. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// The longest the whole command runs. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub deadline: String,
}

impl BoundArgs {
    /// The bounds, starting now.
    ///
    /// # Errors
    /// A malformed or zero duration, naming its flag.
    pub fn bounds(&self) -> anyhow::Result<ephemera::deadline::Bounds> {
        bounds(&self.timeout, &self.deadline)
    }
}

/// Bounds from the values of `--timeout` and `--deadline`.
///
/// # Errors
/// A malformed or zero duration, naming its flag.
pub(crate) fn bounds(timeout: &str, deadline: &str) -> anyhow::Result<ephemera::deadline::Bounds> {
    Ok(ephemera::deadline::Bounds::new(
        up::duration("--timeout", timeout)?,
        up::duration("--deadline", deadline)?,
    ))
}

/// What `plan` and `up` make an environment from: which environment, the image, the lifetime,
/// and the strings that come with the PR.
#[derive(Debug, Args)]
pub struct EnvInputArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The PR's image (default: app.image).
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: Option<String>,
    /// Lifetime instead of the file's ttl, e.g. 4h, 2d.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub pr_data: PrDataArgs,
}

impl EnvInputArgs {
    /// The library's plan request for these flags.
    pub fn request(self, now: Option<String>, settings: &Settings) -> ephemera::plan::Request {
        ephemera::plan::Request {
            env_file: self.target.env,
            pr: self.target.pr,
            name: self.target.name,
            image: self.image,
            branch: self.pr_data.branch,
            title: self.pr_data.title,
            repository: self.pr_data.repository,
            now,
            ttl: self.ttl,
            templates: settings.templates.clone(),
            resolve_secrets: false,
        }
    }
}

/// Strings that come with a PR; data only, recorded as annotations.
#[derive(Debug, Args)]
pub struct PrDataArgs {
    /// The PR's branch (default: GITHUB_HEAD_REF).
    #[arg(long, value_name = "BRANCH", allow_hyphen_values = true)]
    pub branch: Option<String>,
    /// The PR's title.
    #[arg(long, value_name = "TITLE", allow_hyphen_values = true)]
    pub title: Option<String>,
    /// owner/name of the repository (default: GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/NAME", allow_hyphen_values = true)]
    pub repository: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Up(up::UpArgs),
    Down(down::DownArgs),
    List(list::ListArgs),
    Status(status::StatusArgs),
    Gc(gc::GcArgs),
    Plan(plan::PlanArgs),
    Kubeconfig(kubeconfig::KubeconfigArgs),
    Deploy(deploy::DeployArgs),
    Promote(promote::PromoteArgs),
    Abort(abort::AbortArgs),
    Extend(extend::ExtendArgs),
    Doctor(doctor::DoctorArgs),
    Notify(notify::NotifyArgs),
    Lock(lock::LockArgs),
    Pool(pool::PoolArgs),
    Release(release::ReleaseArgs),
}

/// Resolved global settings, passed to every subcommand.
#[derive(Clone, Debug)]
pub struct Settings {
    pub verbose: u8,
    pub quiet: bool,
    pub output: OutputFormat,
    pub log_format: LogFormat,
    pub kubeconfig: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub manifests: Option<PathBuf>,
}

impl From<&Cli> for Settings {
    fn from(cli: &Cli) -> Self {
        let g = &cli.global;
        Settings {
            verbose: g.verbose,
            quiet: g.quiet,
            output: g.output,
            log_format: g.log_format,
            kubeconfig: g.kubeconfig.clone(),
            templates: g.templates.clone(),
            manifests: g.manifests.clone(),
        }
    }
}

/// Runs one subcommand.
///
/// # Errors
/// Whatever the subcommand reports; [`exit_status`] maps it to the exit code.
pub fn run(command: Command, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let printer = printer::Printer::new(settings);
    tracing::debug!(kubeconfig = ?settings.kubeconfig, templates = ?settings.templates, manifests = ?settings.manifests, "settings");
    match command {
        Command::Plan(a) => plan::run(a, settings, &printer),
        Command::Up(a) => up::run(a, settings),
        Command::Down(a) => down::run(a, settings),
        Command::List(a) => list::run(a, settings),
        Command::Status(a) => status::run(a, settings),
        Command::Gc(a) => gc::run(a, settings),
        Command::Kubeconfig(a) => kubeconfig::run(a, settings),
        Command::Deploy(a) => deploy::run(a, settings),
        Command::Promote(a) => promote::run(a, settings),
        Command::Abort(a) => abort::run(a, settings),
        Command::Extend(a) => extend::run(a, settings),
        Command::Doctor(a) => doctor::run(a, settings),
        Command::Notify(a) => notify::run(a, settings),
        Command::Lock(a) => lock::run(a, settings),
        Command::Pool(a) => pool::run(a, settings),
        Command::Release(a) => release::run(a, settings),
    }
}

/// The exit status for an error: the library's own mapping for its errors, else 1.
pub fn exit_status(err: &anyhow::Error) -> ExitStatus {
    use ephemera::{addons, app, config, engine, kube, names, plan, providers, templates};
    if let Some(e) = err.downcast_ref::<ephemera::Error>() {
        e.exit_status()
    } else if err.is::<config::ConfigError>()
        || err.is::<names::NameError>()
        || err.is::<templates::TemplateError>()
    {
        ExitStatus::Usage
    } else if let Some(e) = err.downcast_ref::<plan::PlanError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<providers::ProviderError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<kube::KubeError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<addons::AddonError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<app::AppError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<engine::EngineError>() {
        e.exit_status()
    } else if let Some(e) = err.downcast_ref::<engine::release::ReleaseError>() {
        e.exit_status()
    } else {
        ExitStatus::Failed
    }
}

/// The environment `target` names: its file, its name, and its provider.
fn resolve(
    target: &TargetArgs,
    settings: &Settings,
) -> anyhow::Result<(
    ephemera::config::Environment,
    ephemera::names::EnvName,
    ephemera::providers::any::AnyProvider,
)> {
    let env = ephemera::config::load(&target.env)?;
    let (name, _) = ephemera::plan::target(&env, target.pr.as_deref(), target.name.as_deref())?;
    let renderer = std::sync::Arc::new(ephemera::templates::Renderer::new(
        settings.templates.as_deref(),
    )?);
    let provider =
        ephemera::providers::any::AnyProvider::from_env(&env, renderer, &Default::default())?;
    // With a warm pool, the PR's environment may be a member claimed for it under its own name.
    let name = match env.pool {
        None => name,
        Some(_) => {
            let resolved = block_on(ephemera::engine::pool::resolve(
                &provider,
                &env,
                name.as_str(),
            ))?;
            ephemera::names::EnvName::from_name(&resolved)?
        }
    };
    Ok((env, name, provider))
}

/// Where add-on sources come from for `env_file` (bundles, the mirror), and what they are checked
/// against: the lock file beside it, and with `locked`, nothing unpinned.
fn sources(
    settings: &Settings,
    env_file: &std::path::Path,
    locked: bool,
) -> anyhow::Result<ephemera::addons::SourceOptions> {
    use ephemera::addons::{Lock, SourceOptions, Unpinned};
    let mut opts = SourceOptions::from_flag_or_env(settings.manifests.as_deref())
        .map_err(ephemera::Error::from)?;
    opts.lock = Some(Lock::read_for(env_file).map_err(ephemera::Error::from)?);
    if locked {
        opts.unpinned = Unpinned::Refuse;
    }
    Ok(opts)
}

/// A client for the environment's cluster, from the provider's admin kubeconfig.
async fn client(
    provider: &ephemera::providers::any::AnyProvider,
    name: &ephemera::names::EnvName,
) -> anyhow::Result<::kube::Client> {
    use ephemera::providers::Provider as _;
    Ok(provider.kubeconfig(name.as_str()).await?.client().await?)
}

/// As [`block_on`], inside `bounds`: when one runs out, exit 3 naming `what` and what it last
/// waited for.
fn block_on_within<T, E: Into<anyhow::Error>>(
    bounds: &ephemera::deadline::Bounds,
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    block_on(async {
        match bounds.run(what, f).await {
            Ok(result) => result.map_err(Into::into),
            Err(timed_out) => Err(anyhow::Error::from(ephemera::Error::from(
                ephemera::engine::EngineError::from(timed_out),
            ))),
        }
    })
}

/// Runs a library future to completion on a runtime of its own.
fn block_on<T, E: Into<anyhow::Error>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(f).map_err(Into::into)
}

/// Prints a result: JSON of `value` with `--output json`, else `text`.
fn emit<T: serde::Serialize>(
    settings: &Settings,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let out = match settings.output {
        OutputFormat::Json => serde_json::to_string_pretty(value)?,
        OutputFormat::Text => text(),
    };
    printer::Printer::new(settings).result(&out)?;
    Ok(())
}

/// The environment listing options shared by list, status, extend and gc.
fn list_options(
    env: &std::path::Path,
    settings: &Settings,
) -> ephemera::engine::inventory::ListOptions {
    ephemera::engine::inventory::ListOptions {
        env_file: env.to_path_buf(),
        templates: settings.templates.clone(),
    }
}
