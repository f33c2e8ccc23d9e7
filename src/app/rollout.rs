//! The Argo Rollout as ephemera reads it: a lenient view of the fields that matter, the status
//! summary `status` prints, and the predicates `deploy`, `promote` and `abort` wait on.
//!
//! Everything here is pure: it takes a Rollout (and its ReplicaSets) as data, so it is unit-tested
//! on YAML fixtures without a cluster. The rules follow the Argo Rollouts kubectl plugin
//! (`kubectl argo rollouts get rollout`): phase as `GetRolloutPhase` computes it, set weight as
//! `GetCurrentSetWeight`, actual weight from available replicas for a replica-count canary.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The label the controller puts on each ReplicaSet (and its pods): the pod-template hash.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";

/// The annotation Argo CD sets on resources it tracks (its default tracking method).
pub const ARGOCD_TRACKING: &str = "argocd.argoproj.io/tracking-id";

/// `null` reads as the type's default, so a field the API server dropped and one sent as
/// `null` look the same.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string or a number, as a string: `status.observedGeneration` is a string in Rollouts 1.x.
fn string_or_number<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The parts of a Rollout that ephemera reads. Unknown fields are ignored; missing ones default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutView {
    #[serde(deserialize_with = "nullable")]
    pub metadata: MetaView,
    #[serde(deserialize_with = "nullable")]
    pub spec: SpecView,
    #[serde(deserialize_with = "nullable")]
    pub status: StatusView,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetaView {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: Option<i64>,
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpecView {
    pub replicas: Option<i64>,
    #[serde(deserialize_with = "nullable")]
    pub paused: bool,
    #[serde(deserialize_with = "nullable")]
    pub strategy: StrategyView,
    #[serde(deserialize_with = "nullable")]
    pub template: TemplateView,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StrategyView {
    pub canary: Option<CanaryView>,
    pub blue_green: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CanaryView {
    #[serde(deserialize_with = "nullable")]
    pub steps: Vec<serde_json::Value>,
    pub traffic_routing: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TemplateView {
    #[serde(deserialize_with = "nullable")]
    pub spec: PodSpecView,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpecView {
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<ContainerView>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerView {
    pub name: String,
    pub image: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusView {
    pub phase: Option<String>,
    pub message: Option<String>,
    pub current_step_index: Option<i64>,
    #[serde(rename = "stableRS")]
    pub stable_rs: Option<String>,
    pub current_pod_hash: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub pause_conditions: Vec<PauseConditionView>,
    #[serde(deserialize_with = "nullable")]
    pub controller_pause: bool,
    #[serde(deserialize_with = "nullable")]
    pub abort: bool,
    #[serde(deserialize_with = "nullable")]
    pub promote_full: bool,
    #[serde(deserialize_with = "string_or_number")]
    pub observed_generation: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub replicas: i64,
    #[serde(deserialize_with = "nullable")]
    pub updated_replicas: i64,
    #[serde(deserialize_with = "nullable")]
    pub ready_replicas: i64,
    #[serde(deserialize_with = "nullable")]
    pub available_replicas: i64,
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<ConditionView>,
    #[serde(deserialize_with = "nullable")]
    pub canary: CanaryStatusView,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PauseConditionView {
    pub reason: String,
    pub start_time: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CanaryStatusView {
    pub weights: Option<serde_json::Value>,
}

impl RolloutView {
    /// `namespace/name`, for messages.
    pub fn object(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    fn steps(&self) -> &[serde_json::Value] {
        self.spec
            .strategy
            .canary
            .as_ref()
            .map_or(&[], |c| c.steps.as_slice())
    }

    /// The controller has seen the current spec (`metadata.generation`).
    pub fn generation_observed(&self) -> bool {
        let Some(observed) = &self.status.observed_generation else {
            return false;
        };
        match (observed.parse::<i64>(), self.metadata.generation) {
            (Ok(o), Some(g)) => o >= g,
            // Rollouts before 0.10 stored a hash here; the plugin treats it as observed.
            (Err(_), _) => true,
            (Ok(_), None) => true,
        }
    }

    /// Someone cleared the pause conditions and the controller has not reacted yet.
    fn unpausing(&self) -> bool {
        self.status.controller_pause && self.status.pause_conditions.is_empty()
    }

    /// Whether the stable ReplicaSet runs the current pod template.
    pub fn fully_promoted(&self) -> bool {
        self.status.stable_rs.is_some() && self.status.stable_rs == self.status.current_pod_hash
    }

    /// The current step index, as the plugin reads it: 0 when unset, `None` without steps.
    pub fn step_index(&self) -> Option<i64> {
        if self.spec.strategy.canary.is_none() || self.steps().is_empty() {
            return None;
        }
        Some(self.status.current_step_index.unwrap_or(0))
    }

    fn current_step(&self) -> Option<&serde_json::Value> {
        let i = usize::try_from(self.step_index()?).ok()?;
        self.steps().get(i)
    }

    /// The phase and message, as `GetRolloutPhase` in Argo Rollouts computes them.
    pub fn phase(&self) -> (Phase, String) {
        if self.status.phase.is_none() && self.status.observed_generation.is_none() {
            return (
                Phase::Progressing,
                "no status yet: the Argo Rollouts controller has not seen this rollout".into(),
            );
        }
        if !self.generation_observed() {
            return (
                Phase::Progressing,
                "waiting for rollout spec update to be observed".into(),
            );
        }
        if self.unpausing() {
            return (Phase::Progressing, "waiting for rollout to unpause".into());
        }
        let message = self.status.message.clone().unwrap_or_default();
        let phase = match self.status.phase.as_deref() {
            Some("Healthy") => Phase::Healthy,
            Some("Progressing") => Phase::Progressing,
            Some("Paused") => Phase::Paused,
            Some("Degraded") => Phase::Degraded,
            _ => Phase::Unknown,
        };
        (phase, message)
    }

    /// The weight the current step asks for, as `GetCurrentSetWeight` computes it.
    pub fn set_weight(&self) -> u32 {
        if self.status.abort {
            return 0;
        }
        let Some(index) = self.step_index() else {
            return 100;
        };
        let steps = self.steps();
        let Ok(index) = usize::try_from(index) else {
            return 0;
        };
        if index >= steps.len() {
            return 100;
        }
        steps[..=index]
            .iter()
            .rev()
            .find_map(|s| s.get("setWeight").and_then(serde_json::Value::as_u64))
            .map_or(0, |w| u32::try_from(w.min(100)).unwrap_or(100))
    }

    /// The container images the spec asks for.
    pub fn spec_images(&self) -> Vec<String> {
        self.spec
            .template
            .spec
            .containers
            .iter()
            .filter_map(|c| c.image.clone())
            .collect()
    }

    /// The desired replica count (the API default is 1).
    pub fn desired_replicas(&self) -> i64 {
        self.spec.replicas.unwrap_or(1)
    }

    fn invalid_spec(&self) -> Option<&ConditionView> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == "InvalidSpec" && c.status == "True")
    }
}

/// A ReplicaSet of the rollout, reduced to what `status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetView {
    /// The `rollouts-pod-template-hash` label.
    pub hash: String,
    pub images: Vec<String>,
    pub replicas: i64,
    pub available: i64,
}

impl ReplicaSetView {
    /// Reads a ReplicaSet; `None` when it has no pod-template-hash label (not the rollout's).
    pub fn from_replica_set(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> Option<Self> {
        let hash = rs.metadata.labels.as_ref()?.get(POD_TEMPLATE_HASH)?.clone();
        let images = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .map(|p| {
                p.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default();
        let status = rs.status.as_ref();
        Some(ReplicaSetView {
            hash,
            images,
            replicas: status.map_or(0, |s| i64::from(s.replicas)),
            available: status
                .and_then(|s| s.available_replicas)
                .map_or(0, i64::from),
        })
    }
}

/// The rollout phase, as Argo Rollouts reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    Healthy,
    Progressing,
    Paused,
    Degraded,
    /// A phase this version of ephemera does not know.
    Unknown,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Healthy => "Healthy",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Degraded => "Degraded",
            Phase::Unknown => "Unknown",
        })
    }
}

/// Where the canary is in its steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The current step index; equal to `total` once every step has run.
    pub index: u32,
    pub total: u32,
    /// The current step, e.g. `pause (until promoted)`, `setWeight 50`; `None` after the last.
    pub current: Option<String>,
}

/// One ReplicaSet generation of the rollout: the stable one or the canary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The pod-template hash (`rollouts-pod-template-hash`).
    pub hash: String,
    /// The container images; empty when the ReplicaSet could not be read.
    pub images: Vec<String>,
    pub replicas: i64,
    pub available: i64,
}

/// Why a rollout is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseReason {
    /// `CanaryPauseStep`, `BlueGreenPause`, `AnalysisRunInconclusive`, `InconclusiveExperiment`,
    /// or `ManuallyPaused` for `spec.paused`.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Replica counts: desired from the spec, the rest from the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replicas {
    pub desired: i64,
    pub current: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
}

/// What `status` reports about an environment's Rollout. `Display` is the text output;
/// `Serialize` is `--output json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    /// The controller's message (for Paused, the pause reason; for Degraded, what went wrong).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `canary`, `blueGreen`, or `unknown`.
    pub strategy: String,
    /// `None` without canary steps.
    pub step: Option<Step>,
    /// The weight the current step asks for, in percent.
    pub set_weight: u32,
    /// The share of available pods (replica-count canary) or of traffic (traffic router), percent.
    pub actual_weight: u32,
    /// The images the spec asks for.
    pub desired_images: Vec<String>,
    pub stable: Option<Revision>,
    /// Present while a canary runs (or was aborted): the current pod template differs from stable.
    pub canary: Option<Revision>,
    pub paused: bool,
    pub pause_reasons: Vec<PauseReason>,
    pub aborted: bool,
    pub replicas: Replicas,
}

fn describe_step(step: &serde_json::Value) -> String {
    if let Some(w) = step.get("setWeight").and_then(serde_json::Value::as_u64) {
        return format!("setWeight {w}");
    }
    if let Some(pause) = step.get("pause") {
        return match pause.get("duration") {
            Some(serde_json::Value::String(d)) => format!("pause {d}"),
            Some(serde_json::Value::Number(n)) => format!("pause {n}s"),
            _ => "pause (until promoted)".into(),
        };
    }
    step.as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_else(|| "unknown step".into())
}

/// Builds the status summary from a Rollout and the ReplicaSets in its namespace.
pub fn summarize(ro: &RolloutView, replica_sets: &[ReplicaSetView]) -> RolloutStatus {
    let (phase, message) = ro.phase();
    let st = &ro.status;
    let revision = |hash: &Option<String>| {
        let hash = hash.as_ref()?;
        let rs = replica_sets.iter().find(|r| &r.hash == hash);
        Some(Revision {
            hash: hash.clone(),
            images: rs.map(|r| r.images.clone()).unwrap_or_default(),
            replicas: rs.map_or(0, |r| r.replicas),
            available: rs.map_or(0, |r| r.available),
        })
    };
    let stable = revision(&st.stable_rs);
    let canary = if st.current_pod_hash.is_some() && st.current_pod_hash != st.stable_rs {
        revision(&st.current_pod_hash)
    } else {
        None
    };
    let strategy = if ro.spec.strategy.canary.is_some() {
        "canary"
    } else if ro.spec.strategy.blue_green.is_some() {
        "blueGreen"
    } else {
        "unknown"
    };
    let step = ro.step_index().map(|i| Step {
        index: u32::try_from(i).unwrap_or(0),
        total: u32::try_from(ro.steps().len()).unwrap_or(u32::MAX),
        current: ro.current_step().map(describe_step),
    });
    let set_weight = ro.set_weight();
    let actual_weight = actual_weight(ro, canary.as_ref(), set_weight);
    let mut pause_reasons: Vec<PauseReason> = st
        .pause_conditions
        .iter()
        .map(|p| PauseReason {
            reason: p.reason.clone(),
            since: p.start_time.clone(),
        })
        .collect();
    if ro.spec.paused {
        pause_reasons.push(PauseReason {
            reason: "ManuallyPaused".into(),
            since: None,
        });
    }
    RolloutStatus {
        namespace: ro.metadata.namespace.clone(),
        name: ro.metadata.name.clone(),
        phase,
        message,
        strategy: strategy.into(),
        step,
        set_weight,
        actual_weight,
        desired_images: ro.spec_images(),
        stable,
        canary,
        paused: ro.spec.paused || !st.pause_conditions.is_empty(),
        pause_reasons,
        aborted: st.abort,
        replicas: Replicas {
            desired: ro.desired_replicas(),
            current: st.replicas,
            updated: st.updated_replicas,
            ready: st.ready_replicas,
            available: st.available_replicas,
        },
    }
}

/// The plugin's ActualWeight: 100 after the last step; for a replica-count canary the canary's
/// share of available pods; with a traffic router the weight it reports (else the set weight).
fn actual_weight(ro: &RolloutView, canary: Option<&Revision>, set_weight: u32) -> u32 {
    if ro.spec.strategy.canary.is_none() {
        return if ro.fully_promoted() { 100 } else { 0 };
    }
    if ro.current_step().is_none() {
        return 100;
    }
    if ro.status.available_replicas <= 0 {
        return 0;
    }
    let routed = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .is_some_and(|c| c.traffic_routing.is_some());
    if routed {
        return ro
            .status
            .canary
            .weights
            .as_ref()
            .and_then(|w| w.pointer("/canary/weight"))
            .and_then(serde_json::Value::as_u64)
            .map_or(set_weight, |w| u32::try_from(w.min(100)).unwrap_or(100));
    }
    let available = canary.map_or(0, |c| c.available);
    u32::try_from((available * 100 / ro.status.available_replicas).clamp(0, 100)).unwrap_or(0)
}

fn images(rev: &Revision) -> String {
    if rev.images.is_empty() {
        "(ReplicaSet not found)".into()
    } else {
        rev.images.join(", ")
    }
}

impl RolloutStatus {
    /// Where a canary stopped short of 100%, in words (`paused at step 1/5 (pause (until
    /// promoted)) with 20% on the new image`): `None` unless it is paused.
    pub fn paused_canary(&self) -> Option<String> {
        if self.phase != Phase::Paused || !self.paused {
            return None;
        }
        let at = match &self.step {
            Some(Step {
                index,
                total,
                current: Some(cur),
            }) => format!("step {index}/{total} ({cur})"),
            Some(Step { index, total, .. }) => format!("step {index}/{total}"),
            None => "a pause".into(),
        };
        Some(format!(
            "paused at {at} with {}% on the new image",
            self.set_weight
        ))
    }
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rollout   {}/{}", self.namespace, self.name)?;
        if self.message.is_empty() {
            writeln!(f, "phase     {}", self.phase)?;
        } else {
            writeln!(f, "phase     {}: {}", self.phase, self.message)?;
        }
        match &self.step {
            Some(s) => match &s.current {
                Some(cur) => writeln!(f, "step      {}/{}: {cur}", s.index, s.total)?,
                None => writeln!(f, "step      {}/{}: all steps done", s.index, s.total)?,
            },
            None => writeln!(
                f,
                "step      none ({} strategy without steps)",
                self.strategy
            )?,
        }
        writeln!(
            f,
            "weight    {}% set, {}% actual",
            self.set_weight, self.actual_weight
        )?;
        match &self.stable {
            Some(r) => writeln!(
                f,
                "stable    {}  (rs {}, {}/{} available)",
                images(r),
                r.hash,
                r.available,
                r.replicas
            )?,
            None => writeln!(f, "stable    none yet")?,
        }
        match &self.canary {
            Some(r) => writeln!(
                f,
                "canary    {}  (rs {}, {}/{} available)",
                images(r),
                r.hash,
                r.available,
                r.replicas
            )?,
            None => writeln!(f, "canary    none")?,
        }
        if self.paused {
            let why: Vec<String> = self
                .pause_reasons
                .iter()
                .map(|p| match &p.since {
                    Some(t) => format!("{} since {t}", p.reason),
                    None => p.reason.clone(),
                })
                .collect();
            writeln!(f, "paused    yes: {}", why.join(", "))?;
        } else {
            writeln!(f, "paused    no")?;
        }
        writeln!(f, "aborted   {}", if self.aborted { "yes" } else { "no" })?;
        let r = &self.replicas;
        write!(
            f,
            "replicas  {} desired, {} current, {} updated, {} ready, {} available",
            r.desired, r.current, r.updated, r.ready, r.available
        )
    }
}

/// What a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// After an image change: the first pause, or Healthy when the steps have no pause.
    Settled,
    /// Every step done, stable runs the current template.
    Healthy,
    /// Paused at this step index.
    PausedAt(u32),
    /// Aborted, and the stable ReplicaSet carries all desired replicas again.
    Aborted,
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::Settled => f.write_str("reach its first pause or become Healthy"),
            Goal::Healthy => f.write_str("become Healthy"),
            Goal::PausedAt(i) => write!(f, "pause at step {i}"),
            Goal::Aborted => f.write_str("finish aborting (all replicas back on stable)"),
        }
    }
}

/// The outcome of checking a [`Goal`] against one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Reached,
    Waiting,
    /// The goal cannot be reached from here; the text says why.
    Failed(String),
}

/// Checks `goal` against a Rollout. Never `Reached` before the controller observed the spec.
pub fn evaluate(goal: Goal, ro: &RolloutView) -> Verdict {
    if let Some(c) = ro.invalid_spec() {
        return Verdict::Failed(format!("InvalidSpec: {}", c.message));
    }
    let (phase, message) = ro.phase();
    if !ro.generation_observed() || ro.unpausing() || phase == Phase::Unknown {
        return Verdict::Waiting;
    }
    let paused = ro.spec.paused || !ro.status.pause_conditions.is_empty();
    let healthy = phase == Phase::Healthy && ro.fully_promoted();
    match goal {
        Goal::Aborted => {
            if !ro.status.abort {
                return if healthy {
                    Verdict::Failed("it is Healthy and was not aborted".into())
                } else {
                    Verdict::Waiting
                };
            }
            let stable_full = ro.status.updated_replicas == 0
                && ro.status.available_replicas >= ro.desired_replicas();
            if phase == Phase::Degraded && stable_full {
                Verdict::Reached
            } else {
                Verdict::Waiting
            }
        }
        _ if phase == Phase::Degraded => Verdict::Failed(format!("Degraded: {message}")),
        Goal::Settled if phase == Phase::Paused && paused => Verdict::Reached,
        Goal::Settled | Goal::Healthy if healthy => Verdict::Reached,
        Goal::PausedAt(i) if phase == Phase::Paused && paused => {
            if ro.status.current_step_index == Some(i64::from(i)) {
                Verdict::Reached
            } else {
                Verdict::Waiting
            }
        }
        Goal::PausedAt(_) if healthy => {
            Verdict::Failed("it completed every step without pausing there".into())
        }
        _ => Verdict::Waiting,
    }
}

/// One line for progress and timeout messages: phase, message, step and replica counts.
pub fn describe(ro: &RolloutView) -> String {
    let (phase, message) = ro.phase();
    let mut out = phase.to_string();
    if !message.is_empty() {
        out.push_str(&format!(" ({message})"));
    }
    if let Some(i) = ro.step_index() {
        out.push_str(&format!(", step {i}/{}", ro.steps().len()));
    }
    if ro.status.abort {
        out.push_str(", aborted");
    }
    out.push_str(&format!(
        ", {} updated, {}/{} available",
        ro.status.updated_replicas,
        ro.status.available_replicas,
        ro.desired_replicas()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
metadata: {name: web, namespace: pr-7, uid: u1, generation: 3}
spec:
  replicas: 2
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {duration: 30s}
      - setWeight: 100
  template:
    spec:
      containers: [{name: web, image: "example.com/web:v2"}]
"#;

    fn view(status: &str) -> RolloutView {
        serde_saphyr::from_str(&format!("{BASE}status:\n{status}")).expect("fixture parses")
    }

    fn rs(hash: &str, image: &str, replicas: i64, available: i64) -> ReplicaSetView {
        ReplicaSetView {
            hash: hash.into(),
            images: vec![image.into()],
            replicas,
            available,
        }
    }

    const PAUSED_AT_1: &str = r#"
  phase: Paused
  message: CanaryPauseStep
  observedGeneration: "3"
  currentStepIndex: 1
  controllerPause: true
  pauseConditions: [{reason: CanaryPauseStep, startTime: "2026-01-02T03:04:05Z"}]
  stableRS: aaa
  currentPodHash: bbb
  replicas: 3
  updatedReplicas: 1
  readyReplicas: 3
  availableReplicas: 3
"#;

    #[test]
    fn paused_canary_step_is_summarized_like_the_plugin() {
        let ro = view(PAUSED_AT_1);
        let s = summarize(
            &ro,
            &[
                rs("aaa", "example.com/web:v1", 2, 2),
                rs("bbb", "example.com/web:v2", 1, 1),
            ],
        );
        assert_eq!(s.phase, Phase::Paused);
        assert_eq!(
            s.step,
            Some(Step {
                index: 1,
                total: 5,
                current: Some("pause (until promoted)".into())
            })
        );
        assert_eq!((s.set_weight, s.actual_weight), (20, 33));
        assert_eq!(
            s.stable.as_ref().map(|r| r.images.clone()),
            Some(vec!["example.com/web:v1".to_string()])
        );
        assert_eq!(
            s.canary.as_ref().map(|r| r.images.clone()),
            Some(vec!["example.com/web:v2".to_string()])
        );
        assert!(s.paused && !s.aborted);
        assert_eq!(s.pause_reasons[0].reason, "CanaryPauseStep");
        assert_eq!(
            s.paused_canary().as_deref(),
            Some("paused at step 1/5 (pause (until promoted)) with 20% on the new image")
        );
        assert_eq!(evaluate(Goal::Settled, &ro), Verdict::Reached);
        assert_eq!(evaluate(Goal::PausedAt(1), &ro), Verdict::Reached);
        assert_eq!(evaluate(Goal::PausedAt(3), &ro), Verdict::Waiting);
        assert_eq!(evaluate(Goal::Healthy, &ro), Verdict::Waiting);
    }

    #[test]
    fn an_unobserved_spec_is_never_settled() {
        // The old status still says Paused, but generation 3 is not observed yet (a new image).
        let ro =
            view(&PAUSED_AT_1.replace("observedGeneration: \"3\"", "observedGeneration: \"2\""));
        assert_eq!(ro.phase().0, Phase::Progressing);
        assert_eq!(evaluate(Goal::Settled, &ro), Verdict::Waiting);
    }

    #[test]
    fn cleared_pause_conditions_read_as_unpausing() {
        let ro = view(&PAUSED_AT_1.replace(
            "pauseConditions: [{reason: CanaryPauseStep, startTime: \"2026-01-02T03:04:05Z\"}]",
            "pauseConditions: null",
        ));
        assert_eq!(
            ro.phase(),
            (Phase::Progressing, "waiting for rollout to unpause".into())
        );
        assert_eq!(evaluate(Goal::Settled, &ro), Verdict::Waiting);
    }

    #[test]
    fn healthy_after_the_last_step() {
        let ro = view(
            r#"
  phase: Healthy
  observedGeneration: "3"
  currentStepIndex: 5
  stableRS: bbb
  currentPodHash: bbb
  replicas: 2
  updatedReplicas: 2
  readyReplicas: 2
  availableReplicas: 2
"#,
        );
        let s = summarize(&ro, &[rs("bbb", "example.com/web:v2", 2, 2)]);
        assert_eq!((s.set_weight, s.actual_weight), (100, 100));
        assert_eq!(s.step.as_ref().map(|s| s.current.clone()), Some(None));
        assert!(s.canary.is_none() && !s.paused);
        assert_eq!(s.paused_canary(), None, "the new image serves 100%");
        assert_eq!(evaluate(Goal::Healthy, &ro), Verdict::Reached);
        assert_eq!(evaluate(Goal::Settled, &ro), Verdict::Reached);
        assert!(matches!(
            evaluate(Goal::PausedAt(1), &ro),
            Verdict::Failed(_)
        ));
        assert!(matches!(evaluate(Goal::Aborted, &ro), Verdict::Failed(_)));
    }

    #[test]
    fn aborted_means_weight_zero_and_stable_back_to_full() {
        let aborted = r#"
  phase: Degraded
  message: "RolloutAborted: Rollout aborted update to revision 3"
  observedGeneration: "3"
  abort: true
  currentStepIndex: 0
  stableRS: aaa
  currentPodHash: ccc
  replicas: 2
  readyReplicas: 2
  availableReplicas: 2
"#;
        let ro = view(aborted);
        let s = summarize(
            &ro,
            &[
                rs("aaa", "example.com/web:v2", 2, 2),
                rs("ccc", "example.com/web:v3", 0, 0),
            ],
        );
        assert!(s.aborted);
        assert_eq!((s.set_weight, s.actual_weight), (0, 0));
        assert_eq!(s.phase, Phase::Degraded);
        assert_eq!(evaluate(Goal::Aborted, &ro), Verdict::Reached);
        assert_eq!(
            evaluate(Goal::Settled, &ro),
            Verdict::Failed(
                "Degraded: RolloutAborted: Rollout aborted update to revision 3".into()
            )
        );
        // Still scaling the canary down: not finished.
        let ro = view(&aborted.replace("  replicas: 2\n", "  replicas: 3\n  updatedReplicas: 1\n"));
        assert_eq!(evaluate(Goal::Aborted, &ro), Verdict::Waiting);
    }

    #[test]
    fn set_weight_walks_back_to_the_last_set_weight_step() {
        let mut ro = view(PAUSED_AT_1);
        for (index, want) in [(0, 20), (1, 20), (2, 50), (3, 50), (4, 100), (5, 100)] {
            ro.status.current_step_index = Some(index);
            assert_eq!(ro.set_weight(), want, "step {index}");
        }
        ro.status.current_step_index = None;
        assert_eq!(ro.set_weight(), 20, "an unset index is step 0");
    }

    #[test]
    fn no_status_says_the_controller_has_not_seen_it() {
        let ro: RolloutView = serde_saphyr::from_str(BASE).expect("fixture parses");
        let (phase, message) = ro.phase();
        assert_eq!(phase, Phase::Progressing);
        assert!(message.contains("controller"), "{message}");
        assert_eq!(evaluate(Goal::Settled, &ro), Verdict::Waiting);
        assert!(
            describe(&ro).starts_with("Progressing (no status yet"),
            "{}",
            describe(&ro)
        );
    }

    #[test]
    fn invalid_spec_fails_every_goal() {
        let ro = view(
            r#"
  observedGeneration: "3"
  phase: Degraded
  conditions: [{type: InvalidSpec, status: "True", reason: InvalidSpec, message: "The Rollout \"web\" is invalid"}]
"#,
        );
        for goal in [
            Goal::Settled,
            Goal::Healthy,
            Goal::PausedAt(1),
            Goal::Aborted,
        ] {
            assert!(
                matches!(evaluate(goal, &ro), Verdict::Failed(m) if m.starts_with("InvalidSpec")),
                "{goal:?}"
            );
        }
    }

    #[test]
    fn traffic_routed_weight_comes_from_the_router_status() {
        let mut ro = view(PAUSED_AT_1);
        ro.spec
            .strategy
            .canary
            .as_mut()
            .expect("canary")
            .traffic_routing = Some(serde_json::json!({"nginx": {}}));
        assert_eq!(actual_weight(&ro, None, 20), 20);
        ro.status.canary.weights = Some(serde_json::json!({"canary": {"weight": 15}}));
        assert_eq!(actual_weight(&ro, None, 20), 15);
    }

    #[test]
    fn manual_pause_is_a_reason() {
        let mut ro = view(PAUSED_AT_1);
        ro.spec.paused = true;
        let s = summarize(&ro, &[]);
        assert_eq!(
            s.pause_reasons.last().map(|p| p.reason.as_str()),
            Some("ManuallyPaused")
        );
        assert_eq!(s.stable.as_ref().map(|r| r.images.is_empty()), Some(true));
        assert!(
            s.to_string().contains("stable    (ReplicaSet not found)"),
            "{s}"
        );
    }
}
