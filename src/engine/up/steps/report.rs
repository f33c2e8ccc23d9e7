//! Step `report`: the preview URL answers. Skipped when no ingress routes to the app. The URL is
//! then stamped into the environment's record.

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
    let deadline = Instant::now() + ctx.opts.timeout;
    let accept_invalid = crate::app::accept_invalid_certs(ctx.env.tls.issuer, ctx.opts.insecure)?;
    let health = &ctx.env.app.health_path;
    crate::app::report_url(url, health, serves_traffic, deadline, accept_invalid).await?;
    Ok(())
}

/// The stored `record` with `url` in it, written to the provider when it was not there yet.
///
/// # Errors
/// The provider's.
pub(crate) async fn stamp(
    ctx: &Context<'_>,
    record: &Record,
    url: &str,
) -> Result<Record, crate::Error> {
    let mut record = record.clone();
    if record.url.as_deref() != Some(url) {
        record.url = Some(url.to_string());
        ctx.provider.update_record(&record).await?;
    }
    Ok(record)
}
