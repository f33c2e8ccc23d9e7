//! Slack messages about every change ephemera makes (`up`, `deploy`, `promote`, `abort`,
//! `extend`, `down`, `gc`, and `notify` from CI), sent through an incoming webhook.
//!
//! A [`Message`] is built by the command that made the change and rendered here, once, into
//! Block Kit blocks and the plain-text fallback Slack shows in notifications. Everything that
//! came from outside ephemera (image references, branch-derived names, error messages, the text
//! of `notify`) is escaped, so it can neither mention a channel nor forge a link.
//!
//! The webhook URL is read from the environment variable the environment file names, never from
//! the file, and never reaches a log, an error or a warning: transport errors are stripped of
//! their URL and the webhook's answer is not echoed. A failed post is a warning; it never fails
//! or rolls back the command.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Slack;

/// The command a message is about; `notifications.slack.on` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Up,
    Deploy,
    Promote,
    Abort,
    Extend,
    Down,
    Gc,
    /// `ephemera notify`: a CI run's own message (a failed build, a skipped preview).
    Notify,
    /// `ephemera release`: a new image committed to the release repository and synced.
    Release,
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Up,
        Event::Deploy,
        Event::Promote,
        Event::Abort,
        Event::Extend,
        Event::Down,
        Event::Gc,
        Event::Notify,
        Event::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Up => "up",
            Event::Deploy => "deploy",
            Event::Promote => "promote",
            Event::Abort => "abort",
            Event::Extend => "extend",
            Event::Down => "down",
            Event::Gc => "gc",
            Event::Notify => "notify",
            Event::Release => "release",
        }
    }
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// An `up` that gave way to a newer run or a `down` (exit 4): neither success nor failure.
    Superseded,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Superseded];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Superseded => "superseded",
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Outcome::Success => ":white_check_mark:",
            Outcome::Failure => ":x:",
            Outcome::Superseded => ":fast_forward:",
        }
    }
}

/// One message: what happened to which environment, and the facts a reader needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub event: Event,
    pub outcome: Outcome,
    /// One line saying what happened, e.g. `pr-42 is up`. Plain text; escaped when rendered.
    pub title: String,
    pub environment: Option<String>,
    pub pr: Option<u64>,
    /// `owner/name` of the PR's repository, for the PR link.
    pub repository: Option<String>,
    /// The web server the PR link points at, e.g. `https://github.com`.
    pub server: Option<String>,
    /// The preview's URL.
    pub url: Option<String>,
    pub image: Option<String>,
    pub commit: Option<String>,
    /// What the command left behind, e.g. `new image serving 100%` or `PR #4 was merged`.
    pub result: Option<String>,
    pub duration: Option<Duration>,
    /// The error chain of a failure, or why an `up` gave way.
    pub error: Option<String>,
    /// Further facts, in order, e.g. (`Expires`, `2026-12-03 12:00 UTC`).
    pub fields: Vec<(String, String)>,
    /// The CI run that sent the message.
    pub run_url: Option<String>,
}

/// Slack's limits: a section's text, and one field, in characters; fields per section.
const SECTION_TEXT_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const FIELDS_PER_SECTION: usize = 10;

impl Message {
    /// A message with only its event, outcome and title.
    pub fn new(event: Event, outcome: Outcome, title: impl Into<String>) -> Self {
        Message {
            event,
            outcome,
            title: title.into(),
            environment: None,
            pr: None,
            repository: None,
            server: None,
            url: None,
            image: None,
            commit: None,
            result: None,
            duration: None,
            error: None,
            fields: Vec::new(),
            run_url: None,
        }
    }

    /// A message about the environment `name` (of PR `pr`, when it has one): what every command
    /// that changes one environment starts from. The caller adds what it knows, then
    /// [`Message::with_ci`].
    pub fn for_environment(
        event: Event,
        outcome: Outcome,
        title: impl Into<String>,
        name: &str,
        pr: Option<u64>,
    ) -> Self {
        let mut m = Message::new(event, outcome, title);
        m.environment = Some(name.to_string());
        m.pr = pr;
        m
    }

    /// Fills what GitHub Actions says about the run (`GITHUB_SERVER_URL`, `GITHUB_REPOSITORY`,
    /// `GITHUB_RUN_ID`): the run link, and the repository and server of the PR link unless set.
    pub fn with_ci(self) -> Self {
        self.with_ci_from(|k| std::env::var(k).ok())
    }

    /// [`Message::with_ci`] with variables read through `var`.
    pub fn with_ci_from(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let server = var("GITHUB_SERVER_URL").filter(|s| is_web_url(s));
        let repository = var("GITHUB_REPOSITORY").filter(|r| is_repository(r));
        if let (Some(s), Some(r), Some(id)) = (&server, &repository, var("GITHUB_RUN_ID"))
            && id.bytes().all(|b| b.is_ascii_digit())
        {
            self.run_url = Some(format!("{}/{r}/actions/runs/{id}", s.trim_end_matches('/')));
        }
        if self.repository.is_none() {
            self.repository = repository;
        }
        if self.server.is_none() {
            self.server = server;
        }
        self
    }

    /// The PR's page, when the PR and its repository are known.
    pub fn pr_link(&self) -> Option<String> {
        let pr = self.pr?;
        let repo = self.repository.as_deref().filter(|r| is_repository(r))?;
        let server = self.server.as_deref().unwrap_or("https://github.com");
        Some(format!("{}/{repo}/pull/{pr}", server.trim_end_matches('/')))
    }

    /// The plain-text fallback: what Slack shows in notifications and where blocks cannot be
    /// shown. One line per fact, the title first.
    pub fn text(&self) -> String {
        let mut lines = vec![format!("ephemera: {}", escape(&one_line(&self.title)))];
        for (k, v) in self.facts(false) {
            lines.push(format!("{k}: {v}"));
        }
        if let Some(e) = &self.error {
            lines.push(format!("Error: {}", escape(&one_line(e))));
        }
        if let Some(u) = self.run_url.as_deref().filter(|u| is_web_url(u)) {
            lines.push(format!("<{}|run>", escape(u)));
        }
        cut(&lines.join("\n"), SECTION_TEXT_MAX)
    }

    /// The webhook's JSON body: Block Kit blocks, and [`Message::text`] as the fallback.
    pub fn payload(&self) -> Value {
        let mut blocks = vec![json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": cut(
                    &format!("{} *{}*", self.outcome.emoji(), escape(&one_line(&self.title))),
                    SECTION_TEXT_MAX,
                ),
            },
        })];
        let fields: Vec<Value> = self
            .facts(true)
            .into_iter()
            .map(|(k, v)| json!({"type": "mrkdwn", "text": cut(&format!("*{k}*\n{v}"), FIELD_MAX)}))
            .collect();
        for chunk in fields.chunks(FIELDS_PER_SECTION) {
            blocks.push(json!({"type": "section", "fields": chunk}));
        }
        if let Some(e) = &self.error {
            // The whole chain, in a code block; three backticks in it would end the block.
            let chain = escape(e).replace("```", "'''");
            let head = "*Error*\n```";
            let body = cut(&chain, SECTION_TEXT_MAX - head.len() - 3);
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("{head}{body}```")},
            }));
        }
        let mut context = format!("ephemera {} · {}", crate::VERSION, self.event.as_str());
        if let Some(u) = self.run_url.as_deref().filter(|u| is_web_url(u)) {
            context.push_str(&format!(" · <{}|run>", escape(u)));
        }
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": context}],
        }));
        json!({ "text": self.text(), "blocks": blocks })
    }

    /// The facts shown, as (label, mrkdwn value); `code` puts untrusted values in inline code.
    fn facts(&self, code: bool) -> Vec<(String, String)> {
        let lit = |s: &str| {
            if code {
                inline_code(s)
            } else {
                escape(&one_line(s))
            }
        };
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(e) = &self.environment {
            out.push(("Environment".into(), lit(e)));
        }
        if let Some(pr) = self.pr {
            let v = match self.pr_link() {
                Some(l) => format!("<{}|#{pr}>", escape(&l)),
                None => format!("#{pr}"),
            };
            out.push(("PR".into(), v));
        }
        if let Some(u) = &self.url {
            let v = if is_web_url(u) {
                format!("<{}>", escape(u))
            } else {
                lit(u)
            };
            out.push(("URL".into(), v));
        }
        if let Some(i) = &self.image {
            out.push(("Image".into(), lit(i)));
        }
        if let Some(c) = &self.commit {
            out.push(("Commit".into(), lit(c)));
        }
        if let Some(r) = &self.result {
            out.push(("Result".into(), escape(&one_line(r))));
        }
        if let Some(d) = self.duration {
            out.push(("Duration".into(), human(d)));
        }
        for (k, v) in &self.fields {
            out.push((escape(&one_line(k)), escape(&one_line(v))));
        }
        out
    }
}

/// What became of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The webhook took it.
    Sent,
    /// `notifications.slack.on` does not ask for it.
    NotWanted,
    /// Not sent, and why; never holding the webhook URL.
    Failed(String),
}

/// Whether `cfg` asks for messages about `event` ending in `outcome`.
pub fn wants(cfg: &Slack, event: Event, outcome: Outcome) -> bool {
    cfg.wants(event.as_str(), outcome.as_str())
}

/// Sends `msg` if the environment's Slack settings ask for it; `None` when sent, not wanted or
/// not configured, else a warning for the log (which never holds the webhook URL).
pub async fn notify(cfg: Option<&Slack>, msg: &Message) -> Option<String> {
    match cfg {
        None => None,
        Some(cfg) => match send(cfg, msg).await {
            Delivery::Sent | Delivery::NotWanted => None,
            Delivery::Failed(w) => Some(w),
        },
    }
}

/// Posts `msg` to the webhook in `$<cfg.webhook_env>`, unless `cfg.on` leaves it out.
pub async fn send(cfg: &Slack, msg: &Message) -> Delivery {
    if !wants(cfg, msg.event, msg.outcome) {
        return Delivery::NotWanted;
    }
    let failed = |m: String| Delivery::Failed(format!("Slack notification {m}"));
    let url = match std::env::var(&cfg.webhook_env) {
        Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
        _ => return failed(format!("skipped: ${} is not set", cfg.webhook_env)),
    };
    let is_loopback_http =
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:");
    if !url.starts_with("https://") && !is_loopback_http {
        return failed(format!("skipped: ${} is not an https URL", cfg.webhook_env));
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("failed: {}", e.without_url())),
    };
    match client.post(&url).json(&msg.payload()).send().await {
        Ok(resp) if resp.status().is_success() => Delivery::Sent,
        Ok(resp) => failed(format!("failed: the webhook answered {}", resp.status())),
        Err(e) => failed(format!("failed: {}", e.without_url())),
    }
}

/// `s` with Slack's control characters escaped: no mention, link or channel ping can be forged.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` shown literally as inline code: escaped, on one line, without backticks to break out.
fn inline_code(s: &str) -> String {
    format!("`{}`", escape(&one_line(s)).replace('`', "'"))
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `42s`, `3m 05s`, `1h 02m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn is_web_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && !s.contains(['|', '<', '>', ' ', '\n'])
}

fn is_repository(s: &str) -> bool {
    s.split_once('/').is_some_and(|(o, n)| {
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        ok(o) && ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Message {
        let mut m = Message::new(Event::Up, Outcome::Success, "pr-7 is up");
        m.environment = Some("pr-7".into());
        m.pr = Some(7);
        m.repository = Some("acme/cats".into());
        m.url = Some("https://pr-7.previews.acme.dev".into());
        m.image = Some("ghcr.io/acme/cats:sha-1".into());
        m.commit = Some("1".repeat(40));
        m.result = Some("new image serving 100%".into());
        m.duration = Some(Duration::from_secs(125));
        m
    }

    #[test]
    fn events_and_outcomes_are_the_names_the_config_accepts() {
        let events: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(events, crate::config::SLACK_EVENTS);
        let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(outcomes, crate::config::SLACK_OUTCOMES);
    }

    #[test]
    fn blocks_and_fallback_carry_every_fact() {
        let p = up().payload();
        let text = p["text"].as_str().unwrap();
        assert!(text.starts_with("ephemera: pr-7 is up\n"), "{text}");
        for want in [
            "PR: <https://github.com/acme/cats/pull/7|#7>",
            "URL: <https://pr-7.previews.acme.dev>",
            "Image: ghcr.io/acme/cats:sha-1",
            "Result: new image serving 100%",
            "Duration: 2m 05s",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["text"]["text"], ":white_check_mark: *pr-7 is up*");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(fields[0], "*Environment*\n`pr-7`");
        assert!(fields.contains(&"*Image*\n`ghcr.io/acme/cats:sha-1`"));
        assert_eq!(blocks.last().unwrap()["type"], "context");
    }

    #[test]
    fn untrusted_text_cannot_ping_or_link() {
        let mut m = Message::new(
            Event::Notify,
            Outcome::Failure,
            "<!channel> & <https://x|y>",
        );
        m.image = Some("evil`<!here>`".into());
        m.error = Some("step app failed: ```<@U123>".into());
        let p = m.payload().to_string();
        assert!(!p.contains("<!channel>") && !p.contains("<!here>") && !p.contains("<@U"));
        assert!(
            p.contains("&lt;!channel&gt; &amp; &lt;https://x|y&gt;"),
            "{p}"
        );
        let blocks = m.payload()["blocks"].clone();
        let error = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(error, "*Error*\n```step app failed: '''&lt;@U123&gt;```");
    }

    #[test]
    fn long_errors_fit_slacks_limits() {
        let mut m = up();
        m.outcome = Outcome::Failure;
        m.error = Some("x".repeat(10_000));
        let p = m.payload();
        for b in p["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= SECTION_TEXT_MAX, "{}", t.len());
            }
        }
        assert!(p["text"].as_str().unwrap().chars().count() <= SECTION_TEXT_MAX);
    }

    #[test]
    fn ci_variables_give_the_run_and_the_pr_link() {
        let vars = |k: &str| {
            match k {
                "GITHUB_SERVER_URL" => Some("https://ghe.acme.dev"),
                "GITHUB_REPOSITORY" => Some("acme/dogs"),
                "GITHUB_RUN_ID" => Some("99"),
                _ => None,
            }
            .map(str::to_string)
        };
        let mut m = Message::new(Event::Down, Outcome::Success, "pr-3 is gone");
        m.pr = Some(3);
        let m = m.with_ci_from(vars);
        assert_eq!(
            m.run_url.as_deref(),
            Some("https://ghe.acme.dev/acme/dogs/actions/runs/99")
        );
        assert_eq!(
            m.pr_link().as_deref(),
            Some("https://ghe.acme.dev/acme/dogs/pull/3")
        );
        // A record's own repository wins over the run's.
        let mut m = Message::new(Event::Down, Outcome::Success, "x");
        m.pr = Some(3);
        m.repository = Some("acme/cats".into());
        assert!(
            m.with_ci_from(vars)
                .pr_link()
                .unwrap()
                .ends_with("acme/cats/pull/3")
        );
    }

    #[test]
    fn on_selects_events_and_outcomes() {
        let cfg = |on: &[&str]| Slack {
            webhook_env: "X".into(),
            on: on.iter().map(|s| s.to_string()).collect(),
        };
        let all = cfg(&crate::config::SLACK_EVENTS);
        for e in Event::ALL {
            for o in Outcome::ALL {
                assert!(wants(&all, e, o), "{e:?} {o:?}");
            }
        }
        let up_down = cfg(&["up", "down"]);
        assert!(wants(&up_down, Event::Down, Outcome::Failure));
        assert!(!wants(&up_down, Event::Gc, Outcome::Success));
        let failures = cfg(&["failure"]);
        assert!(wants(&failures, Event::Extend, Outcome::Failure));
        assert!(!wants(&failures, Event::Up, Outcome::Success));
        assert!(!wants(&failures, Event::Up, Outcome::Superseded));
        let up_failures = cfg(&["up", "failure"]);
        assert!(wants(&up_failures, Event::Up, Outcome::Failure));
        assert!(!wants(&up_failures, Event::Deploy, Outcome::Failure));
        assert!(!wants(&up_failures, Event::Up, Outcome::Success));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_millis(4_900)), "4s");
        assert_eq!(human(Duration::from_secs(61)), "1m 01s");
        assert_eq!(human(Duration::from_secs(3_720)), "1h 02m");
    }

    async fn server(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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

    fn every(var: &str) -> Slack {
        Slack {
            webhook_env: var.into(),
            on: vec!["success".into(), "failure".into()],
        }
    }

    #[tokio::test]
    async fn posts_the_payload_to_the_webhook() {
        let (url, seen) = server(200).await;
        // SAFETY: each test uses its own variable name.
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_OK", &url) };
        let sent = send(&every("EPHEMERA_TEST_SLACK_OK"), &up()).await;
        assert_eq!(sent, Delivery::Sent);
        let bodies = seen.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1);
        let body: Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(body, up().payload());
    }

    #[tokio::test]
    async fn failures_are_warnings_without_the_url() {
        let (url, _) = server(500).await;
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_500", &url) };
        let Delivery::Failed(w) = send(&every("EPHEMERA_TEST_SLACK_500"), &up()).await else {
            panic!("a 500 is a failure");
        };
        assert!(w.contains("500") && !w.contains("secret-token"), "{w}");
        // A closed port: a transport error, still without the URL.
        unsafe {
            std::env::set_var(
                "EPHEMERA_TEST_SLACK_DOWN",
                "http://127.0.0.1:1/hook/secret-token",
            )
        };
        let Delivery::Failed(w) = send(&every("EPHEMERA_TEST_SLACK_DOWN"), &up()).await else {
            panic!("a closed port is a failure");
        };
        assert!(
            !w.contains("secret-token") && !w.contains("127.0.0.1"),
            "{w}"
        );
    }

    #[tokio::test]
    async fn filters_and_refuses_plain_http_elsewhere() {
        let only_failures = Slack {
            webhook_env: "EPHEMERA_TEST_SLACK_F".into(),
            on: vec!["failure".into()],
        };
        assert_eq!(send(&only_failures, &up()).await, Delivery::NotWanted);
        unsafe { std::env::set_var("EPHEMERA_TEST_SLACK_HTTP", "http://hooks.example.com/x") };
        let sent = send(&every("EPHEMERA_TEST_SLACK_HTTP"), &up()).await;
        assert_eq!(
            sent,
            Delivery::Failed(
                "Slack notification skipped: $EPHEMERA_TEST_SLACK_HTTP is not an https URL".into()
            )
        );
        let sent = send(&every("EPHEMERA_TEST_SLACK_UNSET"), &up()).await;
        assert_eq!(
            sent,
            Delivery::Failed(
                "Slack notification skipped: $EPHEMERA_TEST_SLACK_UNSET is not set".into()
            )
        );
    }
}
