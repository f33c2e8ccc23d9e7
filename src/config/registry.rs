//! Checks on `app.registry`: a registry host, a user name that basic auth can carry, and the
//! name (never the value) of the variable holding the password.

use super::Registry;
use crate::names::{is_dns_name, is_env_var_name};

/// `(field path, message)` on failure, like every check of the environment file.
pub(super) fn validate(r: &Registry) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((format!("app.registry.{field}"), message));
    if !is_registry_host(&r.server) {
        return fail(
            "server",
            format!(
                "{:?} is not a registry host such as ghcr.io or myregistry.azurecr.io (host[:port], no scheme or path)",
                r.server
            ),
        );
    }
    if r.username.is_empty() || r.username.contains(':') || r.username.chars().any(char::is_control)
    {
        return fail(
            "username",
            "must be non-empty, without ':' or control characters".into(),
        );
    }
    if !is_env_var_name(&r.password_env) {
        // Never echo it: it may be the secret itself.
        return fail(
            "passwordEnv",
            "must name the environment variable that holds the password or token (e.g. GITHUB_TOKEN), never the value".into(),
        );
    }
    Ok(())
}

/// `host` or `host:port`, the host a DNS name (or `localhost`).
fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    port_ok && (host == "localhost" || is_dns_name(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(server: &str, username: &str, password_env: &str) -> Registry {
        Registry {
            server: server.into(),
            username: username.into(),
            password_env: password_env.into(),
        }
    }

    #[test]
    fn good_registries_pass() {
        for server in [
            "ghcr.io",
            "acme.azurecr.io",
            "localhost:5000",
            "registry.internal:443",
        ] {
            assert_eq!(
                validate(&reg(server, "octocat", "GITHUB_TOKEN")),
                Ok(()),
                "{server}"
            );
        }
    }

    #[test]
    fn bad_registries_name_the_field_and_never_echo_a_secret() {
        let cases = [
            (reg("https://ghcr.io", "u", "T"), "app.registry.server"),
            (reg("ghcr.io/acme", "u", "T"), "app.registry.server"),
            (reg("ghcr.io:0", "u", "T"), "app.registry.server"),
            (reg("ghcr.io", "", "T"), "app.registry.username"),
            (reg("ghcr.io", "a:b", "T"), "app.registry.username"),
            (
                reg("ghcr.io", "u", "ghp_s3cr3t-token"),
                "app.registry.passwordEnv",
            ),
        ];
        for (r, field) in cases {
            let (path, message) = validate(&r).unwrap_err();
            assert_eq!(path, field, "{r:?}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }
}
