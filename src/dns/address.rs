//! The ingress load balancer's address: `status.loadBalancer.ingress[]` of the ingress-nginx
//! controller Service, or `status.addresses[]` of the shared Gateway (Gateway API), watched until
//! it appears, with a deadline whose error names the object and what it last showed.
//!
//! An IPv4 address is preferred (an A record, or the wildcard-DNS host), then a hostname (a
//! CNAME record), then an IPv6 address.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use ::kube::api::ApiResource;
use serde_json::Value;

use super::DnsError;
use crate::addons::{ResolvedAddon, ingress_exports};
use crate::kube::KubeError;
use crate::kube::manifest::{conditions, to_value};
use crate::kube::wait::{Condition, wait_object};

/// The ingress-nginx controller Service of the upstream `cloud` manifest, used unless the add-on
/// exports `serviceName`.
pub const INGRESS_NGINX_SERVICE: &str = "ingress-nginx-controller";

/// Where the preview's load-balancer address is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSource {
    /// A Service of type LoadBalancer: `status.loadBalancer.ingress[]`.
    Service { namespace: String, name: String },
    /// A Gateway API Gateway: `status.addresses[]`.
    Gateway { namespace: String, name: String },
}

impl std::fmt::Display for AddressSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressSource::Service { namespace, name } => write!(f, "Service {namespace}/{name}"),
            AddressSource::Gateway { namespace, name } => write!(f, "Gateway {namespace}/{name}"),
        }
    }
}

impl AddressSource {
    /// The object of the resolved ingress add-on that carries the address: the Gateway named by
    /// the gateway-api exports (`gatewayNamespace`, `gatewayName`), or the ingress-nginx
    /// controller Service (exports `serviceNamespace`/`serviceName`, else the add-on's namespace
    /// and [`INGRESS_NGINX_SERVICE`]). `None` without an ingress add-on.
    pub fn from_addons(addons: &[ResolvedAddon]) -> Option<Self> {
        let exports = ingress_exports(addons)?;
        let get = |k: &str| exports.get(k).and_then(Value::as_str).map(str::to_string);
        match get("implementation")?.as_str() {
            "gateway-api" => Some(AddressSource::Gateway {
                namespace: get("gatewayNamespace")?,
                name: get("gatewayName")?,
            }),
            "ingress-nginx" => {
                let addon = addons.iter().find(|a| {
                    a.exports.get("implementation").and_then(Value::as_str) == Some("ingress-nginx")
                })?;
                Some(AddressSource::Service {
                    namespace: get("serviceNamespace").unwrap_or_else(|| addon.namespace.clone()),
                    name: get("serviceName").unwrap_or_else(|| INGRESS_NGINX_SERVICE.to_string()),
                })
            }
            _ => None,
        }
    }

    fn api_resource(&self) -> ApiResource {
        match self {
            AddressSource::Service { .. } => ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Service".into(),
                plural: "services".into(),
            },
            AddressSource::Gateway { .. } => ApiResource {
                group: "gateway.networking.k8s.io".into(),
                version: "v1".into(),
                api_version: "gateway.networking.k8s.io/v1".into(),
                kind: "Gateway".into(),
                plural: "gateways".into(),
            },
        }
    }

    fn namespace_and_name(&self) -> (&str, &str) {
        match self {
            AddressSource::Service { namespace, name }
            | AddressSource::Gateway { namespace, name } => (namespace, name),
        }
    }
}

/// A load-balancer address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbAddress {
    Ip(IpAddr),
    Hostname(String),
}

impl std::fmt::Display for LbAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LbAddress::Ip(ip) => write!(f, "{ip}"),
            LbAddress::Hostname(h) => f.write_str(h),
        }
    }
}

impl LbAddress {
    /// The IPv4 address, if this is one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self {
            LbAddress::Ip(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        }
    }
}

/// What one observation of the object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The address to use.
    Ready(LbAddress),
    /// None yet; what the object shows.
    Waiting(String),
    /// There will never be one (a Service that is not of type LoadBalancer).
    Never(String),
}

/// Reads the address from the object as it is now (`None` when it does not exist).
pub fn observe(source: &AddressSource, obj: Option<&Value>) -> Observed {
    let Some(o) = obj else {
        return Observed::Waiting("absent".into());
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut hostnames: Vec<String> = Vec::new();
    match source {
        AddressSource::Service { .. } => {
            let kind = o
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if kind != "LoadBalancer" {
                return Observed::Never(format!(
                    "spec.type is {kind}; only a Service of type LoadBalancer gets an external address"
                ));
            }
            for entry in array(o, "/status/loadBalancer/ingress") {
                if let Some(ip) = entry
                    .get("ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                {
                    ips.push(ip);
                }
                if let Some(h) = entry.get("hostname").and_then(Value::as_str) {
                    hostnames.push(h.to_string());
                }
            }
        }
        AddressSource::Gateway { .. } => {
            for entry in array(o, "/status/addresses") {
                let Some(value) = entry.get("value").and_then(Value::as_str) else {
                    continue;
                };
                match entry
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("IPAddress")
                {
                    "IPAddress" => ips.extend(value.parse::<IpAddr>().ok()),
                    "Hostname" => hostnames.push(value.to_string()),
                    _ => {}
                }
            }
        }
    }
    if let Some(v4) = ips.iter().find(|ip| ip.is_ipv4()) {
        return Observed::Ready(LbAddress::Ip(*v4));
    }
    if let Some(h) = hostnames.into_iter().find(|h| !h.is_empty()) {
        return Observed::Ready(LbAddress::Hostname(h.trim_end_matches('.').to_string()));
    }
    if let Some(v6) = ips.first() {
        return Observed::Ready(LbAddress::Ip(*v6));
    }
    Observed::Waiting(waiting_state(source, o))
}

fn array<'a>(o: &'a Value, pointer: &str) -> &'a [Value] {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn waiting_state(source: &AddressSource, o: &Value) -> String {
    let mut s = match source {
        AddressSource::Service { .. } => {
            "type LoadBalancer, status.loadBalancer.ingress is empty (no address assigned yet)"
                .to_string()
        }
        AddressSource::Gateway { .. } => "status.addresses is empty".to_string(),
    };
    for (kind, (status, reason, message)) in conditions(o) {
        s.push_str(&format!("; {kind}={status}"));
        if !reason.is_empty() {
            s.push_str(&format!(" ({reason}"));
            if !message.is_empty() {
                s.push_str(&format!(
                    ": {}",
                    message.chars().take(200).collect::<String>()
                ));
            }
            s.push(')');
        }
    }
    s
}

const NEVER_LISTED: &str = "never listed";

/// The address condition, remembering what it last saw for the timeout message.
struct HasAddress<'a> {
    source: &'a AddressSource,
    last: Mutex<String>,
}

impl HasAddress<'_> {
    fn see(&self, obj: Option<&Value>) -> Observed {
        let seen = observe(self.source, obj);
        if let (Observed::Waiting(state), Ok(mut last)) = (&seen, self.last.lock()) {
            last.clone_from(state);
        }
        seen
    }
}

impl Condition for HasAddress<'_> {
    fn matches(&self, obj: Option<&Value>) -> bool {
        matches!(self.see(obj), Observed::Ready(_))
    }

    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        match self.see(obj) {
            Observed::Never(why) => Some(why),
            _ => None,
        }
    }
}

/// Watches `source` until it has an address, for at most `timeout`.
///
/// # Errors
/// - [`KubeError::Timeout`] (exit 3) naming the object and what it last showed, e.g. "type
///   LoadBalancer, status.loadBalancer.ingress is empty";
/// - [`DnsError::Address`] when there will never be one (a Service not of type LoadBalancer).
pub async fn wait_for_address(
    client: &::kube::Client,
    source: &AddressSource,
    timeout: Duration,
) -> Result<LbAddress, DnsError> {
    let condition = HasAddress {
        source,
        last: Mutex::new(NEVER_LISTED.into()),
    };
    let (namespace, name) = source.namespace_and_name();
    let found = wait_object(
        client,
        &source.api_resource(),
        Some(namespace),
        name,
        &condition,
        timeout,
    )
    .await;
    // Until the first list the watch's own account (with its last error) says more.
    let last = |theirs: String| match condition.last.lock() {
        Ok(l) if *l != NEVER_LISTED => l.clone(),
        _ => theirs,
    };
    match found {
        Ok(obj) => match observe(source, obj.as_ref().map(to_value).as_ref()) {
            Observed::Ready(address) => Ok(address),
            Observed::Waiting(state) | Observed::Never(state) => Err(DnsError::Address {
                object: source.to_string(),
                message: format!("the watch ended without an address: {state}"),
            }),
        },
        Err(KubeError::Timeout {
            object,
            seconds,
            last_state,
        }) => Err(DnsError::Kube(KubeError::Timeout {
            object: format!("the load-balancer address of {object}"),
            seconds,
            last_state: last(last_state),
        })),
        Err(KubeError::Failed { reason, .. }) => Err(DnsError::Address {
            object: source.to_string(),
            message: reason,
        }),
        Err(e) => Err(e.into()),
    }
}
