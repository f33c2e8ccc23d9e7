//! A Slack incoming webhook on 127.0.0.1 that records the messages posted to it. Its URL holds a
//! secret path, as Slack's do, so tests can check it never reaches any output.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The secret part of the webhook's path.
pub const SECRET: &str = "T000-B000-XXXXslacksecretXXXX";

pub struct FakeSlack {
    pub url: String,
    messages: Arc<Mutex<Vec<Value>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl FakeSlack {
    /// Starts the webhook on a thread of its own; it stops with the test process.
    pub fn start() -> FakeSlack {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let seen = messages.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = super::runtime();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    &format!("/services/{SECRET}"),
                    axum::routing::post(move |body: String| {
                        let seen = seen.clone();
                        async move {
                            let payload = serde_json::from_str::<Value>(&body)
                                .unwrap_or_else(|_| Value::String(body.clone()));
                            seen.lock().unwrap().push(payload);
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1");
                tx.send(listener.local_addr().expect("address"))
                    .expect("the test waits");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("the webhook starts");
        FakeSlack {
            url: format!("http://{addr}/services/{SECRET}"),
            messages,
            _thread: thread,
        }
    }

    /// Every message's text (the fallback Slack shows in notifications), oldest first.
    pub fn messages(&self) -> Vec<String> {
        self.payloads()
            .iter()
            .map(|p| {
                p["text"]
                    .as_str()
                    .map_or_else(|| format!("(not JSON text: {p})"), str::to_string)
            })
            .collect()
    }

    /// Every message's whole body (`text` and Block Kit `blocks`), oldest first.
    pub fn payloads(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }
}
