//! One admission request from payload to response: reads what the decision
//! needs (through `cluster`), decides (through `decision`), mutates the
//! Binding (through `binding`) and explains the outcome.

use crate::binding::{self, Binding};
use crate::cluster::{self, Host, LookupError};
use crate::decision::{self, Annotate, Decision, Outcome, ZoneSiblings};
use crate::objects::{COST_ANNOTATION, Pod, RANK_ANNOTATION, Text, ZONE_ANNOTATION};
use crate::scan;
use crate::settings::{self, OnLookupError, Settings};
use serde_json::Value;
use std::collections::BTreeMap;

/// The ValidationResponse policy-server expects. Defined here rather than
/// taken from the SDK so that audit annotations serialise in a stable
/// order (the same request always yields the same bytes), and so that the
/// mutated Binding goes out as the text it was spliced into.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub accepted: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    /// The annotated Binding, as JSON text spliced from the request's.
    pub mutated_object: Option<String>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

impl Response {
    /// The mutated object parsed, as policy-server reads it.
    pub fn mutated(&self) -> Option<Value> {
        self.mutated_object
            .as_ref()
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// The JSON policy-server reads, in the field order and shape of the
    /// SDK's `ValidationResponse` (`response_is_the_sdk_shape` holds it so).
    pub fn to_json(&self) -> Vec<u8> {
        use crate::json::push_str;
        let mut out = Vec::with_capacity(160 + self.mutated_object.as_ref().map_or(0, String::len));
        out.extend_from_slice(if self.accepted {
            br#"{"accepted":true,"message":"#
        } else {
            br#"{"accepted":false,"message":"#
        });
        match &self.message {
            Some(m) => push_str(&mut out, m),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","code":"#);
        match self.code {
            Some(c) => out.extend_from_slice(c.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","mutated_object":"#);
        match &self.mutated_object {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","audit_annotations":"#);
        match &self.audit_annotations {
            Some(map) => {
                out.push(b'{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_str(&mut out, k);
                    out.push(b':');
                    push_str(&mut out, v);
                }
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","warnings":"#);
        match &self.warnings {
            Some(list) => {
                out.push(b'[');
                for (i, w) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_str(&mut out, w);
                }
                out.push(b']');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }

    fn accept() -> Self {
        Response {
            accepted: true,
            ..Default::default()
        }
    }

    fn warn(mut self, warning: String) -> Self {
        self.warnings.get_or_insert_with(Vec::new).push(warning);
        self
    }

    fn audit(mut self, key: &str, value: impl Into<String>) -> Self {
        self.audit_annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.into());
        self
    }
}

const NOT_A_BINDING: &str =
    "the pod-deletion-cost policy only handles pods/binding CREATE requests";

/// Evaluates a waPC `validate` payload. Never fails: every problem becomes
/// a warning on an accepted request, or a rejection when the settings ask
/// for one.
pub fn evaluate(payload: &[u8], host: &mut dyn Host) -> Response {
    // Only the request fields the policy uses are read. The object stays
    // raw until we know it is a Binding, so a large Pod or Deployment sent
    // to the policy by a too-wide rule is never parsed.
    let parsed = std::str::from_utf8(payload)
        .map_err(|e| format!("not UTF-8: {e}"))
        .and_then(scan::envelope);
    let req = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Response::accept().warn(format!(
                "pod-deletion-cost: cannot parse the admission request: {e}; admitted unchanged"
            ));
        }
    };
    // policy-server runs every request on a fresh instance: nothing kept
    // from one request would ever be found by the next.
    let settings = match settings::parse(req.settings.map_or(b"null", str::as_bytes)) {
        Ok(s) => s,
        Err(e) => {
            return Response::accept().warn(format!(
                "pod-deletion-cost: invalid settings: {e}; admitted unchanged"
            ));
        }
    };
    let (kind, sub_resource, operation) = (
        req.kind.as_str(),
        req.sub_resource.as_str(),
        req.operation.as_str(),
    );
    if kind != "Binding" || sub_resource != "binding" || operation != "CREATE" {
        let shown = |s: &str, none: &str| if s.is_empty() { none } else { s }.to_string();
        let what = format!(
            "{} {}",
            shown(kind, "<no kind>"),
            shown(operation, "<no operation>")
        );
        let what = if sub_resource.is_empty() {
            what
        } else {
            format!("{what} ({sub_resource})")
        };
        return Response::accept().warn(format!("{NOT_A_BINDING}; {what} admitted unchanged"));
    }
    let Some(object) = req.object else {
        return failure(&settings, "the request has no object (the Binding)".into());
    };
    let (binding, document) = match binding::read(object, req.namespace.as_str()) {
        Ok(b) => b,
        Err(e) => return failure(&settings, e),
    };
    // No log line, whatever the outcome: policy-server parses every log
    // event a guest sends, whatever its level, and each request pays for
    // it. The audit annotations explain a decision; the warnings or the
    // message explain an error.
    match decide(&settings, &binding, host) {
        Err(e) => failure(&settings, e.to_string()),
        Ok((Decision::Skip(skip), ctx)) => ctx
            .audit(Response::accept(), &binding)
            .audit(Outcome::AUDIT_KEY, Outcome::Unchanged(skip).to_string()),
        Ok((Decision::Annotate(a), ctx)) => {
            let mut annotations = vec![(COST_ANNOTATION, a.cost.to_string())];
            if let (Some(zone), Some(rank)) = (&a.zone, a.rank) {
                annotations.push((ZONE_ANNOTATION, zone.clone()));
                annotations.push((RANK_ANNOTATION, rank.to_string()));
            }
            let mutated = match binding::annotate(&document, &annotations) {
                Ok(m) => m,
                Err(e) => return failure(&settings, format!("{}: {e}", binding.described())),
            };
            let mut resp = ctx
                .audit(Response::accept(), &binding)
                .audit(Outcome::AUDIT_KEY, Outcome::Annotated.to_string());
            for (k, v) in explain(&a) {
                resp = resp.audit(k, v);
            }
            resp.mutated_object = Some(mutated);
            resp
        }
    }
}

/// What the decision was based on, for the audit annotations.
#[derive(Default)]
struct Context {
    counted: Option<Counted>,
}

impl Context {
    fn audit(&self, resp: Response, binding: &Binding) -> Response {
        let resp = resp.audit("node", binding.node.clone());
        match self.counted {
            // Pending siblings are named only when there are some: the
            // audit log of a quiet cluster reads as before.
            Some(c) if c.pending > 0 => resp
                .audit("siblings", c.siblings.to_string())
                .audit("pending-siblings", c.pending.to_string()),
            Some(c) => resp.audit("siblings", c.siblings.to_string()),
            None => resp,
        }
    }
}

/// The cost and its parts, so that an administrator reading the audit
/// annotations sees how it was reached: rule cost + zone cost - rank,
/// held within int32.
fn explain(a: &Annotate) -> Vec<(&'static str, String)> {
    let mut out = vec![("deletion-cost", a.cost.to_string())];
    if let Some(rule) = &a.rule {
        out.push(("rule", rule.clone()));
    }
    if let Some(cost) = a.class_cost {
        out.push(("rule-cost", cost.to_string()));
    }
    if let Some(zone) = &a.zone {
        out.push(("zone", zone.clone()));
    }
    if let Some(cost) = a.zone_cost {
        out.push(("zone-cost", cost.to_string()));
    }
    if let Some(rank) = a.rank {
        out.push(("rank", rank.to_string()));
    }
    out
}

/// Gathers what the decision needs, in the order the README documents:
/// node, then the pod (only when a setting needs it), then the siblings and
/// the nodes of siblings whose zone is not recorded.
fn decide(
    settings: &Settings,
    binding: &Binding,
    host: &mut dyn Host,
) -> Result<(Decision, Context), LookupError> {
    let mut ctx = Context::default();
    let node_answer = cluster::node(host, &binding.node)?;
    let node = node_answer.node()?;
    let node = node.metadata.labels;
    let pod_answer = if settings.needs_pod() {
        Some(cluster::pod(host, &binding.namespace, &binding.pod)?)
    } else {
        None
    };
    let pod: Option<Pod> = pod_answer.as_ref().map(|a| a.pod()).transpose()?;
    if let Some(skip) = decision::precheck(settings, pod.as_ref()) {
        return Ok((Decision::Skip(skip), ctx));
    }
    let zone = decision::node_zone(settings, &node);
    let zone_siblings = match (&pod, zone) {
        (Some(pod), Some(zone)) => match decision::ranked_owner(settings, Some(zone), pod) {
            Some(owner) => {
                let (known, counted) = zone_siblings(settings, binding, pod, owner, zone, host)?;
                ctx.counted = Some(counted);
                Some(known)
            }
            None => None,
        },
        _ => None,
    };
    Ok((
        decision::decide(settings, &node, pod.as_ref(), zone_siblings.as_ref()),
        ctx,
    ))
}

/// What is known of the pod's siblings in its zone (see
/// `decision::ZoneSiblings`), how many siblings the list shows bound and
/// how many pending.
fn zone_siblings(
    settings: &Settings,
    binding: &Binding,
    pod: &Pod<'_>,
    owner: &str,
    target_zone: &str,
    host: &mut dyn Host,
) -> Result<(ZoneSiblings, Counted), LookupError> {
    let keys = settings
        .zones
        .as_ref()
        .and_then(|z| z.sibling_labels.as_deref());
    let selector = cluster::sibling_selector(&pod.metadata.labels, keys);
    let answer = cluster::list_pods(host, &binding.namespace, selector.as_deref())?;
    // Only what the ranking needs is kept of each sibling, as it is parsed;
    // sibling labels are read only when placeholders are told by them.
    let mut siblings: Vec<Sibling> = Vec::new();
    let mut pending = 0u32;
    answer.each_pod(decision::placeholders_need_labels(settings), |p| {
        if decision::is_sibling(settings, pod, owner, p) {
            let meta = &mut p.metadata;
            siblings.push(Sibling {
                name: std::mem::take(&mut meta.name),
                node: p.spec.node_name.take().unwrap_or_default(),
                zone: meta.annotations.zone.take(),
                rank: meta.annotations.rank.take(),
            });
        } else if decision::is_pending_sibling(settings, pod, owner, p) {
            pending = pending.saturating_add(1);
        }
    })?;
    // Each sibling node's zone (an index into `per_zone`), looked up once
    // per node, in order of first need. Small vectors searched in order
    // rather than maps: a cluster has a few zones, and each map type would
    // add kilobytes of code to the module.
    let mut node_zones: Vec<(&str, Option<usize>)> = Vec::new();
    let mut per_zone: Vec<(String, u32)> = vec![(target_zone.to_string(), 0)];
    let mut zone_index = |zone: &str| match per_zone.iter().position(|(z, _)| z == zone) {
        Some(i) => i,
        None => {
            per_zone.push((zone.to_string(), 0));
            per_zone.len() - 1
        }
    };
    let mut known = ZoneSiblings::default();
    let mut in_zone: Vec<usize> = Vec::with_capacity(siblings.len());
    for sib in &siblings {
        let zone = match sib.zone.as_ref() {
            Some(z) if !z.as_str().is_empty() => Some(zone_index(z.as_str())),
            _ if sib.node.as_str() == binding.node => Some(0),
            _ => match node_zones.iter().find(|(n, _)| *n == sib.node.as_str()) {
                Some((_, known)) => *known,
                None => {
                    let lookup = cluster::node(host, sib.node.as_str()).and_then(|a| {
                        a.node().map(|n| {
                            decision::node_zone(settings, &n.metadata.labels).map(&mut zone_index)
                        })
                    });
                    let found = lookup.map_err(|e| LookupError {
                        what: format!(
                            "{} (the node of sibling pod \"{}/{}\")",
                            e.what,
                            binding.namespace,
                            sib.name.as_str()
                        ),
                        cause: e.cause,
                    })?;
                    node_zones.push((sib.node.as_str(), found));
                    found
                }
            },
        };
        let Some(zone) = zone else { continue };
        in_zone.push(zone);
        if zone == 0 {
            known.ranks.push(
                sib.rank
                    .as_ref()
                    .and_then(|r| decision::parse_rank(r.as_str())),
            );
        }
    }
    for zone in in_zone {
        if let Some((_, n)) = per_zone.get_mut(zone) {
            *n = n.saturating_add(1);
        }
    }
    known.pending = decision::pending_in_zone(&per_zone, pending);
    Ok((
        known,
        Counted {
            siblings: siblings.len(),
            pending,
        },
    ))
}

/// How many siblings the list showed: bound, and pending (see
/// `decision::is_pending_sibling`).
#[derive(Debug, Clone, Copy)]
struct Counted {
    siblings: usize,
    pending: u32,
}

/// What the ranking keeps of a sibling pod.
struct Sibling<'a> {
    name: Text<'a>,
    node: Text<'a>,
    zone: Option<Text<'a>>,
    rank: Option<Text<'a>>,
}

fn failure(settings: &Settings, problem: String) -> Response {
    match settings.on_lookup_error {
        OnLookupError::Allow => Response::accept().warn(format!(
            "pod-deletion-cost: {problem}; the binding is admitted without a deletion cost"
        )),
        OnLookupError::Reject => Response {
            accepted: false,
            message: Some(format!(
                "pod-deletion-cost: {problem}; the binding is rejected (onLookupError: reject)"
            )),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fake::FakeHost;
    use crate::decision::Skip;
    use rstest::rstest;
    use serde_json::json;

    fn node_req(name: &str) -> Value {
        json!({"api_version":"v1","kind":"Node","name":name,"namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]})
    }

    fn pod_req(ns: &str, name: &str) -> Value {
        json!({"api_version":"v1","kind":"Pod","name":name,"namespace":ns,"disable_cache":true,"field_masks":["spec.priority","spec.priorityClassName"]})
    }

    fn list_req(ns: &str, selector: &str) -> Value {
        json!({"api_version":"v1","kind":"Pod","namespace":ns,"label_selector":selector,"field_selector":null,
               "field_masks":["spec.nodeName","spec.priority","spec.priorityClassName","status.phase"]})
    }

    fn node(labels: Value) -> Value {
        json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"x","labels":labels}})
    }

    fn binding_object(pod: &str, node: &str) -> Value {
        json!({"kind":"Binding","apiVersion":"v1",
               "metadata":{"name":pod,"namespace":"shop","uid":"b-uid","creationTimestamp":null},
               "target":{"kind":"Node","name":node}})
    }

    fn payload(object: Value, settings: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "request": {"uid":"r","kind":{"group":"","version":"v1","kind":"Binding"},
                        "resource":{"group":"","version":"v1","resource":"pods"},
                        "subResource":"binding","namespace":"shop","operation":"CREATE",
                        "userInfo":{"username":"system:kube-scheduler"},"object":object},
            "settings": settings
        }))
        .unwrap()
    }

    fn run(payload: &[u8], mut host: FakeHost) -> (Response, FakeHost) {
        let resp = evaluate(payload, &mut host);
        host.done();
        (resp, host)
    }

    /// The `decision` audit annotation, read as `kubectl deletion-cost`
    /// reads it.
    fn outcome(resp: &Response) -> Option<Outcome> {
        Outcome::parse(resp.audit_annotations.as_ref()?.get(Outcome::AUDIT_KEY)?)
    }

    fn cost_of(resp: &Response) -> Option<String> {
        resp.mutated()?["metadata"]["annotations"][COST_ANNOTATION]
            .as_str()
            .map(str::to_string)
    }

    #[test]
    fn hybrid_node_gets_cost_one_and_nothing_else_changes() {
        let object = binding_object("web-1", "mi-1");
        let host = FakeHost::default().expect(
            "get_resource",
            node_req("mi-1"),
            Ok(node(json!({"eks.amazonaws.com/compute-type":"hybrid"}))),
        );
        let (resp, _) = run(&payload(object.clone(), Value::Null), host);
        assert!(resp.accepted);
        assert_eq!(resp.warnings, None);
        let mut expected = object;
        expected["metadata"]["annotations"] = json!({COST_ANNOTATION: "1"});
        assert_eq!(resp.mutated(), Some(expected));
        assert_eq!(outcome(&resp), Some(Outcome::Annotated));
        let audit = resp.audit_annotations.unwrap();
        assert_eq!(audit["rule"], "hybrid");
        assert_eq!(audit["rule-cost"], "1");
        assert_eq!(audit.get("zone-cost"), None);
        assert_eq!(audit["deletion-cost"], "1");
        assert_eq!(audit["node"], "mi-1");
    }

    #[test]
    fn other_nodes_are_left_alone() {
        let host = FakeHost::default().expect(
            "get_resource",
            node_req("ip-1"),
            Ok(node(json!({"eks.amazonaws.com/compute-type":"ec2"}))),
        );
        let (resp, _) = run(&payload(binding_object("web-1", "ip-1"), json!({})), host);
        assert!(resp.accepted);
        assert_eq!(resp.mutated(), None);
        assert_eq!(resp.warnings, None);
        assert_eq!(
            outcome(&resp),
            Some(Outcome::Unchanged(Skip::NothingApplies))
        );
    }

    #[rstest]
    #[case::a_pod(
        json!({"kind":{"kind":"Pod"},"operation":"CREATE","object":{"kind":"Pod","spec":{}}}),
        "Pod CREATE"
    )]
    #[case::a_binding_update(
        json!({"kind":{"kind":"Binding"},"subResource":"binding","operation":"UPDATE","object":{}}),
        "Binding UPDATE (binding)"
    )]
    #[case::nothing_said(json!({}), "<no kind> <no operation>")]
    fn not_a_binding_is_accepted_with_a_warning(#[case] request: Value, #[case] what: &str) {
        let p = serde_json::to_vec(&json!({"request": request, "settings": {}})).unwrap();
        let (resp, _) = run(&p, FakeHost::default());
        assert!(resp.accepted);
        assert_eq!(resp.mutated(), None);
        assert_eq!(
            resp.warnings.unwrap(),
            [format!(
                "the pod-deletion-cost policy only handles pods/binding CREATE requests; {what} admitted unchanged"
            )]
        );
    }

    #[test]
    fn lookup_errors_warn_or_reject() {
        let host = || {
            FakeHost::default().expect(
                "get_resource",
                node_req("mi-1"),
                Err("nodes \"mi-1\" not found".into()),
            )
        };
        let (resp, _) = run(&payload(binding_object("web-1", "mi-1"), json!({})), host());
        assert!(resp.accepted);
        assert_eq!(resp.mutated(), None);
        assert_eq!(
            resp.warnings.unwrap(),
            [
                "pod-deletion-cost: cannot read node \"mi-1\": nodes \"mi-1\" not found; the binding is admitted without a deletion cost"
            ]
        );
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"onLookupError": "reject"}),
            ),
            host(),
        );
        assert!(!resp.accepted);
        assert_eq!(
            resp.message.unwrap(),
            "pod-deletion-cost: cannot read node \"mi-1\": nodes \"mi-1\" not found; the binding is rejected (onLookupError: reject)"
        );
    }

    #[test]
    fn malformed_bindings_make_no_host_call() {
        let mut object = binding_object("web-1", "mi-1");
        object["target"] = json!({"kind": "Node", "name": ""});
        let (resp, _) = run(
            &payload(object, json!({"onLookupError": "reject"})),
            FakeHost::default(),
        );
        assert!(!resp.accepted);
        assert!(
            resp.message
                .unwrap()
                .contains("the Binding of pod \"shop/web-1\" has a target with an empty node name")
        );
        let (resp, _) = run(b"{not json", FakeHost::default());
        assert!(resp.accepted);
        assert!(resp.warnings.unwrap()[0].starts_with(
            "pod-deletion-cost: cannot parse the admission request: expected a key, found text that is not JSON"
        ));
    }

    #[test]
    fn invalid_settings_at_evaluation_admit_unchanged() {
        let (resp, _) = run(
            &payload(binding_object("web-1", "mi-1"), json!({"rules": 3})),
            FakeHost::default(),
        );
        assert!(resp.accepted);
        assert_eq!(
            resp.warnings.unwrap(),
            [
                "pod-deletion-cost: invalid settings: rules: invalid type: integer `3`, expected a sequence; admitted unchanged"
            ]
        );
    }

    fn ack_settings() -> Value {
        json!({
            "rules": [],
            "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10}, "balance": true},
            "placeholders": {"priorityClassNames": ["default-priority-class"]}
        })
    }

    fn rs_pod(name: &str, node: &str, annotations: Value) -> Value {
        json!({"metadata":{"name":name,"namespace":"shop","uid":format!("uid-{name}"),
                           "labels":{"app":"web","pod-template-hash":"abc"},"annotations":annotations,
                           "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"rs-1","controller":true}]},
               "spec":{"nodeName":node},"status":{"phase":"Running"}})
    }

    /// The host of a balance binding of `me` to `n-i-1` (zone `i`): the
    /// node lookup, `me` looked up by its name, then the sibling list
    /// asked with `list` and answered with `answer`.
    fn balance_host(me: Value, list: Value, answer: Result<Value, String>) -> FakeHost {
        let name = me["metadata"]["name"].as_str().unwrap().to_string();
        FakeHost::default()
            .expect(
                "get_resource",
                node_req("n-i-1"),
                Ok(node(json!({"available_zone":"i"}))),
            )
            .expect("get_resource", pod_req("shop", &name), Ok(me))
            .expect("list_resources_by_namespace", list, answer)
    }

    #[test]
    fn balance_ranks_within_the_zone() {
        let mut me = rs_pod("web-new", "", json!(null));
        me["spec"] = json!({});
        let mut hold = rs_pod("hold", "n-i-1", json!(null));
        hold["spec"]["priorityClassName"] = json!("default-priority-class");
        let list = json!({"apiVersion":"v1","kind":"PodList","metadata":{},"items":[
            me.clone(),
            rs_pod("web-a", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "0"})),
            rs_pod("web-b", "n-k-1", json!(null)),
            rs_pod("web-c", "n-i-2", json!(null)),
            rs_pod("web-d", "n-k-1", json!(null)),
            hold,
        ]});
        let host = balance_host(me, list_req("shop", "app=web"), Ok(list))
            .expect(
                "get_resource",
                node_req("n-k-1"),
                Ok(node(json!({"available_zone":"k"}))),
            )
            .expect(
                "get_resource",
                node_req("n-i-2"),
                Ok(node(json!({"available_zone":"i"}))),
            );
        let (resp, _) = run(
            &payload(binding_object("web-new", "n-i-1"), ack_settings()),
            host,
        );
        assert!(resp.accepted, "{resp:?}");
        let mutated = resp.mutated().unwrap();
        let ann = &mutated["metadata"]["annotations"];
        // web-a holds rank 0, web-c (unranked, zone i) takes 1: the new pod gets 2.
        assert_eq!(
            ann,
            &json!({COST_ANNOTATION: "8", ZONE_ANNOTATION: "i", RANK_ANNOTATION: "2"})
        );
        let audit = resp.audit_annotations.unwrap();
        assert_eq!(audit["siblings"], "4");
        assert_eq!(audit["rank"], "2");
        // The cost's parts: no rule, zone i costs 10, rank 2 (10 - 2 = 8).
        assert_eq!(audit["zone-cost"], "10");
        assert_eq!(audit.get("rule"), None);
        assert_eq!(audit.get("rule-cost"), None);
    }

    #[test]
    fn a_burst_counts_the_siblings_still_unbound_in_the_list() {
        // Zones i and k hold one pod each; two siblings created just before
        // web-new show unbound (being bound, or bound a moment ago and not
        // yet in policy-server's cache). The zones are level, so the first
        // is taken to go to k (the pod's own zone last among equals) and
        // the second, level again, to i: it takes rank 1 there, web-new 2.
        let at = |mut p: Value, ts: &str, rv: &str| {
            p["metadata"]["creationTimestamp"] = json!(ts);
            p["metadata"]["resourceVersion"] = json!(rv);
            p
        };
        let me = at(
            rs_pod("web-new", "", json!(null)),
            "2026-12-07T10:00:05Z",
            "50",
        );
        let list = json!({"apiVersion":"v1","kind":"PodList","metadata":{},"items":[
            me.clone(),
            rs_pod("web-a", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "0"})),
            rs_pod("web-b", "n-k-1", json!({ZONE_ANNOTATION: "k", RANK_ANNOTATION: "0"})),
            at(rs_pod("web-c", "", json!(null)), "2026-12-07T10:00:04Z", "40"),
            at(rs_pod("web-d", "", json!(null)), "2026-12-07T10:00:05Z", "49"),
            // Created after web-new (by version within its second), or long
            // before it: not pending.
            at(rs_pod("web-e", "", json!(null)), "2026-12-07T10:00:05Z", "51"),
            at(rs_pod("web-f", "", json!(null)), "2026-12-07T09:00:00Z", "1"),
        ]});
        let host = balance_host(me, list_req("shop", "app=web"), Ok(list));
        let (resp, _) = run(
            &payload(binding_object("web-new", "n-i-1"), ack_settings()),
            host,
        );
        let ann = &resp.mutated().unwrap()["metadata"]["annotations"];
        assert_eq!(ann[RANK_ANNOTATION], "2", "{ann}");
        let audit = resp.audit_annotations.unwrap();
        assert_eq!(audit["siblings"], "2");
        assert_eq!(audit["pending-siblings"], "2");
    }

    #[test]
    fn rollout_list_keeps_only_the_pods_own_replicaset() {
        // Mid-rollout the selector without pod-template-hash also lists the
        // previous ReplicaSet's pods: they hold ranks of their own.
        let me = rs_pod("web-new", "", json!(null));
        let mut old_a = rs_pod(
            "web-old-a",
            "n-i-1",
            json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "0"}),
        );
        let mut old_b = rs_pod(
            "web-old-b",
            "n-i-1",
            json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "1"}),
        );
        for old in [&mut old_a, &mut old_b] {
            old["metadata"]["labels"]["pod-template-hash"] = json!("old");
            old["metadata"]["ownerReferences"][0]["uid"] = json!("rs-0");
            old["metadata"]["ownerReferences"][0]["name"] = json!("web-old");
        }
        let list = json!({"apiVersion":"v1","kind":"PodList","metadata":{},"items":[
            old_a,
            rs_pod("web-a", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "0"})),
            old_b,
        ]});
        let host = balance_host(me, list_req("shop", "app=web"), Ok(list));
        let (resp, _) = run(
            &payload(binding_object("web-new", "n-i-1"), ack_settings()),
            host,
        );
        let mutated = resp.mutated().unwrap();
        assert_eq!(mutated["metadata"]["annotations"][RANK_ANNOTATION], "1");
        assert_eq!(resp.audit_annotations.unwrap()["siblings"], "1");
    }

    #[test]
    fn sibling_labels_choose_the_selector() {
        let mut me = rs_pod("web-new", "", json!(null));
        me["metadata"]["labels"] =
            json!({"app":"web","team":"shop","track":"stable","pod-template-hash":"abc"});
        let mut settings = ack_settings();
        settings["zones"]["siblingLabels"] = json!(["track", "app", "release"]);
        let host = balance_host(
            me.clone(),
            list_req("shop", "app=web,track=stable"),
            Ok(json!({"items": []})),
        );
        let (resp, _) = run(&payload(binding_object("web-new", "n-i-1"), settings), host);
        assert_eq!(
            resp.mutated().unwrap()["metadata"]["annotations"][RANK_ANNOTATION],
            "0"
        );

        // None of the keys on the pod: the whole namespace is listed.
        let mut settings = ack_settings();
        settings["zones"]["siblingLabels"] = json!(["release"]);
        let mut list = list_req("shop", "");
        list["label_selector"] = Value::Null;
        let host = balance_host(
            me,
            list,
            Ok(json!({"items": [rs_pod("web-a", "n-i-1", json!(null))]})),
        );
        let (resp, _) = run(&payload(binding_object("web-new", "n-i-1"), settings), host);
        assert_eq!(
            resp.mutated().unwrap()["metadata"]["annotations"][RANK_ANNOTATION],
            "1"
        );
    }

    #[test]
    fn placeholders_are_never_annotated() {
        let mut hold = rs_pod("hold", "", json!(null));
        hold["spec"] = json!({"priorityClassName": "default-priority-class", "priority": -1});
        let host = FakeHost::default()
            .expect(
                "get_resource",
                node_req("n-i-1"),
                Ok(node(json!({"available_zone":"i"}))),
            )
            .expect("get_resource", pod_req("shop", "hold"), Ok(hold));
        let (resp, _) = run(
            &payload(binding_object("hold", "n-i-1"), ack_settings()),
            host,
        );
        assert!(resp.accepted);
        assert_eq!(resp.mutated(), None);
        assert_eq!(outcome(&resp), Some(Outcome::Unchanged(Skip::Placeholder)));
    }

    #[rstest]
    #[case::a_cost_is_kept(
        json!({COST_ANNOTATION: "42"}),
        None,
        Outcome::Unchanged(Skip::ExistingCost("42".into()))
    )]
    #[case::no_cost_yet(json!(null), Some("1"), Outcome::Annotated)]
    fn keep_existing_cost(
        #[case] annotations: Value,
        #[case] cost: Option<&str>,
        #[case] decision: Outcome,
    ) {
        let me = rs_pod("web-1", "", annotations);
        let host = FakeHost::default()
            .expect(
                "get_resource",
                node_req("mi-1"),
                Ok(node(json!({"eks.amazonaws.com/compute-type":"hybrid"}))),
            )
            .expect("get_resource", pod_req("shop", "web-1"), Ok(me));
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"keepExistingCost": true}),
            ),
            host,
        );
        // The Binding is mutated exactly when a cost is written.
        assert_eq!(resp.mutated().is_some(), cost.is_some());
        assert_eq!(cost_of(&resp).as_deref(), cost);
        assert_eq!(outcome(&resp), Some(decision));
    }

    #[test]
    fn pod_list_and_sibling_node_errors() {
        let me = rs_pod("web-1", "", json!(null));
        let host = FakeHost::default()
            .expect(
                "get_resource",
                node_req("n-i-1"),
                Ok(node(json!({"available_zone":"i"}))),
            )
            .expect(
                "get_resource",
                pod_req("shop", "web-1"),
                Err("pods \"web-1\" not found".into()),
            );
        let (resp, _) = run(
            &payload(binding_object("web-1", "n-i-1"), ack_settings()),
            host,
        );
        assert!(
            resp.warnings.unwrap()[0]
                .contains("cannot read pod \"shop/web-1\": pods \"web-1\" not found")
        );

        let forbidden = "pods is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot list resource \"pods\"";
        let host = balance_host(
            me.clone(),
            list_req("shop", "app=web"),
            Err(forbidden.into()),
        );
        let (resp, _) = run(
            &payload(binding_object("web-1", "n-i-1"), ack_settings()),
            host,
        );
        assert!(resp.warnings.unwrap()[0].contains("cannot read pods in namespace \"shop\" with label selector \"app=web\": pods is forbidden"));

        let list = json!({"items":[rs_pod("web-2", "gone", json!(null))]});
        let mut s = ack_settings();
        s["onLookupError"] = json!("reject");
        let host = balance_host(me, list_req("shop", "app=web"), Ok(list)).expect(
            "get_resource",
            node_req("gone"),
            Err("nodes \"gone\" not found".into()),
        );
        let (resp, _) = run(&payload(binding_object("web-1", "n-i-1"), s), host);
        assert!(!resp.accepted);
        assert_eq!(
            resp.message.unwrap(),
            "pod-deletion-cost: cannot read node \"gone\" (the node of sibling pod \"shop/web-2\"): nodes \"gone\" not found; the binding is rejected (onLookupError: reject)"
        );
    }

    // ---- bad input: each test backs a row of the README's bad-input table ----

    const ADMITTED: &str = "; the binding is admitted without a deletion cost";

    fn node_and_decision() -> BTreeMap<String, String> {
        [("node", "n\"1"), ("decision", "annotated")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
    }

    #[rstest]
    #[case::accepted(Response::accept())]
    #[case::warnings_to_escape(
        Response::accept()
            .warn("a \"quoted\"\nwarning".into())
            .warn("ünï".into())
    )]
    #[case::rejected(Response {
        accepted: false,
        message: Some("no\tway".into()),
        code: Some(400),
        ..Default::default()
    })]
    #[case::mutated_with_audit_annotations(Response {
        mutated_object: Some(r#"{"kind": "Binding", "metadata": {"name": "p"}}"#.into()),
        audit_annotations: Some(node_and_decision()),
        ..Response::accept()
    })]
    #[case::empty_annotations_and_warnings(Response {
        audit_annotations: Some(BTreeMap::new()),
        warnings: Some(Vec::new()),
        ..Response::accept()
    })]
    fn response_is_the_sdk_shape(#[case] resp: Response) {
        use kubewarden_policy_sdk::response::ValidationResponse;
        let ours: Value = serde_json::from_slice(&resp.to_json()).unwrap();
        let sdk = ValidationResponse {
            accepted: resp.accepted,
            message: resp.message.clone(),
            code: resp.code,
            mutated_object: resp.mutated(),
            audit_annotations: resp
                .audit_annotations
                .clone()
                .map(|m| m.into_iter().collect()),
            warnings: resp.warnings.clone(),
        };
        assert_eq!(ours, serde_json::to_value(&sdk).unwrap());
    }

    #[test]
    fn response_fields_in_the_sdk_order_annotations_sorted() {
        let resp = Response {
            audit_annotations: Some(node_and_decision()),
            ..Response::accept()
        };
        assert_eq!(
            String::from_utf8(resp.to_json()).unwrap(),
            r#"{"accepted":true,"message":null,"code":null,"mutated_object":null,"audit_annotations":{"decision":"annotated","node":"n\"1"},"warnings":null}"#
        );
    }

    fn warned(resp: Response) -> String {
        assert!(resp.accepted, "{resp:?}");
        assert_eq!(resp.mutated(), None);
        let mut warnings = resp.warnings.expect("a warning");
        assert_eq!(warnings.len(), 1);
        warnings.remove(0)
    }

    fn rejected(resp: Response) -> String {
        assert!(!resp.accepted, "{resp:?}");
        assert_eq!(resp.mutated(), None);
        resp.message.expect("a message")
    }

    fn hybrid_node(name: &str) -> FakeHost {
        FakeHost::default().expect(
            "get_resource",
            node_req(name),
            Ok(node(json!({"eks.amazonaws.com/compute-type":"hybrid"}))),
        )
    }

    #[test]
    fn bad_input_missing_request() {
        let (resp, _) = run(br#"{"settings":{}}"#, FakeHost::default());
        assert_eq!(
            warned(resp),
            "pod-deletion-cost: cannot parse the admission request: missing field `request`; admitted unchanged"
        );
    }

    #[test]
    fn bad_input_missing_object() {
        let p = serde_json::to_vec(&json!({
            "request": {"kind":{"kind":"Binding"},"subResource":"binding","operation":"CREATE","namespace":"shop"},
            "settings": {"onLookupError": "reject"}
        }))
        .unwrap();
        let (resp, _) = run(&p, FakeHost::default());
        assert_eq!(
            rejected(resp),
            "pod-deletion-cost: the request has no object (the Binding); the binding is rejected (onLookupError: reject)"
        );
    }

    #[test]
    fn bad_input_object_number_out_of_range() {
        // Syntactically valid JSON that no JSON number type can hold.
        let p = br#"{"request":{"kind":{"kind":"Binding"},"subResource":"binding","operation":"CREATE","namespace":"shop",
            "object":{"metadata":{"name":"web-1"},"target":{"name":"mi-1"},"x":1e400}}}"#;
        let (resp, _) = run(p, FakeHost::default());
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: the Binding is not valid JSON: number out of range{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_missing_target() {
        let mut object = binding_object("web-1", "mi-1");
        object.as_object_mut().unwrap().remove("target");
        let (resp, _) = run(&payload(object, json!({})), FakeHost::default());
        assert_eq!(
            warned(resp),
            format!("pod-deletion-cost: the Binding of pod \"shop/web-1\" has no target{ADMITTED}")
        );
    }

    #[test]
    fn bad_input_target_kind_not_node() {
        let mut object = binding_object("web-1", "mi-1");
        object["target"]["kind"] = json!("Pod");
        let (resp, _) = run(&payload(object, json!({})), FakeHost::default());
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: the Binding of pod \"shop/web-1\" targets a \"Pod\", not a Node{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_empty_node_name() {
        let (resp, _) = run(
            &payload(binding_object("web-1", ""), json!({})),
            FakeHost::default(),
        );
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: the Binding of pod \"shop/web-1\" has a target with an empty node name{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_annotations_not_an_object() {
        let mut object = binding_object("web-1", "mi-1");
        object["metadata"]["annotations"] = json!(["x"]);
        let (resp, _) = run(&payload(object, json!({})), hybrid_node("mi-1"));
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: the Binding of pod \"shop/web-1\": metadata.annotations is not an object{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_rbac_denied_node() {
        let denied = "nodes \"mi-1\" is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot get resource \"nodes\" in API group \"\" at the cluster scope";
        let host = FakeHost::default().expect("get_resource", node_req("mi-1"), Err(denied.into()));
        let (resp, _) = run(&payload(binding_object("web-1", "mi-1"), json!({})), host);
        assert_eq!(
            warned(resp),
            format!("pod-deletion-cost: cannot read node \"mi-1\": {denied}{ADMITTED}")
        );
    }

    #[test]
    fn bad_input_host_timeout() {
        let host = FakeHost::default().expect(
            "get_resource",
            node_req("mi-1"),
            Err("context deadline exceeded".into()),
        );
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"onLookupError": "reject"}),
            ),
            host,
        );
        assert_eq!(
            rejected(resp),
            "pod-deletion-cost: cannot read node \"mi-1\": context deadline exceeded; the binding is rejected (onLookupError: reject)"
        );
    }

    #[test]
    fn bad_input_non_string_label_values() {
        let host = FakeHost::default().expect(
            "get_resource",
            node_req("mi-1"),
            Ok(node(json!({"eks.amazonaws.com/compute-type": true}))),
        );
        let (resp, _) = run(&payload(binding_object("web-1", "mi-1"), json!({})), host);
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: cannot read node \"mi-1\": malformed answer from the cluster: metadata.labels[\"eks.amazonaws.com/compute-type\"]: expected a string, found a boolean{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_node_answer_not_json() {
        let mut host = FakeHost::default();
        // FakeHost answers with JSON values; a JSON string is still not a Node.
        host.expected
            .push_back(("get_resource".into(), node_req("mi-1"), Ok(json!("<html>"))));
        let (resp, _) = run(&payload(binding_object("web-1", "mi-1"), json!({})), host);
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: cannot read node \"mi-1\": malformed answer from the cluster: expected a map, found a string{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_huge_label_maps() {
        let mut labels: serde_json::Map<String, Value> = (0..20_000)
            .map(|i| (format!("example.com/label-{i}"), json!("x".repeat(63))))
            .collect();
        labels.insert("eks.amazonaws.com/compute-type".into(), json!("hybrid"));
        let host = FakeHost::default().expect(
            "get_resource",
            node_req("mi-1"),
            Ok(node(Value::Object(labels))),
        );
        let (resp, _) = run(&payload(binding_object("web-1", "mi-1"), json!({})), host);
        assert_eq!(resp.warnings, None);
        assert_eq!(cost_of(&resp).as_deref(), Some("1"));
    }

    #[test]
    fn bad_input_pod_non_string_annotation() {
        let mut me = rs_pod("web-1", "", json!(null));
        me["metadata"]["annotations"] = json!({COST_ANNOTATION: 5});
        let host = hybrid_node("mi-1").expect("get_resource", pod_req("shop", "web-1"), Ok(me));
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"keepExistingCost": true}),
            ),
            host,
        );
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: cannot read pod \"shop/web-1\": malformed answer from the cluster: metadata.annotations[\"controller.kubernetes.io/pod-deletion-cost\"]: expected a string, found a number{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_pod_priority_not_an_int32() {
        let mut me = rs_pod("web-1", "", json!(null));
        me["spec"]["priority"] = json!(-1.5);
        let host = hybrid_node("mi-1").expect("get_resource", pod_req("shop", "web-1"), Ok(me));
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"placeholders": {"maxPriority": -1}}),
            ),
            host,
        );
        assert_eq!(
            warned(resp),
            format!(
                "pod-deletion-cost: cannot read pod \"shop/web-1\": malformed answer from the cluster: spec.priority: -1.5 is not an int32{ADMITTED}"
            )
        );
    }

    #[test]
    fn bad_input_invalid_existing_cost_kept() {
        // keepExistingCost keeps whatever the pod carries; the controller
        // reads an unparsable value as 0, as it would without this policy.
        let me = rs_pod("web-1", "", json!({COST_ANNOTATION: "abc"}));
        let host = hybrid_node("mi-1").expect("get_resource", pod_req("shop", "web-1"), Ok(me));
        let (resp, _) = run(
            &payload(
                binding_object("web-1", "mi-1"),
                json!({"keepExistingCost": true}),
            ),
            host,
        );
        assert!(resp.accepted);
        assert_eq!(resp.warnings, None);
        assert_eq!(resp.mutated(), None);
        assert_eq!(
            outcome(&resp),
            Some(Outcome::Unchanged(Skip::ExistingCost("abc".into())))
        );
    }

    #[test]
    fn bad_input_malformed_sibling_rank() {
        let me = rs_pod("web-new", "", json!(null));
        let list = json!({"items": [
            rs_pod("web-a", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "01"})),
            rs_pod("web-b", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "-1"})),
            rs_pod("web-c", "n-i-1", json!({ZONE_ANNOTATION: "i", RANK_ANNOTATION: "0"})),
        ]});
        let host = balance_host(me, list_req("shop", "app=web"), Ok(list));
        let (resp, _) = run(
            &payload(binding_object("web-new", "n-i-1"), ack_settings()),
            host,
        );
        assert_eq!(resp.warnings, None);
        // web-c holds 0; web-a and web-b count as unranked and take 1 and 2.
        let mutated = resp.mutated().unwrap();
        let ann = &mutated["metadata"]["annotations"];
        assert_eq!(ann[RANK_ANNOTATION], "3");
        assert_eq!(ann[COST_ANNOTATION], "7");
    }

    #[test]
    fn bad_input_pod_list_malformed() {
        let me = rs_pod("web-1", "", json!(null));
        let host = balance_host(
            me,
            list_req("shop", "app=web"),
            Ok(json!({"items": {"web-2": {}}})),
        );
        let mut settings = ack_settings();
        settings["onLookupError"] = json!("reject");
        let (resp, _) = run(&payload(binding_object("web-1", "n-i-1"), settings), host);
        assert_eq!(
            rejected(resp),
            "pod-deletion-cost: cannot read pods in namespace \"shop\" with label selector \"app=web\": malformed answer from the cluster: items: expected a list, found a map; the binding is rejected (onLookupError: reject)"
        );
    }
}
