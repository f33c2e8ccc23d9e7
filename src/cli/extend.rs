//! `ephemera extend`: push an environment's expiry later.

use clap::Args;
use ephemera::ExitStatus;

use super::announce::Announce;
use super::{Settings, TargetArgs};
use ephemera::slack::Event;

#[derive(Debug, Args)]
#[command(about = "Push an environment's expiry later")]
#[command(
    after_help = "Example:\n  ephemera extend --env environments/adhoc-aks.yaml --name alice-try --by 2h"
)]
pub struct ExtendArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
    /// How much longer, e.g. 2h, 1d (at most 30d at a time).
    #[arg(long, value_name = "DURATION")]
    pub by: String,
}

pub fn run(args: ExtendArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let by = ephemera::config::duration::parse_ttl(&args.by).map_err(|message| {
        ephemera::Error::from(ephemera::names::NameError::Invalid {
            what: "--by".into(),
            message,
        })
    })?;
    let opts = ephemera::engine::inventory::ExtendOptions {
        list: super::list_options(&args.target.env, settings),
        pr: args.target.pr.clone(),
        name: args.target.name.clone(),
        by,
    };
    let env = ephemera::config::load(&args.target.env)?;
    let (name, _) = ephemera::plan::target(&env, opts.pr.as_deref(), opts.name.as_deref())
        .map_err(ephemera::Error::from)?;
    let announce = Announce::start(&env, &name, &args.target, Event::Extend);
    let bounds = args.bounds.bounds()?;
    let result = super::block_on_within(
        &bounds,
        "extending the environment",
        ephemera::engine::inventory::extend(&opts),
    );
    let by = args.by.clone();
    let record = announce.finish(
        result,
        |r| {
            format!(
                "{} now expires at {}",
                r.name,
                r.expires_at.strftime("%Y-%m-%d %H:%M UTC")
            )
        },
        |r, m| {
            m.repository.clone_from(&r.repository);
            m.url.clone_from(&r.url);
            m.result = Some(format!("extended by {by}"));
        },
    )?;
    super::emit(settings, &record, || {
        format!("{} expires at {}", record.name, record.expires_at)
    })?;
    Ok(ExitStatus::Ok)
}
