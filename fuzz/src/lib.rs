//! Fuzz harnesses, kept in a library so that `tests/regressions.rs` can
//! replay saved inputs on the stable toolchain without libFuzzer.
//!
//! The harnesses panic on a broken invariant: libFuzzer records a panic
//! as a crash, the same as a panic inside the code under test.

pub mod simulator;

use arbitrary::{Result, Unstructured};
use pod_deletion_cost_policy::evaluate::{self, Response};
use pod_deletion_cost_policy::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::scan;
use pod_deletion_cost_policy::selector::{
    Operator, validate_dns_subdomain, validate_label_key, validate_label_value,
};
use pod_deletion_cost_policy::settings::{self, OnLookupError, Settings};

use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, VecDeque};

/// `settings` target: any bytes as the settings document.
pub fn settings(data: &[u8]) {
    let parsed = settings::parse(data);
    let answer = pod_deletion_cost_policy::validate_settings(data);
    assert_eq!(
        parsed.is_ok(),
        answer.valid,
        "parse and validate_settings disagree"
    );
    match parsed {
        Err(e) => {
            assert!(!e.is_empty(), "an empty settings error");
            assert_eq!(answer.message.as_deref(), Some(e.as_str()));
        }
        Ok(s) => {
            assert_eq!(answer.message, None);
            let doc: Value =
                serde_json::from_slice(data).expect("settings accepted that are not JSON");
            assert!(
                doc.is_null() || doc.is_object(),
                "settings accepted that are not a map: {doc}"
            );
            check_settings(&s, &doc);
        }
    }
    serde_json::to_vec(&answer).expect("the validate_settings answer must serialise");
}

/// What `validate_settings` promises of settings it accepts, re-checked
/// against the document they came from.
fn check_settings(s: &Settings, doc: &Value) {
    only_lists_are_arrays(doc, "settings");
    let mut names = BTreeSet::new();
    for rule in &s.rules {
        if let Some(name) = &rule.name {
            assert!(!name.is_empty(), "an empty rule name was accepted");
            assert!(names.insert(name), "duplicate rule name {name:?} accepted");
        }
        check_selector(&rule.node_selector);
    }
    match doc.get("rules") {
        None | Some(Value::Null) => assert_eq!(s.rules, Settings::default().rules),
        Some(Value::Array(rules)) => {
            assert_eq!(rules.len(), s.rules.len());
            for (rule, raw) in s.rules.iter().zip(rules) {
                same_int(rule.deletion_cost, &raw["deletionCost"]);
            }
        }
        Some(other) => panic!("rules accepted as {other}"),
    }
    match doc.get("defaultDeletionCost") {
        None | Some(Value::Null) => assert_eq!(s.default_deletion_cost, None),
        Some(n) => same_int(
            s.default_deletion_cost
                .expect("defaultDeletionCost was dropped"),
            n,
        ),
    }
    if let Some(z) = &s.zones {
        validate_label_key(&z.topology_key).expect("an invalid topologyKey was accepted");
        for (zone, cost) in &z.deletion_costs {
            assert!(!zone.is_empty(), "an empty zone name was accepted");
            validate_label_value(zone).expect("an invalid zone name was accepted");
            same_int(*cost, &doc["zones"]["deletionCosts"][zone]);
        }
        if let Some(keys) = &z.sibling_labels {
            assert!(!keys.is_empty(), "an empty siblingLabels was accepted");
            for (i, key) in keys.iter().enumerate() {
                validate_label_key(key).expect("an invalid siblingLabels key was accepted");
                assert!(
                    !keys[..i].contains(key),
                    "a repeated siblingLabels key was accepted"
                );
            }
        }
    }
    if let Some(p) = &s.placeholders {
        assert!(
            !p.priority_class_names.is_empty()
                || p.pod_selector.is_some()
                || p.max_priority.is_some(),
            "empty placeholders accepted"
        );
        match (p.max_priority, &doc["placeholders"]["maxPriority"]) {
            (None, raw) => assert!(raw.is_null(), "maxPriority {raw} was dropped"),
            (Some(max), raw) => same_int(max, raw),
        }
        for name in &p.priority_class_names {
            validate_dns_subdomain(name).expect("an invalid priority class name was accepted");
        }
        if let Some(sel) = &p.pod_selector {
            assert!(
                !sel.match_labels.is_empty() || !sel.match_expressions.is_empty(),
                "an empty podSelector would make every pod a placeholder"
            );
            check_selector(sel);
        }
    }
    let reject = doc.get("onLookupError") == Some(&json!("reject"));
    assert_eq!(s.on_lookup_error == OnLookupError::Reject, reject);
}

/// In accepted settings an array appears only where the settings have a
/// list; anywhere else it would be a struct written as its field values.
fn only_lists_are_arrays(v: &Value, path: &str) {
    const LISTS: [&str; 4] = ["rules", "matchExpressions", "values", "priorityClassNames"];
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if LISTS.contains(&k.as_str()) && v.is_array() {
                    for (i, e) in v.as_array().into_iter().flatten().enumerate() {
                        only_lists_are_arrays(e, &format!("{path}.{k}[{i}]"));
                    }
                } else {
                    only_lists_are_arrays(v, &format!("{path}.{k}"));
                }
            }
        }
        Value::Array(_) => panic!("settings accepted with an array at {path}"),
        _ => {}
    }
}

fn check_selector(sel: &pod_deletion_cost_policy::selector::LabelSelector) {
    sel.validate("x").expect("an invalid selector was accepted");
    for req in &sel.match_expressions {
        match req.operator {
            Operator::In | Operator::NotIn => assert!(!req.values.is_empty()),
            Operator::Exists | Operator::DoesNotExist => assert!(req.values.is_empty()),
        }
    }
}

/// An accepted cost is exactly the integer written, never a wrapped or
/// rounded one.
fn same_int(cost: i32, written: &Value) {
    assert_eq!(
        written.as_i64(),
        Some(i64::from(cost)),
        "cost {cost} accepted from {written}"
    );
}

/// A host that answers from a queue, whatever is asked, and times out
/// once the queue is empty.
pub struct QueueHost {
    pub answers: VecDeque<std::result::Result<Vec<u8>, String>>,
    pub calls: usize,
}

impl pod_deletion_cost_policy::cluster::Host for QueueHost {
    fn kubernetes(
        &mut self,
        operation: &str,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, String> {
        self.calls += 1;
        assert!(
            matches!(operation, "get_resource" | "list_resources_by_namespace"),
            "unexpected host operation {operation}"
        );
        let request: Value =
            serde_json::from_slice(payload).expect("a host call payload that is not JSON");
        assert_eq!(request["api_version"], "v1");
        self.answers
            .pop_front()
            .unwrap_or_else(|| Err("context deadline exceeded".into()))
    }
}

/// `evaluate` target. Input starting with `{` is raw: the waPC payload,
/// then host answers, separated by 0xFF bytes (never valid in JSON text),
/// an answer starting with `!` being a host error. This is how the
/// fixtures seed the corpus. Anything else is decoded with `arbitrary`
/// into a structured scenario, which reaches matching and ranking far more
/// often than mutated JSON text does.
pub fn evaluate(data: &[u8]) {
    if let Some((payload, answers)) = decode(data) {
        run(&payload, answers);
    }
}

/// The payload and host answers an `evaluate` input stands for.
pub fn decode(data: &[u8]) -> Option<Scenario> {
    if data.first() == Some(&b'{') {
        let mut parts = data.split(|b| *b == 0xFF);
        let payload = parts.next().unwrap_or_default().to_vec();
        let answers = parts
            .map(|a| match a.strip_prefix(b"!") {
                Some(err) => Err(String::from_utf8_lossy(err).into_owned()),
                None => Ok(a.to_vec()),
            })
            .collect();
        Some((payload, answers))
    } else {
        scenario(&mut Unstructured::new(data)).ok()
    }
}

/// Evaluates one payload against the given host answers and checks every
/// promise the policy makes about its response.
pub fn run(payload: &[u8], answers: VecDeque<std::result::Result<Vec<u8>, String>>) -> Response {
    let mut host = QueueHost { answers, calls: 0 };
    let resp = evaluate::evaluate(payload, &mut host);
    check_response(payload, &resp);
    resp
}

/// The request as the policy reads it (its own envelope reader), so the
/// checks below judge the response against what the policy could see.
fn envelope<'a>(payload: &'a [u8], what: &str) -> scan::Envelope<'a> {
    let text = std::str::from_utf8(payload).unwrap_or_else(|e| panic!("{what}: {e}"));
    scan::envelope(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub fn check_response(payload: &[u8], resp: &Response) {
    serde_json::from_slice::<Value>(&resp.to_json()).expect("the response must be JSON");
    if !resp.accepted {
        let env = envelope(payload, "rejected a payload the policy cannot read");
        let raw = env.settings.unwrap_or("null");
        let s = settings::parse(raw.as_bytes()).expect("rejected with invalid settings");
        assert_eq!(
            s.on_lookup_error,
            OnLookupError::Reject,
            "rejected without onLookupError: reject: {resp:?}"
        );
        let message = resp.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("pod-deletion-cost: ")
                && message.ends_with("; the binding is rejected (onLookupError: reject)"),
            "rejection message: {message:?}"
        );
        assert!(resp.mutated_object.is_none());
    }
    let Some(raw) = &resp.mutated_object else {
        return;
    };
    // policy-server reads the object back as a Value: it must parse so.
    let mutated: &Value = &serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("mutated object policy-server cannot read: {e}: {raw}"));
    assert!(resp.accepted);
    let env = envelope(payload, "mutated a payload the policy cannot read");
    let original: Value =
        serde_json::from_str(env.object.expect("mutated a request without an object"))
            .expect("mutated an object that is not JSON");
    let audit = resp.audit_annotations.clone().unwrap_or_default();
    let written = check_only_annotations_added(&original, mutated);
    assert_eq!(
        audit.get("deletion-cost"),
        Some(&written.cost),
        "the audit annotation disagrees with the cost written"
    );
    // Zone and rank are written together, exactly when a rank was given.
    match audit.get("rank") {
        Some(rank) => {
            assert!(
                is_canonical_int32(rank) && !rank.starts_with('-'),
                "rank {rank:?} is not a canonical non-negative integer"
            );
            assert!(
                audit.get("zone").is_some_and(|z| !z.is_empty()),
                "a rank without a zone"
            );
            assert_eq!(written.rank, Some(json!(rank)));
            assert_eq!(written.zone, audit.get("zone").map(|z| json!(z)));
        }
        None => {
            let had = |key: &str| {
                original
                    .get("metadata")
                    .and_then(|m| m.get("annotations"))
                    .and_then(|a| a.get(key))
                    .cloned()
            };
            assert_eq!(
                written.zone,
                had(ZONE_ANNOTATION),
                "zone written without a rank"
            );
            assert_eq!(
                written.rank,
                had(RANK_ANNOTATION),
                "rank written without a zone"
            );
        }
    }
}

/// The policy's annotations as found on a mutated Binding. Zone and rank
/// stay JSON values: when the policy did not write them they are whatever
/// the Binding carried, strings or not.
pub struct Written {
    pub cost: String,
    pub zone: Option<Value>,
    pub rank: Option<Value>,
}

/// The mutated Binding equals the original except for the policy's own
/// keys under `metadata.annotations` (and that map, when it was missing or
/// null). Returns the policy's annotations as found.
pub fn check_only_annotations_added(original: &Value, mutated: &Value) -> Written {
    let mut rest = mutated.clone();
    let annotations = rest
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
        .expect("a mutated Binding without metadata.annotations");
    let cost = match annotations.remove(COST_ANNOTATION) {
        Some(Value::String(cost)) => cost,
        other => panic!("cost written as {other:?}"),
    };
    assert!(
        is_canonical_int32(&cost),
        "cost {cost:?} is not a canonical int32"
    );
    let zone = annotations.remove(ZONE_ANNOTATION);
    let rank = annotations.remove(RANK_ANNOTATION);
    // The policy's keys are set, whatever the Binding carried; put back
    // what it carried, and the containers it lacked, to compare the rest.
    let before = original.get("metadata").and_then(|m| m.get("annotations"));
    match before {
        None => {
            assert!(annotations.is_empty());
            if let Some(m) = rest.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("annotations");
            }
        }
        Some(Value::Null) => {
            assert!(annotations.is_empty());
            rest["metadata"]["annotations"] = Value::Null;
        }
        Some(Value::Object(had)) => {
            for key in [COST_ANNOTATION, ZONE_ANNOTATION, RANK_ANNOTATION] {
                if let Some(v) = had.get(key) {
                    annotations.insert(key.to_string(), v.clone());
                }
            }
        }
        Some(other) => panic!("annotated a Binding whose annotations were {other}"),
    }
    assert_eq!(
        &rest, original,
        "the mutation changed more than annotations"
    );
    Written { cost, zone, rank }
}

/// `^-?(0|[1-9][0-9]*)$` within int32: what the ReplicaSet controller
/// parses (anything else reads as 0). Told by a round trip through i32,
/// not by the policy's own way of writing it.
pub fn is_canonical_int32(s: &str) -> bool {
    s.parse::<i32>().is_ok_and(|n| n.to_string() == s)
}

// ---- structured scenarios ----

/// Up to `max` pool words, as a JSON list.
fn words(u: &mut Unstructured, max: u8) -> Result<Value> {
    let n = u.int_in_range(0..=max)?;
    Ok(Value::Array(
        (0..n)
            .map(|_| word(u).map(Value::String))
            .collect::<Result<_>>()?,
    ))
}

/// Mostly words from a small pool, so that names, label keys, zones and
/// owner UIDs coincide often enough to reach selector matches and ranking.
fn word(u: &mut Unstructured) -> Result<String> {
    const POOL: &[&str] = &[
        "",
        "a",
        "i",
        "k",
        "h",
        "web",
        "n1",
        "n2",
        "shop",
        "rs-1",
        "rs-2",
        "uid-1",
        "uid-2",
        "hybrid",
        "Node",
        "ReplicaSet",
        "0",
        "1",
        "2",
        "01",
        "-1",
        "+1",
        "2147483647",
        "-2147483648",
        "99999999999",
        "a b",
        "available_zone",
        "topology.kubernetes.io/zone",
        "eks.amazonaws.com/compute-type",
        "default-priority-class",
        "app",
        "ack-place-holder",
        COST_ANNOTATION,
        ZONE_ANNOTATION,
        RANK_ANNOTATION,
    ];
    if u.ratio(7u8, 8u8)? {
        Ok((*u.choose(POOL)?).to_string())
    } else {
        u.arbitrary()
    }
}

fn any_json(u: &mut Unstructured, depth: u8) -> Result<Value> {
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(word(u)?),
        5 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array(
                (0..n)
                    .map(|_| any_json(u, depth - 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                m.insert(word(u)?, any_json(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// Usually what `f` builds, sometimes any JSON value in its place.
fn or_junk(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<Value>,
) -> Result<Value> {
    if u.ratio(1u8, 16u8)? {
        any_json(u, 2)
    } else {
        f(u)
    }
}

fn labels(u: &mut Unstructured) -> Result<Value> {
    or_junk(u, |u| {
        let mut m = Map::new();
        for _ in 0..u.int_in_range(0..=4)? {
            m.insert(word(u)?, Value::String(word(u)?));
        }
        Ok(Value::Object(m))
    })
}

fn maybe(
    u: &mut Unstructured,
    m: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Unstructured) -> Result<Value>,
) -> Result<()> {
    if u.arbitrary()? {
        let v = or_junk(u, f)?;
        m.insert(key.to_string(), v);
    }
    Ok(())
}

fn selector(u: &mut Unstructured) -> Result<Value> {
    let mut m = Map::new();
    maybe(u, &mut m, "matchLabels", labels)?;
    maybe(u, &mut m, "matchExpressions", |u| {
        let mut exprs = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let mut e = Map::new();
            e.insert("key".into(), Value::String(word(u)?));
            let op = *u.choose(&["In", "NotIn", "Exists", "DoesNotExist", "Equals", ""])?;
            e.insert("operator".into(), json!(op));
            maybe(u, &mut e, "values", |u| words(u, 3))?;
            exprs.push(Value::Object(e));
        }
        Ok(Value::Array(exprs))
    })?;
    Ok(Value::Object(m))
}

fn cost(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=7)? {
        0 => json!(i32::MIN),
        1 => json!(i32::MAX),
        2 => json!(i64::from(i32::MAX) + 1),
        3 => json!(i64::from(i32::MIN) - 1),
        4 => json!(u.arbitrary::<i64>()?),
        5 => json!(1.5),
        _ => json!(u.int_in_range(-3..=12)?),
    })
}

fn settings_doc(u: &mut Unstructured) -> Result<Value> {
    let mut s = Map::new();
    maybe(u, &mut s, "rules", |u| {
        let mut rules = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let mut r = Map::new();
            maybe(u, &mut r, "name", |u| word(u).map(Value::String))?;
            if u.ratio(15u8, 16u8)? {
                r.insert("nodeSelector".into(), selector(u)?);
            }
            if u.ratio(15u8, 16u8)? {
                r.insert("deletionCost".into(), cost(u)?);
            }
            rules.push(Value::Object(r));
        }
        Ok(Value::Array(rules))
    })?;
    maybe(u, &mut s, "defaultDeletionCost", cost)?;
    maybe(u, &mut s, "zones", |u| {
        let mut z = Map::new();
        maybe(u, &mut z, "topologyKey", |u| word(u).map(Value::String))?;
        maybe(u, &mut z, "deletionCosts", |u| {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                m.insert(word(u)?, cost(u)?);
            }
            Ok(Value::Object(m))
        })?;
        maybe(u, &mut z, "balance", |u| {
            Ok(Value::Bool(u.ratio(3u8, 4u8)?))
        })?;
        maybe(u, &mut z, "siblingLabels", |u| words(u, 3))?;
        Ok(Value::Object(z))
    })?;
    maybe(u, &mut s, "placeholders", |u| {
        let mut p = Map::new();
        maybe(u, &mut p, "priorityClassNames", |u| words(u, 2))?;
        maybe(u, &mut p, "podSelector", selector)?;
        maybe(u, &mut p, "maxPriority", cost)?;
        Ok(Value::Object(p))
    })?;
    maybe(u, &mut s, "keepExistingCost", |u| {
        Ok(Value::Bool(u.arbitrary()?))
    })?;
    maybe(u, &mut s, "onLookupError", |u| {
        Ok(json!(*u.choose(&["allow", "reject", "reject", "deny"])?))
    })?;
    if u.ratio(1u8, 32u8)? {
        s.insert(word(u)?, any_json(u, 1)?);
    }
    Ok(Value::Object(s))
}

fn annotations(u: &mut Unstructured) -> Result<Value> {
    or_junk(u, |u| {
        let mut m = Map::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let key = *u.choose(&[COST_ANNOTATION, ZONE_ANNOTATION, RANK_ANNOTATION, "other"])?;
            m.insert(key.into(), Value::String(word(u)?));
        }
        Ok(Value::Object(m))
    })
}

fn pod(u: &mut Unstructured) -> Result<Value> {
    let mut meta = Map::new();
    maybe(u, &mut meta, "name", |u| word(u).map(Value::String))?;
    maybe(u, &mut meta, "uid", |u| word(u).map(Value::String))?;
    maybe(u, &mut meta, "labels", labels)?;
    maybe(u, &mut meta, "annotations", annotations)?;
    maybe(u, &mut meta, "ownerReferences", |u| {
        let mut owners = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            let mut o = Map::new();
            o.insert(
                "kind".into(),
                json!(*u.choose(&["ReplicaSet", "ReplicaSet", "StatefulSet", ""])?),
            );
            o.insert("uid".into(), Value::String(word(u)?));
            maybe(u, &mut o, "controller", |u| {
                Ok(Value::Bool(u.ratio(3u8, 4u8)?))
            })?;
            owners.push(Value::Object(o));
        }
        Ok(Value::Array(owners))
    })?;
    if u.ratio(1u8, 8u8)? {
        meta.insert("deletionTimestamp".into(), json!("2026-01-01T00:00:00Z"));
    }
    let mut spec = Map::new();
    maybe(u, &mut spec, "nodeName", |u| word(u).map(Value::String))?;
    maybe(u, &mut spec, "priorityClassName", |u| {
        word(u).map(Value::String)
    })?;
    maybe(u, &mut spec, "priority", |u| {
        Ok(json!(u.int_in_range(-1..=1)?))
    })?;
    let mut status = Map::new();
    maybe(u, &mut status, "phase", |u| {
        Ok(json!(*u.choose(&[
            "Running",
            "Pending",
            "Succeeded",
            "Failed",
            "Unknown"
        ])?))
    })?;
    Ok(json!({"metadata": meta, "spec": spec, "status": status}))
}

fn binding_request(u: &mut Unstructured) -> Result<Value> {
    let mut meta = Map::new();
    maybe(u, &mut meta, "name", |u| word(u).map(Value::String))?;
    maybe(u, &mut meta, "namespace", |u| word(u).map(Value::String))?;
    meta.insert("uid".into(), json!("5f0c2a34-0b7e-4c1e-9b1a-6a4f3f0d2c11"));
    meta.insert("creationTimestamp".into(), Value::Null);
    maybe(u, &mut meta, "annotations", annotations)?;
    maybe(u, &mut meta, "labels", labels)?;
    let mut object = Map::new();
    object.insert("kind".into(), json!("Binding"));
    object.insert("apiVersion".into(), json!("v1"));
    let meta = or_junk(u, |_| Ok(Value::Object(meta)))?;
    object.insert("metadata".into(), meta);
    if u.ratio(15u8, 16u8)? {
        let target = or_junk(u, |u| {
            let mut t = Map::new();
            maybe(u, &mut t, "kind", |u| {
                Ok(json!(*u.choose(&["Node", "Node", "Node", "", "Pod"])?))
            })?;
            t.insert("name".into(), Value::String(word(u)?));
            Ok(Value::Object(t))
        })?;
        object.insert("target".into(), target);
    }
    if u.ratio(1u8, 16u8)? {
        object.insert(word(u)?, any_json(u, 2)?);
    }
    let pick =
        |u: &mut Unstructured, usual: &'static str, other: &[&'static str]| -> Result<Value> {
            Ok(json!(if u.ratio(15u8, 16u8)? {
                usual
            } else {
                *u.choose(other)?
            }))
        };
    let mut req = Map::new();
    req.insert("uid".into(), json!("0b7e0a5c-1d64-4a57-8f6e-4a2f6f0e8a01"));
    req.insert(
        "kind".into(),
        json!({"group": "", "version": "v1", "kind": pick(u, "Binding", &["Pod", ""])?}),
    );
    req.insert("subResource".into(), pick(u, "binding", &["status", ""])?);
    req.insert(
        "operation".into(),
        pick(u, "CREATE", &["UPDATE", "DELETE"])?,
    );
    req.insert("namespace".into(), Value::String(word(u)?));
    req.insert("object".into(), or_junk(u, |_| Ok(Value::Object(object)))?);
    Ok(Value::Object(req))
}

fn answer(u: &mut Unstructured) -> Result<std::result::Result<Vec<u8>, String>> {
    let json_bytes = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    Ok(match u.int_in_range(0..=9)? {
        0..=2 => Ok(json_bytes(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": word(u)?, "labels": labels(u)?}
        }))),
        3 | 4 => Ok(json_bytes(pod(u)?)),
        5 | 6 => {
            let n = u.int_in_range(0..=5)?;
            let items = (0..n).map(|_| pod(u)).collect::<Result<Vec<_>>>()?;
            Ok(json_bytes(
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
            ))
        }
        7 => Ok(json_bytes(any_json(u, 3)?)),
        8 => Ok(u.arbitrary::<Vec<u8>>()?),
        _ => Err(u.choose(&[
            "nodes \"n1\" not found",
            "pods is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot list resource \"pods\"",
            "context deadline exceeded",
            "",
        ])?
        .to_string()),
    })
}

pub type Scenario = (Vec<u8>, VecDeque<std::result::Result<Vec<u8>, String>>);

fn scenario(u: &mut Unstructured) -> Result<Scenario> {
    let request = match u.int_in_range(0..=15)? {
        0 => Value::String(u.arbitrary()?),
        1 => any_json(u, 3)?,
        _ => binding_request(u)?,
    };
    let settings = match u.int_in_range(0..=7)? {
        0 => None,
        1 => Some("null".to_string()),
        2 => Some(u.arbitrary::<String>()?),
        _ => Some(serde_json::to_string(&settings_doc(u)?).unwrap_or_default()),
    };
    let request = serde_json::to_string(&request).unwrap_or_default();
    let payload = match settings {
        None => format!("{{\"request\":{request}}}"),
        Some(s) => format!("{{\"request\":{request},\"settings\":{s}}}"),
    };
    let n = u.int_in_range(0..=8)?;
    let answers = (0..n).map(|_| answer(u)).collect::<Result<_>>()?;
    Ok((payload.into_bytes(), answers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::zero("0", true)]
    #[case::one("1", true)]
    #[case::minus_one("-1", true)]
    #[case::ten("10", true)]
    #[case::max("2147483647", true)]
    #[case::min("-2147483648", true)]
    #[case::empty("", false)]
    #[case::a_sign_alone("-", false)]
    #[case::minus_zero("-0", false)]
    #[case::plus_sign("+1", false)]
    #[case::leading_zero("01", false)]
    #[case::negative_leading_zero("-01", false)]
    #[case::a_fraction("1.0", false)]
    #[case::a_blank(" 1", false)]
    #[case::over_max("2147483648", false)]
    #[case::under_min("-2147483649", false)]
    #[case::an_exponent("1e3", false)]
    fn canonical_int32(#[case] text: &str, #[case] canonical: bool) {
        assert_eq!(is_canonical_int32(text), canonical);
    }
}
