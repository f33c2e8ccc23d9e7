//! Durations as people write them in environment files: `30s`, `5m`, `4h`, `7d`, `1h30m`.

use std::time::Duration;

/// The longest TTL an environment may have. A preview that outlives a month is a leak, not a
/// preview; `extend` can push the expiry later in steps of at most this much.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The shortest TTL: anything less would be collected before `up` finishes on AKS.
pub const MIN_TTL: Duration = Duration::from_secs(10 * 60);

/// Parses `<number><unit>` runs, units `s`, `m`, `h` and `d` (as in `units`), e.g. `1h30m`.
///
/// # Errors
/// A message saying what was expected, for use after the field path.
pub fn parse(s: &str, units: &[char]) -> Result<Duration, String> {
    let expected = || {
        let list: Vec<String> = units.iter().map(|u| format!("{u}")).collect();
        format!(
            "{s:?} is not a duration such as 30m or 4h (a number followed by one of {})",
            list.join(", ")
        )
    };
    if s.is_empty() {
        return Err(expected());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.is_empty() || !units.contains(&c) {
            return Err(expected());
        }
        let n: u64 = digits.parse().map_err(|_| expected())?;
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => 86400,
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(expected)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(expected());
    }
    Ok(Duration::from_secs(total))
}

/// An environment TTL: units `m`, `h`, `d`, between [`MIN_TTL`] and [`MAX_TTL`].
///
/// # Errors
/// A message for use after the field path (`ttl: ...`).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse(s, &['m', 'h', 'd'])?;
    if d < MIN_TTL || d > MAX_TTL {
        return Err(format!(
            "{s:?} is outside {}..{}",
            human(MIN_TTL),
            human(MAX_TTL)
        ));
    }
    Ok(d)
}

/// A `maxLifetime`: units `m`, `h`, `d`, at least [`MIN_TTL`] (the environment's `ttl` is
/// checked against it where both are known).
///
/// # Errors
/// A message for use after the field path.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let d = parse(s, &['m', 'h', 'd'])?;
    if d < MIN_TTL {
        return Err(format!("{s:?} is shorter than {}", human(MIN_TTL)));
    }
    Ok(d)
}

/// A canary pause: units `s`, `m`, `h` (what Argo Rollouts accepts), more than zero.
///
/// # Errors
/// A message for use after the field path.
pub fn parse_pause(s: &str) -> Result<Duration, String> {
    let d = parse(s, &['s', 'm', 'h'])?;
    if d.is_zero() {
        return Err(format!(
            "{s:?} is zero; leave the duration out to pause until promoted"
        ));
    }
    Ok(d)
}

/// The shortest exact spelling: `30d`, `4h`, `90m`, `45s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_ttl("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        for bad in [
            "",
            "24",
            "h",
            "24x",
            "1.5h",
            "-1h",
            "24h ",
            "5m",
            "31d",
            "30s",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn pauses() {
        assert_eq!(parse_pause("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_pause("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_pause("0s").is_err());
        assert!(parse_pause("1d").is_err());
    }

    #[test]
    fn human_is_exact() {
        assert_eq!(human(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(human(MAX_TTL), "30d");
        assert_eq!(human(Duration::from_secs(61)), "61s");
    }
}
