//! Environment names, PR numbers, image references and the untrusted strings that come with a PR.
//!
//! An environment name comes from the PR (`pr-42`, or `<prefix>-pr-42` with `naming.prefix`) or
//! from `--name`. It is lower-cased and must be a DNS-1123 label of at most [`MAX_NAME_LEN`]
//! characters: it becomes the cluster name, a host label, the AKS cluster name and part of the
//! AKS node resource group `MC_<rg>_<cluster>_<location>`, which ARM caps at 80 characters.
//! 40 leaves room for a short resource group and a long region; the AKS provider checks the exact
//! node resource group length for the real group and region when it plans.
//!
//! Branch names, PR titles and repository names come from forks. They are data: they are only
//! ever rendered through the templates' `yaml` helper, never spliced into a shell or YAML text.

use std::fmt;

use serde::Serialize;

/// The longest environment name ephemera accepts (see the module docs for why 40).
pub const MAX_NAME_LEN: usize = 40;
/// The longest PR number, in digits: GitHub numbers are far below this, and it keeps names short.
const MAX_PR_DIGITS: usize = 9;
/// ARM tag values (where the repository is recorded) hold at most 256 characters.
const MAX_DATA_LEN: usize = 256;
/// The OCI distribution spec caps a repository name (with its registry) at 255 characters.
const MAX_IMAGE_NAME_LEN: usize = 255;

/// A bad name or untrusted input. `what` names the flag or field.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

fn invalid(what: &str, message: impl Into<String>) -> NameError {
    NameError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

/// Whether `s` is a DNS-1123 label: 1-63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `s` can name an environment variable (`SLACK_WEBHOOK`, `_X1`).
pub fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A validated environment name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    /// `pr-<n>`, or `<prefix>-pr-<n>`.
    ///
    /// # Errors
    /// When the result is not a valid name (a prefix too long, or with bad characters).
    pub fn from_pr(prefix: Option<&str>, pr: u64) -> Result<Self, NameError> {
        let name = match prefix {
            Some(p) if !p.is_empty() => format!("{}-pr-{pr}", p.to_ascii_lowercase()),
            _ => format!("pr-{pr}"),
        };
        Self::check("naming.prefix", name)
    }

    /// A name given with `--name`, lower-cased.
    ///
    /// # Errors
    /// When it is not a DNS-1123 label of at most [`MAX_NAME_LEN`] characters.
    pub fn from_name(raw: &str) -> Result<Self, NameError> {
        Self::check("--name", raw.to_ascii_lowercase())
    }

    fn check(what: &str, name: String) -> Result<Self, NameError> {
        if name.chars().count() > MAX_NAME_LEN {
            return Err(invalid(
                what,
                format!(
                    "environment name is {} characters; at most {MAX_NAME_LEN} (it is part of the AKS node resource \
                     group name, which is capped at 80)",
                    name.chars().count()
                ),
            ));
        }
        if !is_dns_label(&name) {
            return Err(invalid(
                what,
                format!(
                    "{name:?} is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a \
                     letter or digit)"
                ),
            ));
        }
        Ok(EnvName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EnvName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Parses a PR number: a positive decimal integer (`42`), nothing else.
///
/// # Errors
/// `0`, negative numbers, signs, spaces, non-digits and absurdly long numbers.
pub fn parse_pr(raw: &str) -> Result<u64, NameError> {
    let bad = || {
        invalid(
            "--pr",
            format!("{raw:?} is not a pull request number (a positive integer such as 42)"),
        )
    };
    if raw.is_empty() || raw.len() > MAX_PR_DIGITS || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

/// An image reference, parsed by the OCI distribution reference grammar:
/// `[registry[:port]/]repository[:tag][@algorithm:digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// The reference exactly as given.
    pub reference: String,
    /// `ghcr.io`, `localhost:5000`; absent for Docker Hub short names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `acme/cats`.
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `raw`; `what` names where it came from (`--image`, `app.image`).
    ///
    /// # Errors
    /// Whitespace, control characters, upper-case repository names, bad tags or digests.
    pub fn parse(what: &str, raw: &str) -> Result<Self, NameError> {
        let bad = |why: &str| {
            invalid(
                what,
                format!("{} is not an image reference: {why}", shown(raw)),
            )
        };
        if raw.is_empty() {
            return Err(bad("empty"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let (rest, digest) = match raw.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (raw, None),
        };
        if let Some(d) = digest
            && !is_digest(d)
        {
            return Err(bad(
                "the digest must be <algorithm>:<hex>, e.g. sha256: and 64 hex digits",
            ));
        }
        // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !is_tag(t)
        {
            return Err(bad(
                "a tag is 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'",
            ));
        }
        if name.len() > MAX_IMAGE_NAME_LEN {
            return Err(bad("the name is longer than 255 characters"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), remainder)
            }
            _ => (None, name),
        };
        if let Some(r) = registry
            && !is_registry(r)
        {
            return Err(bad(
                "the registry must be a host name or IP address with an optional :port",
            ));
        }
        if !repository.split('/').all(is_path_component) {
            return Err(bad(
                "repository path components are lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        Ok(ImageRef {
            reference: raw.to_string(),
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The tag, else the digest, else `latest`: what a GitOps image parameter receives.
    pub fn version(&self) -> &str {
        self.tag
            .as_deref()
            .or(self.digest.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

/// A value for an error message: quoted and escaped, and cut when long, so a hostile value
/// cannot spill over lines or flood the terminal.
fn shown(raw: &str) -> String {
    const MAX: usize = 80;
    if raw.chars().count() > MAX {
        let cut: String = raw.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{raw:?}")
    }
}

fn is_path_component(s: &str) -> bool {
    // alpha-numeric (separator alpha-numeric)*, separator = [_.] | __ | [-]+
    let b = s.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `owner/name` as GitHub spells repositories: an owner of letters, digits, '-' and '_' (Enterprise
/// managed users carry `_shortcode`), and a name of letters, digits, '-', '_' and '.', neither `.`
/// nor `..`.
fn is_repository(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else {
        return false;
    };
    let ok = |part: &str, extra: &[u8], max: usize| {
        !part.is_empty()
            && part.len() <= max
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    ok(owner, b"-_", 39) && ok(name, b"-_.", 100) && name != "." && name != ".."
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_registry(s: &str) -> bool {
    let port_ok = |p: &str| {
        p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|port| port > 0)
    };
    if let Some(rest) = s.strip_prefix('[') {
        // [IPv6] or [IPv6]:port
        let Some((host, after)) = rest.split_once(']') else {
            return false;
        };
        let port_fine = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return port_fine && host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let host = match s.rsplit_once(':') {
        Some((h, p)) if port_ok(p) => h,
        Some(_) => return false,
        None => s,
    };
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg
            .split(['+', '.', '_', '-'])
            .all(|c| !c.is_empty() && c.bytes().all(is_lower_alnum));
    let hex_ok = !hex.is_empty()
        && hex
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'));
    let known_ok = match alg {
        "sha256" => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }
        "sha512" => {
            hex.len() == 128
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }
        _ => true,
    };
    alg_ok && hex_ok && known_ok
}

/// Strings that arrive with a PR and are controlled by whoever opened it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Untrusted {
    pub branch: Option<String>,
    pub title: Option<String>,
    pub repository: Option<String>,
}

impl Untrusted {
    /// Takes each value from its flag, else from the GitHub Actions variable (`GITHUB_HEAD_REF`
    /// for the branch, `GITHUB_REPOSITORY` for the repository; a title has no variable).
    ///
    /// The values are data: any text is accepted except control characters (which no branch,
    /// title or repository name can hold, and which YAML cannot carry) and overlong values.
    ///
    /// # Errors
    /// A value with control characters, or longer than 256 characters.
    pub fn collect(
        branch: Option<String>,
        title: Option<String>,
        repository: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, NameError> {
        let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
        let u = Untrusted {
            branch: branch.or_else(|| from_env("GITHUB_HEAD_REF")),
            title,
            repository: repository.or_else(|| from_env("GITHUB_REPOSITORY")),
        };
        for (what, v) in [
            ("--branch", &u.branch),
            ("--title", &u.title),
            ("--repository", &u.repository),
        ] {
            let Some(v) = v else { continue };
            if v.chars().any(char::is_control) {
                return Err(invalid(
                    what,
                    format!("{} contains control characters", shown(v)),
                ));
            }
            if v.chars().count() > MAX_DATA_LEN {
                return Err(invalid(
                    what,
                    format!("longer than {MAX_DATA_LEN} characters"),
                ));
            }
        }
        if let Some(r) = &u.repository
            && !is_repository(r)
        {
            return Err(invalid(
                "--repository",
                format!(
                    "{} is not owner/name (letters, digits, '-', '_' and '.'; from the flag or \
                     GITHUB_REPOSITORY)",
                    shown(r)
                ),
            ));
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_prs() {
        assert_eq!(EnvName::from_pr(None, 42).unwrap().as_str(), "pr-42");
        assert_eq!(
            EnvName::from_pr(Some("Cats"), 42).unwrap().as_str(),
            "cats-pr-42"
        );
        assert!(EnvName::from_pr(Some("under_score"), 1).is_err());
        assert!(EnvName::from_pr(Some(&"x".repeat(40)), 1).is_err());
    }

    #[test]
    fn given_names_are_lowercased_and_checked() {
        assert_eq!(
            EnvName::from_name("Feature-X").unwrap().as_str(),
            "feature-x"
        );
        assert!(EnvName::from_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        let err = EnvName::from_name(&"a".repeat(80)).unwrap_err().to_string();
        assert!(
            err.starts_with("--name: environment name is 80 characters"),
            "{err}"
        );
        for bad in ["", "-a", "a-", "a_b", "a.b", "a b", "ä"] {
            assert!(EnvName::from_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        let repo = |r: &str| Untrusted::collect(None, None, Some(r.into()), |_| None);
        for good in ["acme/cats", "octo_acme/cats.api", "a-b/c_d-e.f"] {
            assert!(repo(good).is_ok(), "{good}");
        }
        for bad in [
            "acme",
            "acme/",
            "/cats",
            "acme/cats/x",
            "acme/..",
            "ac me/cats",
            "acme/c$t",
        ] {
            let err = repo(bad).unwrap_err().to_string();
            assert!(err.starts_with("--repository: "), "{bad}: {err}");
        }
    }

    #[test]
    fn pr_numbers() {
        assert_eq!(parse_pr("42").unwrap(), 42);
        assert_eq!(parse_pr("007").unwrap(), 7);
        for bad in ["0", "-1", "abc", "", "+4", "4 ", "1e3", "1234567890"] {
            let err = parse_pr(bad).unwrap_err().to_string();
            assert!(err.starts_with("--pr: "), "{err}");
        }
    }

    #[test]
    fn image_references() {
        let i = ImageRef::parse("--image", "ghcr.io/acme/cats:sha-1234").unwrap();
        assert_eq!(i.registry.as_deref(), Some("ghcr.io"));
        assert_eq!(i.repository, "acme/cats");
        assert_eq!(i.tag.as_deref(), Some("sha-1234"));
        let i = ImageRef::parse("--image", "localhost:5000/cats").unwrap();
        assert_eq!(
            (i.registry.as_deref(), i.tag),
            (Some("localhost:5000"), None)
        );
        let d = format!("nginx@sha256:{}", "a".repeat(64));
        let i = ImageRef::parse("--image", &d).unwrap();
        assert_eq!(
            (i.registry, i.repository.as_str(), i.digest.is_some()),
            (None, "nginx", true)
        );
        assert_eq!(
            ImageRef::parse("x", "a/b__c/d-e--f.g:v1.2_3")
                .unwrap()
                .tag
                .as_deref(),
            Some("v1.2_3")
        );
        assert!(ImageRef::parse("x", "[::1]:5000/a:b").is_ok());
        for bad in [
            "",
            "ghcr.io/acme/cats:sha\n-1234",
            "cats :1",
            "Acme/cats",
            "cats:",
            "cats:-x",
            "cats@sha256:abc",
            "ghcr.io//cats",
            "cats/",
            "cats:a:b",
            "cats$(rm -rf /)",
            "ghcr.io:abc/cats",
            "localhost:65536/cats",
            "localhost:0/cats",
            "localhost:99999999/cats",
            "[::1]:70000/cats",
        ] {
            assert!(
                ImageRef::parse("--image", bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn image_error_escapes_the_value() {
        let err = ImageRef::parse("--image", "a\nb").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains(r#""a\nb""#), "{err}");
    }

    #[test]
    fn untrusted_values_are_data() {
        let env = |k: &str| (k == "GITHUB_HEAD_REF").then(|| "\": {a: b}".to_string());
        let u = Untrusted::collect(None, Some("$(rm -rf /)".into()), None, env).unwrap();
        assert_eq!(u.branch.as_deref(), Some("\": {a: b}"));
        assert_eq!(u.title.as_deref(), Some("$(rm -rf /)"));
        assert!(Untrusted::collect(Some("a\u{7f}".into()), None, None, |_| None).is_err());
        assert!(Untrusted::collect(None, Some("x".repeat(300)), None, |_| None).is_err());
    }

    #[test]
    fn helpers() {
        assert!(is_dns_name("previews.acme.dev"));
        assert!(!is_dns_name("previews..acme"));
        assert!(is_env_var_name("SLACK_WEBHOOK"));
        assert!(!is_env_var_name("https://hooks.example/x"));
        assert!(!is_env_var_name("1X"));
    }
}
