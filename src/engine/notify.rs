//! Slack notifications through an incoming webhook.
//!
//! The webhook URL is read from the environment variable the environment file names, never from
//! the file itself, and never reaches a log or an error: reqwest errors are stripped of URLs. A
//! failed notification is a warning; it never fails or rolls back the run.

use std::time::Duration;

use crate::config::Slack;

/// How a run ended, for the message and the `on` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The run gave way to a newer run or a teardown (exit 4) and changed nothing: no failure.
    Superseded,
}

impl Outcome {
    /// The `on` value that lets this outcome through: a superseded run is no failure, so it is
    /// sent with the successes.
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success | Outcome::Superseded => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Sends `text` if the configuration asks for this outcome. Returns a warning on failure.
pub async fn slack(cfg: &Slack, outcome: Outcome, text: &str) -> Option<String> {
    if !cfg.on.iter().any(|o| o == outcome.as_str()) {
        return None;
    }
    let url = match std::env::var(&cfg.webhook_env) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            return Some(format!(
                "Slack notification skipped: ${} is not set",
                cfg.webhook_env
            ));
        }
    };
    let is_loopback_http =
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:");
    if !url.starts_with("https://") && !is_loopback_http {
        return Some(format!(
            "Slack notification skipped: ${} is not an https URL",
            cfg.webhook_env
        ));
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Some(format!("Slack notification failed: {}", e.without_url())),
    };
    let body = serde_json::json!({ "text": text });
    match client.post(&url).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!(
            "Slack notification failed: webhook answered {}",
            resp.status()
        )),
        Err(e) => Some(format!("Slack notification failed: {}", e.without_url())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    async fn server(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let app = axum::Router::new().route(
            "/hook/secret-token",
            axum::routing::post(move |body: String| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(body);
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook/secret-token"), seen)
    }

    fn cfg(var: &str) -> Slack {
        Slack {
            webhook_env: var.into(),
            on: vec!["success".into(), "failure".into()],
        }
    }

    #[tokio::test]
    async fn posts_json_text_to_the_webhook() {
        let (url, seen) = server(200).await;
        // SAFETY: each test uses its own variable name.
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_OK", &url) };
        assert_eq!(
            slack(
                &cfg("EPHEMERA_TEST_SLACK_OK"),
                Outcome::Success,
                "pr-1 is up"
            )
            .await,
            None
        );
        let bodies = seen.lock().unwrap().clone();
        assert_eq!(bodies, vec![r#"{"text":"pr-1 is up"}"#.to_string()]);
    }

    #[tokio::test]
    async fn failures_are_warnings_without_the_url() {
        let (url, _) = server(500).await;
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_500", &url) };
        let w = slack(&cfg("EPHEMERA_TEST_SLACK_500"), Outcome::Failure, "x")
            .await
            .unwrap();
        assert!(w.contains("500") && !w.contains("secret-token"), "{w}");
        // A closed port: a transport error, still without the URL.
        unsafe {
            std::env::set_var(
                "EPHEMERA_TEST_SLACK_DOWN",
                "http://127.0.0.1:1/hook/secret-token",
            )
        };
        let w = slack(&cfg("EPHEMERA_TEST_SLACK_DOWN"), Outcome::Failure, "x")
            .await
            .unwrap();
        assert!(!w.contains("secret-token"), "{w}");
    }

    #[tokio::test]
    async fn filters_by_outcome_and_refuses_plain_http_elsewhere() {
        let only_failures = Slack {
            webhook_env: "EPHEMERA_TEST_SLACK_F".into(),
            on: vec!["failure".into()],
        };
        assert_eq!(slack(&only_failures, Outcome::Success, "x").await, None);
        // A run that gave way is no failure.
        assert_eq!(slack(&only_failures, Outcome::Superseded, "x").await, None);
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_HTTP", "http://hooks.example.com/x") };
        let w = slack(&cfg("EPHEMERA_TEST_SLACK_HTTP"), Outcome::Success, "x")
            .await
            .unwrap();
        assert!(w.contains("not an https URL"), "{w}");
        let w = slack(&cfg("EPHEMERA_TEST_SLACK_UNSET"), Outcome::Success, "x")
            .await
            .unwrap();
        assert!(w.contains("$EPHEMERA_TEST_SLACK_UNSET is not set"), "{w}");
    }
}
