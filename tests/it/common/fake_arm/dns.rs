//! Azure DNS zones and record sets for the fake ARM, following the `Microsoft.Network/dnsZones`
//! REST contract at api-version [`DNS_API`] (dns.json of azure-rest-api-specs,
//! `stable/2018-05-01`):
//! - `GET .../dnsZones/{zone}`: the zone, 404 when it does not exist;
//! - `GET|PUT|PATCH|DELETE .../dnsZones/{zone}/{recordType}/{relativeRecordSetName}`: PUT answers
//!   201 (created) or 200 (updated), PATCH 200, DELETE 200 (deleted) or 204 (there was none), GET
//!   404 when absent; `If-None-Match: *` and `If-Match: <etag>` are honoured with 412; a CNAME
//!   and another record type cannot share a name (409); bodies are checked against the
//!   RecordSet schema (`properties.TTL`, `metadata`, `ARecords[].ipv4Address`,
//!   `CNAMERecord.cname`, only fields of the record set's own type) with 400 otherwise;
//! - `GET .../dnsZones/{zone}/{recordType}` and `.../recordsets` (or `/all`): lists in pages of
//!   `min($top, Config::page_size)` with `nextLink`.
//!
//! Record sets answer with `etag` in the body (a GUID, as Azure DNS does), `properties.fqdn` with
//! the trailing dot and `provisioningState: Succeeded`. Every ARM rule of the fake (tokens,
//! request ids, injected faults, the call log) applies here too.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{Config, FakeArm, SUBSCRIPTION, State, arm_error, page, precondition_failed, respond};

/// The api-version the DNS endpoints answer.
pub const DNS_API: &str = "2018-05-01";

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT",
];

/// The property holding each record type's records.
fn records_field(kind: &str) -> &'static str {
    match kind {
        "A" => "ARecords",
        "AAAA" => "AAAARecords",
        "CAA" => "caaRecords",
        "CNAME" => "CNAMERecord",
        "MX" => "MXRecords",
        "NS" => "NSRecords",
        "PTR" => "PTRRecords",
        "SOA" => "SOARecord",
        "SRV" => "SRVRecords",
        _ => "TXTRecords",
    }
}

/// Zones and record sets, and the counters tests read.
#[derive(Debug, Default)]
pub struct DnsState {
    zones: BTreeMap<String, Zone>,
    next_etag: u64,
    /// Record sets created, by `TYPE name.zone`.
    pub creates: BTreeMap<String, usize>,
    /// Record sets changed by a PUT or PATCH over an existing one, by `TYPE name.zone`.
    pub updates: BTreeMap<String, usize>,
    /// Record sets deleted (200 answers), by `TYPE name.zone`.
    pub deletes: BTreeMap<String, usize>,
}

#[derive(Clone, Debug)]
struct Zone {
    group: String,
    name: String,
    /// By (TYPE, lower-case relative name).
    records: BTreeMap<(String, String), RecordSet>,
}

#[derive(Clone, Debug)]
struct RecordSet {
    name: String,
    kind: String,
    properties: Value,
    etag: String,
}

fn zone_key(group: &str, zone: &str) -> String {
    format!("{}/{}", group.to_lowercase(), zone.to_lowercase())
}

fn counter_key(kind: &str, name: &str, zone: &str) -> String {
    format!("{kind} {}", fqdn(name, zone).trim_end_matches('.'))
}

fn fqdn(name: &str, zone: &str) -> String {
    if name == "@" {
        format!("{zone}.")
    } else {
        format!("{name}.{zone}.")
    }
}

fn zone_json(z: &Zone) -> Value {
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{}/providers/Microsoft.Network/dnszones/{}", z.group, z.name),
        "name": z.name,
        "type": "Microsoft.Network/dnszones",
        "location": "global",
        "etag": "00000000-0000-0000-0000-000000000000",
        "tags": {},
        "properties": {
            "maxNumberOfRecordSets": 10000,
            "numberOfRecordSets": z.records.len(),
            "nameServers": ["ns1-01.azure-dns.com.", "ns2-01.azure-dns.net."],
            "zoneType": "Public",
        },
    })
}

fn record_json(z: &Zone, r: &RecordSet) -> Value {
    let mut props = r.properties.clone();
    props["fqdn"] = json!(fqdn(&r.name, &z.name));
    props["provisioningState"] = json!("Succeeded");
    json!({
        "id": format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{}/providers/Microsoft.Network/dnszones/{}/{}/{}",
            z.group, z.name, r.kind, r.name
        ),
        "name": r.name,
        "type": format!("Microsoft.Network/dnszones/{}", r.kind),
        "etag": r.etag,
        "properties": props,
    })
}

fn new_etag(st: &mut DnsState) -> String {
    st.next_etag += 1;
    format!("{:08x}-0000-4000-8000-{:012x}", st.next_etag, st.next_etag)
}

fn bad_request(message: &str) -> Response<Body> {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Checks a RecordSet body for record type `kind`, as the service does.
fn validate(kind: &str, body: &Value) -> Result<Value, String> {
    let props = body
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or("The request body has no properties.")?;
    match props.get("TTL") {
        Some(t) if t.as_u64().is_some_and(|t| t <= 2_147_483_647) => {}
        Some(_) => return Err("The TTL must be an integer between 0 and 2147483647.".into()),
        None => return Err("The TTL of the record set must be specified.".into()),
    }
    if let Some(m) = props.get("metadata")
        && !(m
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)))
    {
        return Err("The metadata must map names to string values.".into());
    }
    let own = records_field(kind);
    for t in TYPES {
        let field = records_field(t);
        if field != own && props.get(field).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "The record set of type {kind} cannot hold {field}."
            ));
        }
    }
    match kind {
        "A" => {
            for r in props
                .get("ARecords")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let ok = r
                    .get("ipv4Address")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok());
                if !ok {
                    return Err(format!("The A record {r} has no valid ipv4Address."));
                }
            }
        }
        "CNAME"
            if props
                .pointer("/CNAMERecord/cname")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            return Err("The CNAME record set needs CNAMERecord.cname.".into());
        }
        _ => {}
    }
    let mut stored = props.clone();
    if let Some(o) = stored.as_object_mut() {
        o.remove("fqdn");
        o.remove("provisioningState");
        o.entry("metadata").or_insert(json!({}));
    }
    Ok(stored)
}

/// The precondition headers against the current etag (`None`: no record set).
fn preconditions_hold(headers: &HeaderMap, current: Option<&str>) -> bool {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    if h("if-none-match").as_deref() == Some("*") && current.is_some() {
        return false;
    }
    match (h("if-match"), current) {
        (Some(_), None) => false,
        (Some(m), Some(e)) => m == "*" || m.trim_matches('"') == e,
        (None, _) => true,
    }
}

/// Answers a `.../providers/Microsoft.Network/...` call. `seg` are the path's segments in their
/// original case.
#[allow(clippy::too_many_arguments)]
pub(super) fn route(
    st: &mut State,
    cfg: &Config,
    base: &str,
    method: &Method,
    path: &str,
    seg: &[String],
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Response<Body> {
    let lower: Vec<String> = seg.iter().map(|s| s.to_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let api = q.get("api-version").map(String::as_str).unwrap_or_default();
    if api != DNS_API {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!("The api-version '{api}' is invalid here; use '{DNS_API}'."),
        );
    }
    let dns = &mut st.dns;
    let no_route = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            &format!("No route for {method} {path}"),
        )
    };
    if l.len() < 8 || l[6] != "dnszones" {
        return no_route();
    }
    let key = zone_key(&seg[3], &seg[7]);
    if !dns.zones.contains_key(&key) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            &format!(
                "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                seg[7]
            ),
        );
    }
    let size = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100)
        .min(cfg.page_size.max(1));
    match &l[8..] {
        [] if method == Method::GET => {
            respond(StatusCode::OK, &[], Some(zone_json(&dns.zones[&key])))
        }
        ["recordsets" | "all"] if method == Method::GET => {
            let z = &dns.zones[&key];
            let items = z.records.values().map(|r| record_json(z, r)).collect();
            page(base, path, q, items, size)
        }
        [kind] if method == Method::GET => {
            let kind = kind.to_uppercase();
            if !TYPES.contains(&kind.as_str()) {
                return bad_request(&format!("The record type {kind} is not supported."));
            }
            let z = &dns.zones[&key];
            let items = z
                .records
                .values()
                .filter(|r| r.kind == kind)
                .map(|r| record_json(z, r))
                .collect();
            page(base, path, q, items, size)
        }
        [kind, _] => {
            let kind = kind.to_uppercase();
            if !TYPES.contains(&kind.as_str()) {
                return bad_request(&format!("The record type {kind} is not supported."));
            }
            record(dns, &key, method, &kind, &seg[9], headers, body)
        }
        _ => no_route(),
    }
}

fn record(
    dns: &mut DnsState,
    key: &str,
    method: &Method,
    kind: &str,
    name: &str,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Response<Body> {
    let rkey = (kind.to_string(), name.to_lowercase());
    let zone_name = dns.zones[key].name.clone();
    let group = dns.zones[key].group.clone();
    let current = dns.zones[key].records.get(&rkey).cloned();
    let not_found = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "The resource record '{name}' does not exist in resource group '{group}' of subscription '{SUBSCRIPTION}'."
            ),
        )
    };
    match *method {
        Method::GET => match &current {
            Some(r) => respond(StatusCode::OK, &[], Some(record_json(&dns.zones[key], r))),
            None => not_found(),
        },
        Method::PUT | Method::PATCH => {
            let Some(body) = body else {
                return bad_request("The request body is not JSON.");
            };
            if *method == Method::PATCH && current.is_none() {
                return not_found();
            }
            // PATCH merges into what is there; PUT replaces it.
            let merged = match (&current, *method == Method::PATCH) {
                (Some(r), true) => {
                    let mut props = r.properties.clone();
                    if let (Some(p), Some(o)) = (
                        props.as_object_mut(),
                        body.get("properties").and_then(Value::as_object),
                    ) {
                        for (k, v) in o {
                            p.insert(k.clone(), v.clone());
                        }
                    }
                    json!({ "properties": props })
                }
                _ => body,
            };
            let properties = match validate(kind, &merged) {
                Ok(p) => p,
                Err(m) => return bad_request(&m),
            };
            if !preconditions_hold(headers, current.as_ref().map(|r| r.etag.as_str())) {
                return precondition_failed();
            }
            if *method == Method::PUT && current.is_none() {
                let clash = dns.zones[key].records.values().any(|r| {
                    r.name.eq_ignore_ascii_case(name) && (kind == "CNAME") != (r.kind == "CNAME")
                });
                if clash {
                    return arm_error(
                        StatusCode::CONFLICT,
                        "Conflict",
                        &format!(
                            "The record set {name} of type {kind} conflicts with a record set of another type: a CNAME \
                             record set cannot share its name."
                        ),
                    );
                }
            }
            let etag = new_etag(dns);
            let set = RecordSet {
                name: current
                    .as_ref()
                    .map_or_else(|| name.to_string(), |r| r.name.clone()),
                kind: kind.to_string(),
                properties,
                etag,
            };
            let counter = counter_key(kind, &set.name, &zone_name);
            let created = current.is_none();
            if created {
                *dns.creates.entry(counter).or_default() += 1;
            } else {
                *dns.updates.entry(counter).or_default() += 1;
            }
            let zone = dns.zones.get_mut(key).expect("zone exists");
            zone.records.insert(rkey, set.clone());
            let zone = zone.clone();
            respond(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &[],
                Some(record_json(&zone, &set)),
            )
        }
        Method::DELETE => {
            if kind == "SOA" {
                return bad_request("Record sets of type SOA cannot be deleted.");
            }
            if !preconditions_hold(headers, current.as_ref().map(|r| r.etag.as_str())) {
                // Deleting a record set that is not there with If-Match fails the precondition.
                return precondition_failed();
            }
            match current {
                Some(r) => {
                    *dns.deletes
                        .entry(counter_key(kind, &r.name, &zone_name))
                        .or_default() += 1;
                    dns.zones
                        .get_mut(key)
                        .expect("zone exists")
                        .records
                        .remove(&rkey);
                    respond(StatusCode::OK, &[], None)
                }
                None => respond(StatusCode::NO_CONTENT, &[], None),
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method not allowed.",
        ),
    }
}

impl FakeArm {
    /// Adds an empty DNS zone `zone` in resource group `group`.
    pub fn seed_zone(&self, group: &str, zone: &str) {
        self.with_state_mut(|s| {
            s.dns.zones.insert(
                zone_key(group, zone),
                Zone {
                    group: group.into(),
                    name: zone.to_lowercase(),
                    records: BTreeMap::new(),
                },
            );
        });
    }

    /// Adds a record set directly (no counters): `kind` such as `A`, `properties` as a PUT body's.
    pub fn seed_record(&self, group: &str, zone: &str, kind: &str, name: &str, properties: Value) {
        self.with_state_mut(|s| {
            let etag = new_etag(&mut s.dns);
            if let Some(z) = s.dns.zones.get_mut(&zone_key(group, zone)) {
                z.records.insert(
                    (kind.to_uppercase(), name.to_lowercase()),
                    RecordSet {
                        name: name.into(),
                        kind: kind.to_uppercase(),
                        properties,
                        etag,
                    },
                );
            }
        });
    }

    /// A record set as GET would answer it, `None` when absent.
    pub fn dns_record(&self, group: &str, zone: &str, kind: &str, name: &str) -> Option<Value> {
        self.with_state(|s| {
            let z = s.dns.zones.get(&zone_key(group, zone))?;
            z.records
                .get(&(kind.to_uppercase(), name.to_lowercase()))
                .map(|r| record_json(z, r))
        })
    }

    /// Every record set of a zone as `(TYPE, name)`, sorted.
    pub fn dns_records(&self, group: &str, zone: &str) -> Vec<(String, String)> {
        self.with_state(|s| {
            s.dns
                .zones
                .get(&zone_key(group, zone))
                .map(|z| {
                    z.records
                        .values()
                        .map(|r| (r.kind.clone(), r.name.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Reads the DNS counters.
    pub fn with_dns<T>(&self, f: impl FnOnce(&DnsState) -> T) -> T {
        self.with_state(|s| f(&s.dns))
    }
}
