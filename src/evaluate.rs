//! One admission request from payload to response: reads what the decision
//! needs (through `cluster`), decides (through `decision`), mutates the
//! Binding (through `binding`) and explains the outcome.

use crate::binding::{self, Binding};
use crate::cluster::{self, Host, LookupError};
use crate::decision::{self, Annotate, Decision, Sibling, Skip};
use crate::json_error_text;
use crate::objects::{COST_ANNOTATION, Pod, RANK_ANNOTATION, ZONE_ANNOTATION};
use crate::selector::Labels;
use crate::settings::{self, OnLookupError, Settings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The ValidationResponse policy-server expects. Defined here rather than
/// taken from the SDK so that audit annotations serialise in a stable
/// order: the same request always yields the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub accepted: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    pub mutated_object: Option<Value>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

impl Response {
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

// Only the request fields the policy uses. The object stays raw until we
// know it is a Binding, so a large Pod or Deployment sent to the policy by
// a too-wide rule is never parsed.
#[derive(Deserialize)]
struct Payload<'a> {
    request: Request<'a>,
    #[serde(borrow, default)]
    settings: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(default)]
    kind: Kind,
    #[serde(default, rename = "subResource", alias = "sub_resource")]
    sub_resource: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    namespace: String,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Kind {
    #[serde(default)]
    kind: String,
}

const NOT_A_BINDING: &str =
    "the pod-deletion-cost policy only handles pods/binding CREATE requests";

/// Evaluates a waPC `validate` payload. Never fails: every problem becomes
/// a warning on an accepted request, or a rejection when the settings ask
/// for one.
pub fn evaluate(payload: &[u8], host: &mut dyn Host) -> Response {
    let payload: Payload = match serde_json::from_slice(payload) {
        Ok(p) => p,
        Err(e) => {
            return Response::accept().warn(format!(
                "pod-deletion-cost: cannot parse the admission request: {}; admitted unchanged",
                json_error_text(&e)
            ));
        }
    };
    let settings = match settings::parse(payload.settings.map_or(b"null", |s| s.get().as_bytes())) {
        Ok(s) => s,
        Err(e) => {
            return Response::accept().warn(format!(
                "pod-deletion-cost: invalid settings: {e}; admitted unchanged"
            ));
        }
    };
    let req = payload.request;
    if req.kind.kind != "Binding" || req.sub_resource != "binding" || req.operation != "CREATE" {
        let what = if req.sub_resource.is_empty() {
            format!("{} {}", req.kind.kind, req.operation)
        } else {
            format!("{} {} ({})", req.kind.kind, req.operation, req.sub_resource)
        };
        return Response::accept().warn(format!("{NOT_A_BINDING}; {what} admitted unchanged"));
    }
    let mut object: Value = match req.object.map(|o| serde_json::from_str(o.get())) {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return failure(
                &settings,
                format!("the Binding is not valid JSON: {}", json_error_text(&e)),
            );
        }
        None => return failure(&settings, "the request has no object (the Binding)".into()),
    };
    let binding = match binding::read(&object, &req.namespace) {
        Ok(b) => b,
        Err(e) => return failure(&settings, e),
    };
    match decide(&settings, &binding, host) {
        Err(e) => failure(&settings, e.to_string()),
        Ok((Decision::Skip(skip), ctx)) => {
            let why = match &skip {
                Skip::Placeholder => "placeholder".to_string(),
                Skip::ExistingCost(c) => format!("existing cost {c} kept"),
                Skip::NothingApplies => "no rule matches".to_string(),
            };
            log(host, &binding, &format!("pod left unchanged: {why}"), &[]);
            ctx.audit(Response::accept(), &binding)
                .audit("decision", why)
        }
        Ok((Decision::Annotate(a), ctx)) => {
            let mut annotations = vec![(COST_ANNOTATION, a.cost.to_string())];
            if let (Some(zone), Some(rank)) = (&a.zone, a.rank) {
                annotations.push((ZONE_ANNOTATION, zone.clone()));
                annotations.push((RANK_ANNOTATION, rank.to_string()));
            }
            if let Err(e) = binding::annotate(&mut object, &annotations) {
                return failure(&settings, e);
            }
            log(host, &binding, "pod-deletion-cost set", &explain(&a));
            let mut resp = ctx
                .audit(Response::accept(), &binding)
                .audit("decision", "annotated");
            for (k, v) in explain(&a) {
                resp = resp.audit(k, v);
            }
            resp.mutated_object = Some(object);
            resp
        }
    }
}

/// What the decision was based on, for audit annotations and logs.
#[derive(Default)]
struct Context {
    siblings: Option<usize>,
}

impl Context {
    fn audit(&self, resp: Response, binding: &Binding) -> Response {
        let resp = resp.audit("node", binding.node.clone());
        match self.siblings {
            Some(n) => resp.audit("siblings", n.to_string()),
            None => resp,
        }
    }
}

fn explain(a: &Annotate) -> Vec<(&'static str, String)> {
    let mut out = vec![("deletion-cost", a.cost.to_string())];
    if let Some(rule) = &a.rule {
        out.push(("rule", rule.clone()));
    }
    if let Some(zone) = &a.zone {
        out.push(("zone", zone.clone()));
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
    let node = cluster::node_labels(host, &binding.node)?;
    let pod = if settings.needs_pod() {
        Some(cluster::pod(host, &binding.namespace, &binding.pod)?)
    } else {
        None
    };
    if let Some(skip) = decision::precheck(settings, pod.as_ref()) {
        return Ok((Decision::Skip(skip), ctx));
    }
    let zone = decision::node_zone(settings, &node);
    let siblings = match (&pod, zone) {
        (Some(pod), Some(zone)) => match decision::ranked_owner(settings, Some(zone), pod) {
            Some(owner) => {
                let sibs = siblings(settings, binding, pod, owner, zone, host)?;
                ctx.siblings = Some(sibs.len());
                Some(sibs)
            }
            None => None,
        },
        _ => None,
    };
    Ok((
        decision::decide(settings, &node, pod.as_ref(), siblings.as_deref()),
        ctx,
    ))
}

fn siblings(
    settings: &Settings,
    binding: &Binding,
    pod: &Pod,
    owner: &str,
    target_zone: &str,
    host: &mut dyn Host,
) -> Result<Vec<Sibling>, LookupError> {
    let selector = cluster::sibling_selector(&pod.metadata.labels);
    let listed = cluster::list_pods(host, &binding.namespace, &selector)?;
    // Zones of sibling nodes, looked up once each, in order of first need.
    let mut node_zones: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for sib in decision::siblings(settings, pod, owner, &listed) {
        let zone = match sib.metadata.annotations.zone.as_deref() {
            Some(z) if !z.is_empty() => Some(z.to_string()),
            _ if sib.node_name() == binding.node => Some(target_zone.to_string()),
            _ => match node_zones.get(sib.node_name()) {
                Some(z) => z.clone(),
                None => {
                    let labels: Labels =
                        cluster::node_labels(host, sib.node_name()).map_err(|e| LookupError {
                            what: format!(
                                "{} (the node of sibling pod \"{}/{}\")",
                                e.what, binding.namespace, sib.metadata.name
                            ),
                            cause: e.cause,
                        })?;
                    let z = decision::node_zone(settings, &labels).map(str::to_string);
                    node_zones.insert(sib.node_name(), z.clone());
                    z
                }
            },
        };
        let rank = sib
            .metadata
            .annotations
            .rank
            .as_deref()
            .and_then(decision::parse_rank);
        out.push(Sibling { zone, rank });
    }
    Ok(out)
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

/// A debug line for policy-server's log, in the shape the SDK's logger
/// sends, without pulling the logging framework into the module.
fn log(host: &mut dyn Host, binding: &Binding, message: &str, fields: &[(&str, String)]) {
    let mut event = serde_json::Map::new();
    event.insert("level".into(), "debug".into());
    event.insert("message".into(), message.into());
    event.insert(
        "pod".into(),
        format!("{}/{}", binding.namespace, binding.pod).into(),
    );
    event.insert("node".into(), binding.node.clone().into());
    for (k, v) in fields {
        event.insert((*k).into(), v.clone().into());
    }
    event.insert("line".into(), line!().into());
    event.insert("column".into(), column!().into());
    event.insert("file".into(), file!().into());
    if let Ok(bytes) = serde_json::to_vec(&event) {
        host.log(&bytes);
    }
}
