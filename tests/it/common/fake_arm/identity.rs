//! Federated identity credentials of user-assigned managed identities
//! (Microsoft.ManagedIdentity, api-version 2023-01-31), as the REST reference describes them:
//! PUT answers 201 (created) or 200 (updated) with the credential; GET 200 or 404; DELETE 200, or
//! 204 when there is nothing to delete; a GET of the collection lists them in pages; the name matches `^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`; the
//! body needs `properties.issuer` (an https URL), `properties.subject` and a non-empty
//! `properties.audiences`. An identity holds at most 20 credentials: a 21st is refused (the error
//! code is this fake's own). Concurrent writes under one identity answer 409; tests queue such
//! refusals with [`super::FakeArm::refuse_credential_writes`].

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{State, arm_error, respond};

pub const IDENTITY_API: &str = "2023-01-31";
/// Federated credentials one identity may hold.
pub const MAX_CREDENTIALS: usize = 20;

/// Identities (lower-case `group/name`) and their credentials (name → body as stored).
#[derive(Debug, Default)]
pub struct IdentityState {
    pub identities: BTreeMap<String, BTreeMap<String, Value>>,
    /// Writes still to be refused with 409 (another write to the identity runs).
    pub refuse_writes: usize,
    /// Credential writes that took effect (PUT and DELETE).
    pub writes: usize,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && (3..=120).contains(&n.len())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn body_error(body: Option<&Value>) -> Option<String> {
    let p = body?.get("properties");
    let Some(p) = p else {
        return Some("properties is required.".into());
    };
    if !p["issuer"]
        .as_str()
        .is_some_and(|i| i.starts_with("https://"))
    {
        return Some("properties.issuer must be an https URL.".into());
    }
    if p["subject"].as_str().is_none_or(str::is_empty) {
        return Some("properties.subject is required.".into());
    }
    if !p["audiences"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
    {
        return Some("properties.audiences must be a non-empty list of strings.".into());
    }
    None
}

/// `GET .../userAssignedIdentities/{identity}/federatedIdentityCredentials`: every credential,
/// for the caller to page; `None` when there is no such identity (answer [`missing`]).
pub fn list(st: &State, group: &str, identity: &str) -> Option<Vec<Value>> {
    let key = format!("{}/{}", group.to_lowercase(), identity.to_lowercase());
    let creds = st.identity.identities.get(&key)?;
    Some(
        creds
            .iter()
            .map(|(name, props)| credential_json(group, identity, name, props))
            .collect(),
    )
}

/// The answer for an identity that does not exist.
pub fn missing(group: &str, identity: &str) -> Response<Body> {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{identity}' under resource group '{group}' was not found."
        ),
    )
}

fn credential_json(group: &str, identity: &str, name: &str, props: &Value) -> Value {
    json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity}/federatedIdentityCredentials/{name}",
            super::SUBSCRIPTION
        ),
        "name": name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        "properties": props,
    })
}

/// `.../userAssignedIdentities/{identity}/federatedIdentityCredentials/{name}`.
pub fn credential(
    st: &mut State,
    method: &Method,
    group: &str,
    identity: &str,
    name: &str,
    body: Option<Value>,
) -> Response<Body> {
    let key = format!("{}/{}", group.to_lowercase(), identity.to_lowercase());
    let ids = &mut st.identity;
    let Some(creds) = ids.identities.get_mut(&key) else {
        return missing(group, identity);
    };
    let as_json = |props: &Value| credential_json(group, identity, name, props);
    match *method {
        Method::GET => match creds.get(name) {
            Some(p) => respond(StatusCode::OK, &[], Some(as_json(p))),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The federated identity credential was not found.",
            ),
        },
        Method::PUT | Method::DELETE if ids.refuse_writes > 0 => {
            ids.refuse_writes -= 1;
            arm_error(
                StatusCode::CONFLICT,
                "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                "Too many Federated Identity Credentials are written concurrently for the managed identity.",
            )
        }
        Method::PUT => {
            if !valid_name(name) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceName",
                    "The federated identity credential name is invalid.",
                );
            }
            if let Some(m) = body_error(body.as_ref()) {
                return arm_error(StatusCode::BAD_REQUEST, "BadRequest", &m);
            }
            let creating = !creds.contains_key(name);
            if creating && creds.len() >= MAX_CREDENTIALS {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "FederatedIdentityCredentialsLimitReached",
                    "The managed identity already has the maximum of 20 federated identity credentials.",
                );
            }
            let props = body.map(|b| b["properties"].clone()).unwrap_or_default();
            creds.insert(name.to_string(), props.clone());
            ids.writes += 1;
            respond(
                if creating {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &[],
                Some(as_json(&props)),
            )
        }
        Method::DELETE => {
            if creds.remove(name).is_some() {
                ids.writes += 1;
                respond(StatusCode::OK, &[], None)
            } else {
                respond(StatusCode::NO_CONTENT, &[], None)
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method not allowed.",
        ),
    }
}
