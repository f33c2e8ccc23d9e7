//! Benchmark: `ephemera list --output json` over 500 AKS environments served by the fake ARM in
//! pages of 100 (plus their 500 tagged resource groups, which `list` reads too, to find groups an
//! interrupted delete left behind). Target: under 2 s.
//!
//! Its peer, measured in the same process: the same pages fetched with a bare HTTP client (one
//! token, then every `nextLink` of both listings), the floor any implementation pays. The
//! benchmark prints both medians and their ratio.
//!
//! `cargo bench --bench list` runs 7 rounds; under `cargo test --all-targets` (no `--bench`
//! argument) one round checks that it works.

#[allow(dead_code)]
#[path = "../tests/it/common/fake_arm/mod.rs"]
mod fake_arm;

use std::process::Command;
use std::time::{Duration, Instant};

use fake_arm::{Config, FakeArm, SUBSCRIPTION};
use serde_json::{Value, json};

const ENVIRONMENTS: usize = 500;
const PAGE: usize = 100;
const TARGET: Duration = Duration::from_secs(2);

fn env_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bench.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: bench
provider:
  aks:
    subscription: {SUBSCRIPTION}
    location: westeurope
    resourceGroup:
      strategy: perEnvironment
      name: rg-bench
app:
  name: cats
"
        ),
    )
    .expect("writing the environment file");
    path
}

fn tags(name: &str, pr: usize) -> Value {
    json!({
        "ephemera-managed-by": "ephemera",
        "ephemera-environment": name,
        "ephemera-provider": "aks",
        "ephemera-repository": "acme/cats",
        "ephemera-pr": pr.to_string(),
        "ephemera-created-at": "2026-11-28T10:00:00Z",
        "ephemera-expires-at": "2099-01-01T00:00:00Z",
        "ephemera-version": "0.1.0",
        "ephemera-env-file": "bench",
        "team": "cats",
    })
}

/// One `ephemera list --output json`; returns its wall time and how many it listed.
fn run_binary(fake: &FakeArm, env: &std::path::Path, home: &std::path::Path) -> (Duration, usize) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ephemera"))
        .env_clear()
        .envs(fake.env())
        .env("HOME", home)
        .args(["list", "--output", "json", "--env"])
        .arg(env)
        .output()
        .expect("ephemera runs");
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "ephemera list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    (took, rows.len())
}

/// The same listings with a bare client: a token, then every page of both lists.
async fn run_floor(fake: &FakeArm) -> (Duration, usize) {
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let token: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            fake.url,
            fake_arm::TENANT
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", fake_arm::CLIENT_ID),
            ("client_secret", fake_arm::CLIENT_SECRET),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let bearer = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let mut items = 0;
    for first in [
        format!(
            "{}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/managedClusters?api-version=2026-08-01",
            fake.url
        ),
        format!(
            "{}/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=2021-04-01&%24filter=tagName%20eq%20%27ephemera-managed-by%27%20and%20tagValue%20eq%20%27ephemera%27",
            fake.url
        ),
    ] {
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let page: Value = http
                .get(&url)
                .bearer_auth(&bearer)
                .header("x-ms-client-request-id", "bench")
                .send()
                .await
                .expect("page")
                .json()
                .await
                .expect("page JSON");
            items += page["value"].as_array().map_or(0, Vec::len);
            next = page["nextLink"].as_str().map(str::to_string);
        }
    }
    (t0.elapsed(), items)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = if benching { 7 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fake = rt.block_on(FakeArm::start(Config {
        page_size: PAGE,
        ..Config::default()
    }));
    for i in 0..ENVIRONMENTS {
        let name = format!("pr-{i}");
        let group = format!("rg-bench-{name}");
        fake.seed_group(&group, tags(&name, i + 1));
        fake.seed_cluster(&group, &name, tags(&name, i + 1));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let env = env_file(dir.path());

    let mut binary = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..rounds {
        let (took, listed) = run_binary(&fake, &env, dir.path());
        assert_eq!(
            listed, ENVIRONMENTS,
            "ephemera list lists every environment once"
        );
        binary.push(took);
        let (took, items) = rt.block_on(run_floor(&fake));
        assert_eq!(items, 2 * ENVIRONMENTS, "clusters and groups");
        floor.push(took);
    }
    let (b, f) = (median(binary), median(floor));
    let pages = 2 * ENVIRONMENTS.div_ceil(PAGE);
    println!(
        "list: {ENVIRONMENTS} environments ({pages} pages of {PAGE}), median of {rounds}: \
         ephemera list --output json {:.0} ms, bare HTTP floor {:.0} ms, ratio {:.1}x; target < {} s: {}",
        b.as_secs_f64() * 1000.0,
        f.as_secs_f64() * 1000.0,
        b.as_secs_f64() / f.as_secs_f64().max(1e-6),
        TARGET.as_secs(),
        if b < TARGET { "met" } else { "MISSED" }
    );
    if b >= TARGET {
        std::process::exit(1);
    }
}
