//! Pull credentials for a private registry (`app.registry`): the `kubernetes.io/dockerconfigjson`
//! Secret's contents, built from the password or token in the environment variable the file
//! names, and its refresh by `deploy`.
//!
//! The password never reaches a log, an error or `plan`'s output: `plan` shows the Secret with
//! its data redacted, and errors name the variable, not its value.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::AppError;
use crate::config::Registry;

/// What `plan` shows instead of the Secret's data.
pub const REDACTED: &str = "<redacted>";

/// The Secret's name: `<app>-registry`.
pub fn secret_name(app: &str) -> String {
    format!("{app}-registry")
}

/// The password or token, from the variable `app.registry.passwordEnv` names.
///
/// # Errors
/// The variable's name (never a value) when it is unset, empty or not Unicode.
pub fn password(r: &Registry) -> Result<String, String> {
    match std::env::var(&r.password_env) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "the environment variable {} is not set; it must hold the password or token for {}",
            r.password_env, r.server
        )),
    }
}

/// The Secret's `.dockerconfigjson`, base64-encoded as Secret data is: one `auths` entry for the
/// server, with the user name, the password and their basic-auth form.
pub fn dockerconfigjson(r: &Registry, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let auth = b64.encode(format!("{}:{password}", r.username));
    let config = json!({
        "auths": {
            r.server.clone(): {
                "username": r.username,
                "password": password,
                "auth": auth,
            }
        }
    });
    b64.encode(config.to_string())
}

/// Applies the Secret `plan` rendered (with real data) in the environment's cluster, as `up` does:
/// `deploy` calls this so a rotated token reaches the cluster with the new image.
///
/// # Errors
/// [`AppError::Invalid`] for an object that is not a Secret; [`AppError::Apply`] naming the Secret.
pub async fn refresh(
    client: &kube::Client,
    env_name: &str,
    secret: &Value,
) -> Result<(), AppError> {
    if secret["kind"] != "Secret" {
        return Err(AppError::Invalid(format!(
            "the registry credentials template rendered a {} instead of a Secret",
            secret["kind"]
        )));
    }
    let obj = crate::kube::manifest::from_value(secret.clone())
        .map_err(|e| AppError::Invalid(format!("the registry Secret is not an object: {e}")))?;
    let opts = crate::kube::ApplyOptions {
        labels: BTreeMap::from([
            (
                crate::labels::MANAGED_BY.to_string(),
                crate::MANAGER.to_string(),
            ),
            (crate::labels::ENVIRONMENT.to_string(), env_name.to_string()),
            (crate::labels::COMPONENT.to_string(), "app".to_string()),
        ]),
        force: true,
        origin: "app registry credentials".into(),
        ..Default::default()
    };
    crate::kube::Applier::new(client.clone())
        .apply(vec![obj], &opts)
        .await
        .map_err(|e| AppError::Apply {
            object: format!(
                "Secret {}/{}",
                secret["metadata"]["namespace"].as_str().unwrap_or_default(),
                secret["metadata"]["name"].as_str().unwrap_or_default()
            ),
            source: Box::new(e),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerconfigjson_holds_one_auth_for_the_server() {
        let r = Registry {
            server: "ghcr.io".into(),
            username: "octocat".into(),
            password_env: "GITHUB_TOKEN".into(),
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let decoded = b64.decode(dockerconfigjson(&r, "s3cr3t")).unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        let entry = &v["auths"]["ghcr.io"];
        assert_eq!(entry["username"], "octocat");
        assert_eq!(entry["password"], "s3cr3t");
        assert_eq!(
            b64.decode(entry["auth"].as_str().unwrap()).unwrap(),
            b"octocat:s3cr3t"
        );
        assert_eq!(v["auths"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn a_missing_variable_is_named_and_no_value_is_echoed() {
        let r = Registry {
            server: "ghcr.io".into(),
            username: "octocat".into(),
            password_env: "EPHEMERA_TEST_SURELY_UNSET_TOKEN".into(),
        };
        let err = password(&r).unwrap_err();
        assert!(
            err.contains("EPHEMERA_TEST_SURELY_UNSET_TOKEN is not set"),
            "{err}"
        );
    }
}
