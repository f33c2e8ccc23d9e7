//! Garbage collection: which environments to delete, and why.
//!
//! Selection is pure. It only ever sees records that carry our ownership (the providers filter
//! on it), and a listing error aborts `gc` before selection: an error never means "nothing
//! exists", so it can never mean "delete everything" either.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::record::Record;

/// Why an environment is collected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Reason {
    /// Its TTL passed.
    Expired { expires_at: Timestamp },
    /// Its PR is no longer open.
    PrClosed { pr: u64 },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Expired { expires_at } => write!(f, "expired at {expires_at}"),
            Reason::PrClosed { pr } => write!(f, "PR #{pr} is not open"),
        }
    }
}

/// The PRs that are still open, for one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenPrs {
    /// `owner/name` the list belongs to, when known; records of other repositories are then
    /// judged by their TTL only.
    pub repository: Option<String>,
    pub numbers: BTreeSet<u64>,
}

/// A bad `--open-prs` input.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct OpenPrsError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

impl OpenPrs {
    /// Parses one PR number per line (blank lines and `#` comments allowed), or the JSON that
    /// `gh pr list --json number` prints (`[{"number": 12}, ...]`).
    ///
    /// # Errors
    /// The first line that is neither, named with `source_name` and its line number. An empty
    /// input is valid: no PR is open.
    pub fn parse(
        source_name: &str,
        text: &str,
        repository: Option<String>,
    ) -> Result<Self, OpenPrsError> {
        let err = |line: usize, message: String| OpenPrsError {
            source_name: source_name.to_string(),
            line,
            message,
        };
        let trimmed = text.trim_start();
        let mut numbers = BTreeSet::new();
        if trimmed.starts_with('[') {
            #[derive(serde::Deserialize)]
            struct Item {
                number: u64,
            }
            let items: Vec<Item> = serde_json::from_str(text).map_err(|e| {
                err(
                    e.line(),
                    format!("not the JSON of `gh pr list --json number`: {e}"),
                )
            })?;
            numbers.extend(items.into_iter().map(|i| i.number));
        } else {
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim();
                // `# note` is a comment; `#12` is PR 12, as people paste it.
                if line.is_empty()
                    || (line.starts_with('#')
                        && !line[1..].starts_with(|c: char| c.is_ascii_digit()))
                {
                    continue;
                }
                let n: u64 = line
                    .trim_start_matches('#')
                    .parse()
                    .map_err(|_| err(i + 1, format!("{line:?} is not a PR number")))?;
                if n == 0 {
                    return Err(err(i + 1, "PR numbers start at 1".into()));
                }
                numbers.insert(n);
            }
        }
        Ok(OpenPrs {
            repository,
            numbers,
        })
    }

    /// Whether `record`'s PR is still open by this list; `false` for records without a PR.
    /// Records of another repository are taken as open: this list cannot tell.
    pub fn is_open(&self, record: &Record) -> bool {
        record
            .pr
            .is_some_and(|pr| !self.judges(record) || self.numbers.contains(&pr))
    }

    fn judges(&self, record: &Record) -> bool {
        match (&self.repository, &record.repository) {
            (Some(mine), Some(theirs)) => mine.eq_ignore_ascii_case(theirs),
            _ => true,
        }
    }
}

/// The environments to delete at `now`, sorted by name, each with the first reason that holds.
pub fn select(records: &[Record], now: Timestamp, open: Option<&OpenPrs>) -> Vec<(Record, Reason)> {
    let mut out: Vec<(Record, Reason)> = records
        .iter()
        .filter_map(|r| {
            if r.is_expired(now) {
                return Some((
                    r.clone(),
                    Reason::Expired {
                        expires_at: r.expires_at,
                    },
                ));
            }
            let open = open?;
            let pr = r.pr?;
            (open.judges(r) && !open.numbers.contains(&pr))
                .then(|| (r.clone(), Reason::PrClosed { pr }))
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, pr: Option<u64>, repo: Option<&str>, expires: &str) -> Record {
        Record {
            name: name.into(),
            provider: "local".into(),
            repository: repo.map(Into::into),
            pr,
            created_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            expires_at: expires.parse().unwrap(),
            created_by: None,
            version: "0.1.0".into(),
            url: None,
            env_file: None,
            pool: None,
        }
    }

    const NOW: &str = "2026-11-28T12:00:00Z";
    const LATER: &str = "2026-11-29T12:00:00Z";

    #[test]
    fn parses_lines_and_gh_json() {
        let p = OpenPrs::parse("-", "12\n\n# comment\n7  \n#9\n", None).unwrap();
        assert_eq!(p.numbers, BTreeSet::from([7, 9, 12]));
        let j = OpenPrs::parse("-", r#"[{"number": 3}, {"number": 5}]"#, None).unwrap();
        assert_eq!(j.numbers, BTreeSet::from([3, 5]));
        assert!(OpenPrs::parse("-", "", None).unwrap().numbers.is_empty());
    }

    #[test]
    fn bad_open_prs_name_the_line() {
        let e = OpenPrs::parse("open.txt", "1\n2\nthree\n", None).unwrap_err();
        assert_eq!(e.to_string(), "open.txt:3: \"three\" is not a PR number");
        assert!(OpenPrs::parse("open.txt", "0\n", None).is_err());
        assert!(OpenPrs::parse("open.json", "[{\"nr\": 1}]", None).is_err());
    }

    #[test]
    fn selects_expired_and_closed_only() {
        let records = vec![
            rec("pr-1", Some(1), Some("acme/cats"), "2026-11-28T11:00:00Z"), // expired
            rec("pr-2", Some(2), Some("acme/cats"), LATER),                  // open
            rec("pr-3", Some(3), Some("acme/cats"), LATER),                  // closed
            rec("adhoc", None, None, LATER),                                 // no PR, alive
            rec("pr-4", Some(4), Some("acme/dogs"), LATER),                  // other repo
        ];
        let open = OpenPrs {
            repository: Some("acme/cats".into()),
            numbers: BTreeSet::from([2]),
        };
        let got: Vec<(String, String)> = select(&records, NOW.parse().unwrap(), Some(&open))
            .into_iter()
            .map(|(r, why)| (r.name, why.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "pr-1".to_string(),
                    "expired at 2026-11-28T11:00:00Z".to_string()
                ),
                ("pr-3".to_string(), "PR #3 is not open".to_string())
            ]
        );
        // Without an open-PR list only TTLs count.
        assert_eq!(select(&records, NOW.parse().unwrap(), None).len(), 1);
    }
}
