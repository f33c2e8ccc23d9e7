//! Step `report`: the preview URL answers. Skipped when no ingress routes to the app. The URL,
//! and on an existing environment the expiry this activity moves, are then stamped into the
//! environment's record.

use std::time::Instant;

use super::Context;
use crate::providers::Provider;
use crate::record::Record;

pub const NAME: &str = "report";

/// Why the step is skipped without an ingress.
pub const NO_INGRESS: &str = "no ingress is enabled, so nothing routes to the app";

/// Waits, up to `--timeout`, until `url` answers on the app's health path. A cluster whose pods
/// are simulated (`serves_traffic` false) is not probed.
///
/// # Errors
/// An invalid certificate that `--insecure` does not allow; the URL not answering in time.
pub(crate) async fn check(
    ctx: &Context<'_>,
    url: &str,
    serves_traffic: bool,
) -> Result<(), crate::Error> {
    let deadline = Instant::now() + ctx.bounds.remaining();
    let accept_invalid = crate::app::accept_invalid_certs(ctx.env.tls.issuer, ctx.opts.insecure)?;
    let health = &ctx.env.app.health_path;
    crate::app::report_url(url, health, serves_traffic, deadline, accept_invalid).await?;
    Ok(())
}

/// The stored `record` with `url` in it and, on an environment this run did not create, its
/// expiry moved by the activity (at least now + ttl, within `maxLifetime`: see
/// [`Record::renewed_expiry`]). Written to the provider, in one write, only when it changed.
///
/// # Errors
/// The provider's.
pub(crate) async fn stamp(
    ctx: &Context<'_>,
    record: &Record,
    url: Option<&str>,
    created: bool,
) -> Result<Record, crate::Error> {
    let mut stamped = record.clone();
    if let Some(url) = url {
        stamped.url = Some(url.to_string());
    }
    if !created {
        // The plan's record holds this run's ttl (`--ttl` or the file's) as expires - created.
        let planned = ctx.record;
        let ttl = planned.expires_at.duration_since(planned.created_at);
        let ttl = std::time::Duration::try_from(ttl).unwrap_or_default();
        let max = ctx.env.max_lifetime_duration();
        stamped.expires_at = record.renewed_expiry(jiff::Timestamp::now(), ttl, max);
    }
    if stamped != *record {
        ctx.provider.update_record(&stamped).await?;
    }
    Ok(stamped)
}
