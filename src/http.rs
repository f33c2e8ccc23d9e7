//! What the HTTP clients of ephemera share: the one `Retry-After` parser, and the one backoff
//! policy for retried requests (backon's capped exponential backoff with jitter).
//!
//! The ARM client (and through it the DNS and identity clients), the identity client's
//! concurrent-write retries, the GitHub client and the add-on source downloads retry with
//! [`backoff`]; ARM and GitHub wait at least as long as [`parse_retry_after`] says.

use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;

/// `Retry-After` as delay-seconds (`120`) or as an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`),
/// as a wait from `now`. A date in the past means now; anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff from `min` to at most `max` per wait, with jitter, for at most `times`
/// retries.
pub fn backoff(min: Duration, max: Duration, times: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_max_times(times)
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_dates_in_the_past_mean_now() {
        let now: jiff::Timestamp = "2026-08-01T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("Fri, 31 Jul 2026 10:00:00 GMT", now.into()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now.into()), None);
    }
}
