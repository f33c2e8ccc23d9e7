//! ARM credentials: a chain fit for CI and for people.
//!
//! In order, the first source that is configured wins:
//! 1. `EPHEMERA_AZURE_TOKEN`: a pre-fetched ARM bearer token (checked for expiry when it is a JWT);
//! 2. workload identity federation: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!    `AZURE_FEDERATED_TOKEN_FILE` (GitHub Actions OIDC, AKS workload identity);
//! 3. client secret: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_CLIENT_SECRET`;
//! 4. managed identity (user-assigned when `AZURE_CLIENT_ID` is set);
//! 5. the Azure CLI's login (`az` on `PATH`).
//!
//! `AZURE_TOKEN_CREDENTIALS` narrows sources 2-5 as the Azure SDKs do: `prod` (2-4), `dev` (5), or
//! one credential's name (`WorkloadIdentityCredential`, `EnvironmentCredential`,
//! `ManagedIdentityCredential`, `AzureCliCredential`).
//!
//! A source that is configured but fails (a wrong secret, an unreadable token file, an expired
//! pre-fetched token) stops the chain: falling through to another identity would act as someone
//! else. Managed identity and the CLI are probes, so their failures move on to the next source.
//! Every variable is read again each time a token is requested, so rotated tokens are picked up.
//!
//! Tokens come from `azure_identity` 1.x, which refuses an authority host that is not https. For a
//! loopback `http` authority (the tests' fake Entra ID), the client-credentials request is made
//! here instead. Secrets and tokens never reach a log or an error message.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, Executor, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use base64::Engine as _;
use jiff::Timestamp;
use serde::Deserialize;

use super::AzureError;
use super::cloud::{CloudEndpoints, is_loopback};
use crate::probe::Probe;

pub const ENV_TOKEN: &str = "EPHEMERA_AZURE_TOKEN";
pub const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const ENV_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub const ENV_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const ENV_SELECT: &str = "AZURE_TOKEN_CREDENTIALS";

/// A token this close to its expiry is treated as expired.
const EXPIRY_MARGIN: i64 = 120;

/// Which kind of credential produced a token. Its `Display` is what the log shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    PrefetchedToken,
    WorkloadIdentity,
    ClientSecret,
    ManagedIdentity,
    AzureCli,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::PrefetchedToken => "pre-fetched token (EPHEMERA_AZURE_TOKEN)",
            CredentialKind::WorkloadIdentity => "workload identity federation",
            CredentialKind::ClientSecret => "client secret",
            CredentialKind::ManagedIdentity => "managed identity",
            CredentialKind::AzureCli => "Azure CLI",
        })
    }
}

/// An ARM bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    /// When it stops working (for opaque pre-fetched tokens, an hour from when it was read).
    pub expires_at: Timestamp,
    pub kind: CredentialKind,
    /// Who the token speaks for (`upn`, else `app:<appid>`, else the object id), from its claims.
    pub principal: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The token itself, for the `Authorization` header only.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether it is expired, or about to be, at `now`.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        self.expires_at.as_second() - now.as_second() <= EXPIRY_MARGIN
    }

    fn new(secret: String, expires_at: Option<Timestamp>, kind: CredentialKind) -> Self {
        let claims = claims(&secret);
        let expires_at = expires_at
            .or_else(|| {
                claims
                    .as_ref()
                    .and_then(|c| c.exp)
                    .and_then(|e| Timestamp::from_second(e).ok())
            })
            .unwrap_or_else(|| Timestamp::now() + jiff::SignedDuration::from_hours(1));
        let principal = claims.and_then(Claims::principal);
        AccessToken {
            secret,
            expires_at,
            kind,
            principal,
        }
    }
}

/// The claims of a JWT access token that say who it is for and until when.
#[derive(Debug, Default, Deserialize)]
struct Claims {
    exp: Option<i64>,
    upn: Option<String>,
    unique_name: Option<String>,
    preferred_username: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    oid: Option<String>,
}

impl Claims {
    fn principal(self) -> Option<String> {
        self.upn
            .or(self.preferred_username)
            .or(self.unique_name)
            .or_else(|| self.appid.or(self.azp).map(|a| format!("app:{a}")))
            .or(self.oid)
    }
}

/// Reads a JWT's payload without verifying it (ARM verifies; we only label and time it).
fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Which of the optional sources `AZURE_TOKEN_CREDENTIALS` allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Selection {
    workload: bool,
    secret: bool,
    managed: bool,
    cli: bool,
}

impl Selection {
    fn from_env(value: Option<&str>) -> Result<Self, AzureError> {
        let all = Selection {
            workload: true,
            secret: true,
            managed: true,
            cli: true,
        };
        let none = Selection {
            workload: false,
            secret: false,
            managed: false,
            cli: false,
        };
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(all);
        };
        Ok(match v.to_ascii_lowercase().as_str() {
            "prod" => Selection { cli: false, ..all },
            "dev" => Selection { cli: true, ..none },
            "workloadidentitycredential" => Selection {
                workload: true,
                ..none
            },
            "environmentcredential" | "clientsecretcredential" => Selection {
                secret: true,
                ..none
            },
            "managedidentitycredential" => Selection {
                managed: true,
                ..none
            },
            "azureclicredential" => Selection { cli: true, ..none },
            _ => {
                return Err(AzureError::Config(format!(
                    "{ENV_SELECT}: {v:?} is not one of prod, dev, WorkloadIdentityCredential, EnvironmentCredential, \
                     ManagedIdentityCredential, AzureCliCredential"
                )));
            }
        })
    }
}

/// How long the probing sources may take before the chain moves on.
#[derive(Clone, Copy, Debug)]
pub struct ChainTimeouts {
    pub managed_identity: Duration,
    pub azure_cli: Duration,
    pub token_request: Duration,
}

impl Default for ChainTimeouts {
    fn default() -> Self {
        ChainTimeouts {
            managed_identity: Duration::from_secs(5),
            azure_cli: Duration::from_secs(30),
            token_request: Duration::from_secs(30),
        }
    }
}

/// The credential chain. Cheap to clone; holds no token.
#[derive(Clone)]
pub struct CredentialChain {
    probe: Arc<dyn Probe + Send + Sync>,
    cloud: CloudEndpoints,
    http: reqwest::Client,
    pub timeouts: ChainTimeouts,
}

/// What happened at one source.
enum Outcome {
    Token(AccessToken),
    /// Not configured, or a probe that found nothing: try the next source.
    Skip(String),
    /// Configured and failed: stop.
    Fail(String),
}

impl CredentialChain {
    /// A chain reading the variables of `probe` each time a token is requested.
    pub fn new(
        probe: Arc<dyn Probe + Send + Sync>,
        cloud: CloudEndpoints,
        http: reqwest::Client,
    ) -> Self {
        CredentialChain {
            probe,
            cloud,
            http,
            timeouts: ChainTimeouts::default(),
        }
    }

    /// Checks what can be checked without asking anyone (the selection variable).
    ///
    /// # Errors
    /// [`AzureError::Config`] for an unknown `AZURE_TOKEN_CREDENTIALS`.
    pub fn check(&self) -> Result<(), AzureError> {
        Selection::from_env(self.probe.var(ENV_SELECT).as_deref()).map(|_| ())
    }

    /// Gets an ARM token from the first configured source.
    ///
    /// # Errors
    /// [`AzureError::Credential`] listing every source tried and why it gave no token;
    /// [`AzureError::Config`] for an unknown `AZURE_TOKEN_CREDENTIALS`.
    pub async fn token(&self) -> Result<AccessToken, AzureError> {
        let select = Selection::from_env(self.probe.var(ENV_SELECT).as_deref())?;
        let mut tried = Vec::new();
        let steps: [(&str, bool); 5] = [
            (ENV_TOKEN, true),
            ("workload identity", select.workload),
            ("client secret", select.secret),
            ("managed identity", select.managed),
            ("Azure CLI", select.cli),
        ];
        for (i, (label, enabled)) in steps.into_iter().enumerate() {
            if !enabled {
                tried.push(format!("{label}: excluded by {ENV_SELECT}"));
                continue;
            }
            let outcome = match i {
                0 => self.prefetched(),
                1 => self.workload().await,
                2 => self.client_secret().await,
                3 => self.managed().await,
                _ => self.cli().await,
            };
            match outcome {
                Outcome::Token(t) => {
                    tracing::info!(
                        credential = %t.kind,
                        principal = t.principal.as_deref().unwrap_or("unknown"),
                        "using Azure credential: {}",
                        t.kind
                    );
                    return Ok(t);
                }
                Outcome::Skip(why) => tried.push(format!("{label}: {why}")),
                Outcome::Fail(why) => {
                    tried.push(format!("{label}: {why}"));
                    return Err(AzureError::Credential {
                        tried: tried.join("; "),
                    });
                }
            }
        }
        Err(AzureError::Credential {
            tried: tried.join("; "),
        })
    }

    fn var(&self, key: &str) -> Option<String> {
        self.probe.var_nonempty(key)
    }

    fn prefetched(&self) -> Outcome {
        let Some(raw) = self.var(ENV_TOKEN) else {
            return Outcome::Skip("not set".into());
        };
        let raw = raw.trim();
        let raw = raw
            .strip_prefix("Bearer ")
            .unwrap_or(raw)
            .trim()
            .to_string();
        let token = AccessToken::new(raw, None, CredentialKind::PrefetchedToken);
        if token.is_stale(Timestamp::now()) {
            return Outcome::Fail(format!(
                "the token expired at {} (fetch a new one)",
                token.expires_at
            ));
        }
        Outcome::Token(token)
    }

    fn client_options(&self) -> ClientOptions {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = self
            .cloud
            .authority_host
            .as_str()
            .trim_end_matches('/')
            .to_string();
        ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
            ..Default::default()
        }
    }

    fn ids(&self, want: &str) -> Result<(String, String), Outcome> {
        match (self.var(ENV_CLIENT_ID), self.var(ENV_TENANT_ID)) {
            (Some(c), Some(t)) => Ok((c, t)),
            (None, _) => Err(Outcome::Fail(format!(
                "{want} is set but {ENV_CLIENT_ID} is not"
            ))),
            (_, None) => Err(Outcome::Fail(format!(
                "{want} is set but {ENV_TENANT_ID} is not"
            ))),
        }
    }

    async fn workload(&self) -> Outcome {
        let Some(file) = self.var(ENV_FEDERATED_TOKEN_FILE) else {
            return Outcome::Skip(format!("{ENV_FEDERATED_TOKEN_FILE} not set"));
        };
        let (client_id, tenant_id) = match self.ids(ENV_FEDERATED_TOKEN_FILE) {
            Ok(ids) => ids,
            Err(o) => return o,
        };
        let assertion = match std::fs::read_to_string(&file) {
            Ok(a) if !a.trim().is_empty() => a.trim().to_string(),
            Ok(_) => return Outcome::Fail(format!("{ENV_FEDERATED_TOKEN_FILE} {file} is empty")),
            Err(e) => {
                return Outcome::Fail(format!(
                    "cannot read {ENV_FEDERATED_TOKEN_FILE} {file}: {e}"
                ));
            }
        };
        if is_loopback(&self.cloud.authority_host) && self.cloud.authority_host.scheme() == "http" {
            let form = [
                ("client_id", client_id.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ];
            return self
                .loopback_token(&tenant_id, &form, CredentialKind::WorkloadIdentity)
                .await;
        }
        let mut options = WorkloadIdentityCredentialOptions::default();
        options.credential_options.client_options = self.client_options();
        options.client_id = Some(client_id);
        options.tenant_id = Some(tenant_id);
        options.token_file_path = Some(PathBuf::from(file));
        match WorkloadIdentityCredential::new(Some(options)) {
            Ok(c) => {
                self.ask(
                    c.as_ref(),
                    CredentialKind::WorkloadIdentity,
                    self.timeouts.token_request,
                    false,
                )
                .await
            }
            Err(e) => Outcome::Fail(first_line(&e.to_string())),
        }
    }

    async fn client_secret(&self) -> Outcome {
        let Some(secret) = self.var(ENV_CLIENT_SECRET) else {
            return Outcome::Skip(format!("{ENV_CLIENT_SECRET} not set"));
        };
        let (client_id, tenant_id) = match self.ids(ENV_CLIENT_SECRET) {
            Ok(ids) => ids,
            Err(o) => return o,
        };
        if is_loopback(&self.cloud.authority_host) && self.cloud.authority_host.scheme() == "http" {
            let form = [
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
            ];
            return self
                .loopback_token(&tenant_id, &form, CredentialKind::ClientSecret)
                .await;
        }
        let options = ClientSecretCredentialOptions {
            client_options: self.client_options(),
        };
        match ClientSecretCredential::new(&tenant_id, client_id, Secret::new(secret), Some(options))
        {
            Ok(c) => {
                self.ask(
                    c.as_ref(),
                    CredentialKind::ClientSecret,
                    self.timeouts.token_request,
                    false,
                )
                .await
            }
            Err(e) => Outcome::Fail(first_line(&e.to_string())),
        }
    }

    async fn managed(&self) -> Outcome {
        let mut options = ManagedIdentityCredentialOptions::default();
        if let Some(id) = self.var(ENV_CLIENT_ID) {
            options.user_assigned_id = Some(UserAssignedId::ClientId(id));
        }
        match ManagedIdentityCredential::new(Some(options)) {
            Ok(c) => {
                self.ask(
                    c.as_ref(),
                    CredentialKind::ManagedIdentity,
                    self.timeouts.managed_identity,
                    true,
                )
                .await
            }
            Err(e) => Outcome::Skip(first_line(&e.to_string())),
        }
    }

    async fn cli(&self) -> Outcome {
        if self.probe.which("az").is_none() {
            return Outcome::Skip("az not found on PATH".into());
        }
        let executor = Arc::new(PathExecutor {
            path: self.probe.var("PATH"),
        });
        let options = AzureCliCredentialOptions {
            tenant_id: self.var(ENV_TENANT_ID),
            executor: Some(executor),
            ..Default::default()
        };
        match AzureCliCredential::new(Some(options)) {
            Ok(c) => {
                self.ask(
                    c.as_ref(),
                    CredentialKind::AzureCli,
                    self.timeouts.azure_cli,
                    true,
                )
                .await
            }
            Err(e) => Outcome::Skip(first_line(&e.to_string())),
        }
    }

    async fn ask(
        &self,
        cred: &dyn TokenCredential,
        kind: CredentialKind,
        limit: Duration,
        probe: bool,
    ) -> Outcome {
        let failed = |why: String| {
            if probe {
                Outcome::Skip(why)
            } else {
                Outcome::Fail(why)
            }
        };
        match tokio::time::timeout(limit, cred.get_token(&[self.cloud.scope.as_str()], None)).await
        {
            Ok(Ok(t)) => {
                let expires = Timestamp::from_second(t.expires_on.unix_timestamp()).ok();
                Outcome::Token(AccessToken::new(
                    t.token.secret().to_string(),
                    expires,
                    kind,
                ))
            }
            Ok(Err(e)) => failed(first_line(&e.to_string())),
            Err(_) => failed(format!("no answer within {}s", limit.as_secs())),
        }
    }

    /// The OAuth 2.0 client-credentials request, for a loopback http authority only
    /// (`azure_identity` 1.x requires https).
    async fn loopback_token(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
        kind: CredentialKind,
    ) -> Outcome {
        let url = match self
            .cloud
            .authority_host
            .join(&format!("{tenant}/oauth2/v2.0/token"))
        {
            Ok(u) => u,
            Err(e) => {
                return Outcome::Fail(format!("tenant id {tenant:?} does not form a URL: {e}"));
            }
        };
        let mut body: Vec<(&str, &str)> = form.to_vec();
        body.extend([
            ("grant_type", "client_credentials"),
            ("scope", self.cloud.scope.as_str()),
        ]);
        let sent = self
            .http
            .post(url.clone())
            .form(&body)
            .timeout(self.timeouts.token_request)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Fail(format!(
                    "token request to {url} failed: {}",
                    super::arm::describe_reqwest(&e)
                ));
            }
        };
        let status = resp.status();
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Option<String>,
            expires_in: Option<i64>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let parsed: Result<TokenResponse, _> = resp.json().await;
        match parsed {
            Ok(TokenResponse {
                access_token: Some(token),
                expires_in,
                ..
            }) if status.is_success() => {
                let expires = expires_in.and_then(|s| {
                    Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_secs(s))
                        .ok()
                });
                Outcome::Token(AccessToken::new(token, expires, kind))
            }
            Ok(r) => Outcome::Fail(format!(
                "{url} answered {status}: {}{}",
                r.error.unwrap_or_else(|| "no token".into()),
                r.error_description
                    .map(|d| format!(": {}", first_line(&d)))
                    .unwrap_or_default()
            )),
            Err(_) => Outcome::Fail(format!("{url} answered {status} without a token response")),
        }
    }
}

/// The first line of an error text (azure_identity appends troubleshooting links on new lines).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

/// Runs the Azure CLI with the `PATH` of the probe, so the chain sees the machine the probe
/// describes.
#[derive(Debug)]
struct PathExecutor {
    path: Option<String>,
}

#[async_trait::async_trait]
impl Executor for PathExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(p) = &self.path {
            cmd.env("PATH", p);
        }
        cmd.output().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cloud;
    use crate::probe::FakeProbe;

    fn jwt(claims: serde_json::Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"none"}"#),
            e.encode(claims.to_string())
        )
    }

    fn chain(vars: &[(&str, &str)]) -> CredentialChain {
        let probe = FakeProbe::new(vars.iter().copied());
        let cloud = CloudEndpoints::resolve(&Cloud::default(), &probe).unwrap();
        CredentialChain::new(Arc::new(probe), cloud, reqwest::Client::new())
    }

    #[tokio::test]
    async fn prefetched_token_wins_and_names_its_principal() {
        let exp = Timestamp::now().as_second() + 3600;
        let t = jwt(serde_json::json!({"exp": exp, "appid": "1111", "oid": "2222"}));
        let c = chain(&[
            (ENV_TOKEN, &format!("Bearer {t}")),
            (ENV_CLIENT_SECRET, "s3cret"),
        ]);
        let tok = c.token().await.unwrap();
        assert_eq!(tok.kind, CredentialKind::PrefetchedToken);
        assert_eq!(tok.secret(), t);
        assert_eq!(tok.principal.as_deref(), Some("app:1111"));
        assert_eq!(tok.expires_at.as_second(), exp);
        assert!(!format!("{tok:?}").contains(&t));
    }

    #[tokio::test]
    async fn an_expired_prefetched_token_stops_the_chain() {
        let t = jwt(serde_json::json!({"exp": 1_000_000, "upn": "a@b"}));
        let err = chain(&[(ENV_TOKEN, &t)])
            .token()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("EPHEMERA_AZURE_TOKEN: the token expired at 1970-01-12"),
            "{err}"
        );
        assert!(!err.contains(&t));
    }

    #[tokio::test]
    async fn nothing_configured_lists_every_source() {
        let err = chain(&[(ENV_SELECT, "dev"), ("PATH", "")])
            .token()
            .await
            .unwrap_err();
        assert!(matches!(err, AzureError::Credential { .. }));
        assert_eq!(
            err.to_string(),
            "no usable credential; tried: EPHEMERA_AZURE_TOKEN: not set; workload identity: excluded by \
             AZURE_TOKEN_CREDENTIALS; client secret: excluded by AZURE_TOKEN_CREDENTIALS; managed identity: excluded \
             by AZURE_TOKEN_CREDENTIALS; Azure CLI: az not found on PATH"
        );
    }

    #[tokio::test]
    async fn half_configured_sources_say_what_is_missing() {
        let err = chain(&[(ENV_CLIENT_SECRET, "s3cret"), (ENV_TENANT_ID, "t")])
            .token()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("client secret: AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID is not"),
            "{err}"
        );
        assert!(!err.contains("s3cret"));
        let err = chain(&[
            (ENV_FEDERATED_TOKEN_FILE, "/nonexistent/token"),
            (ENV_TENANT_ID, "t"),
            (ENV_CLIENT_ID, "c"),
        ])
        .token()
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "workload identity: cannot read AZURE_FEDERATED_TOKEN_FILE /nonexistent/token"
            ),
            "{err}"
        );
    }

    #[test]
    fn selection_is_validated() {
        assert!(!Selection::from_env(Some("prod")).unwrap().cli);
        assert!(Selection::from_env(Some("AzureCliCredential")).unwrap().cli);
        let err = Selection::from_env(Some("everything"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("AZURE_TOKEN_CREDENTIALS: \"everything\""),
            "{err}"
        );
    }

    #[test]
    fn principal_prefers_the_user_name() {
        let c = claims(&jwt(
            serde_json::json!({"upn": "dev@acme.test", "appid": "x"}),
        ))
        .unwrap();
        assert_eq!(c.principal().as_deref(), Some("dev@acme.test"));
        assert!(claims("opaque-token").is_none());
    }
}
