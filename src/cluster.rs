//! Cluster lookups: the only code that talks to Kubewarden's host
//! capabilities. The payloads are part of the policy's contract
//! (administrators write RBAC and kwctl replay sessions from them), so they
//! are built here and nowhere else.

use crate::objects::{LabelSet, Node, Pod, Text};
use crate::scan;
use kubewarden_policy_sdk::host_capabilities::kubernetes::{
    GetResourceRequest, ListResourcesByNamespaceRequest,
};
use std::collections::BTreeSet;

/// The waPC host as seen by the policy. The wasm entry points use the real
/// host; tests and fuzzing answer from memory. The policy makes no
/// `kubewarden`/`tracing` call: policy-server parses every log event, at
/// any level, on the request's time (SPEC §4 step 5).
pub trait Host {
    /// A `kubewarden`/`kubernetes`/`<operation>` host call.
    fn kubernetes(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// The waPC host policy-server provides: the one place the module calls it.
#[cfg(target_arch = "wasm32")]
pub struct WapcHost;

#[cfg(target_arch = "wasm32")]
impl Host for WapcHost {
    fn kubernetes(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        kubewarden_policy_sdk::wapc_guest::host_call("kubewarden", "kubernetes", operation, payload)
            .map_err(|e| crate::host_error_text(&e.to_string()).to_string())
    }
}

/// A failed lookup, phrased for an administrator reading a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    pub what: String,
    pub cause: String,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.what, self.cause)
    }
}

/// The JSON the host answered with. Objects parsed from it borrow their
/// strings from these bytes instead of copying them.
pub struct Answer {
    what: Subject,
    bytes: Vec<u8>,
}

/// What a lookup asked for, put into words only when an error needs them.
enum Subject {
    Node(String),
    Pod(String, String),
    Pods(String, Option<String>),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Node(node) => write!(f, "node {node:?}"),
            Subject::Pod(namespace, name) => write!(f, "pod \"{namespace}/{name}\""),
            Subject::Pods(namespace, Some(selector)) => write!(
                f,
                "pods in namespace {namespace:?} with label selector {selector:?}"
            ),
            Subject::Pods(namespace, None) => {
                write!(f, "pods in namespace {namespace:?} (no label selector)")
            }
        }
    }
}

impl Answer {
    /// The answer as a Node view.
    pub fn node(&self) -> Result<Node<'_>, LookupError> {
        self.read(scan::node)
    }

    /// The answer as a Pod view.
    pub fn pod(&self) -> Result<Pod<'_>, LookupError> {
        self.read(scan::pod)
    }

    /// A PodList answer, each pod handed to `f` as it is read; labels are
    /// read only when `labels` is set.
    pub fn each_pod<'a>(
        &'a self,
        labels: bool,
        f: impl FnMut(&mut Pod<'a>),
    ) -> Result<(), LookupError> {
        self.read(|text| scan::each_pod(text, labels, f))
    }

    fn read<'a, T>(
        &'a self,
        f: impl FnOnce(&'a str) -> Result<T, String>,
    ) -> Result<T, LookupError> {
        let malformed = |e: String| LookupError {
            what: self.what.to_string(),
            cause: format!("malformed answer from the cluster: {e}"),
        };
        let text =
            std::str::from_utf8(&self.bytes).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
        f(text).map_err(malformed)
    }
}

fn masks(fields: &[&str]) -> Option<BTreeSet<String>> {
    Some(fields.iter().map(|s| s.to_string()).collect())
}

fn call(
    host: &mut dyn Host,
    operation: &str,
    request: &impl serde::Serialize,
    what: Subject,
) -> Result<Answer, LookupError> {
    match serde_json::to_vec(request) {
        Ok(payload) => send(host, operation, &payload, what),
        Err(e) => Err(LookupError {
            what: what.to_string(),
            cause: e.to_string(),
        }),
    }
}

fn send(
    host: &mut dyn Host,
    operation: &str,
    payload: &[u8],
    what: Subject,
) -> Result<Answer, LookupError> {
    match host.kubernetes(operation, payload) {
        Ok(bytes) => Ok(Answer { what, bytes }),
        Err(cause) => Err(LookupError {
            what: what.to_string(),
            cause,
        }),
    }
}

/// `get_resource` for a node with the `metadata.labels` mask: spec and
/// status (with its large image list) stay on the host side. Cached by
/// policy-server for a few seconds, which node labels tolerate. The answer
/// parses as `objects::Node`.
pub fn node(host: &mut dyn Host, node: &str) -> Result<Answer, LookupError> {
    // The one lookup of every binding, written directly: the SDK's request
    // struct costs a dozen allocations to say the same bytes
    // (`node_payload_is_the_sdk_request` holds them equal).
    let mut payload = Vec::with_capacity(128 + node.len());
    payload.extend_from_slice(br#"{"api_version":"v1","kind":"Node","name":"#);
    crate::json::push_str(&mut payload, node);
    payload.extend_from_slice(
        br#","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#,
    );
    send(
        host,
        "get_resource",
        &payload,
        Subject::Node(node.to_string()),
    )
}

/// `get_resource` for the pod being bound. Uncached: the pod was created
/// moments ago and a cached miss would be wrong. Parses as `objects::Pod`.
pub fn pod(host: &mut dyn Host, namespace: &str, name: &str) -> Result<Answer, LookupError> {
    let req = GetResourceRequest {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        disable_cache: true,
        field_masks: masks(&["spec.priority", "spec.priorityClassName"]),
    };
    call(
        host,
        "get_resource",
        &req,
        Subject::Pod(namespace.to_string(), name.to_string()),
    )
}

/// The label the Deployment controller gives each ReplicaSet's pods, a hash
/// of the pod template: it changes with every rollout.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The tag kwctl records a host operation under in a replay session
/// (`--replay-host-capabilities-interactions`): the tools that write or
/// read sessions of this policy's calls take it from here.
pub fn kwctl_tag(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "get_resource" => "KubernetesGetResource",
        "list_resources_by_namespace" => "KubernetesListResourceNamespace",
        "list_resources_all" => "KubernetesListResourceAll",
        "can_i" => "KubernetesCanI",
        _ => return None,
    })
}

/// The label selector used to list candidate siblings: the pod's labels but
/// `pod-template-hash` (or, with `keys`, only the labels they name), as
/// `k=v` sorted by key, so that every pod of one workload asks with the same
/// selector. policy-server keeps one watch per distinct selector and never
/// releases it; the template hash would make that one watch per rollout.
/// `None` when no label is left: the list is then the whole namespace.
pub fn sibling_selector(labels: &LabelSet<'_>, keys: Option<&[String]>) -> Option<String> {
    let wanted = |k: &str| match keys {
        Some(keys) => keys.iter().any(|w| w == k),
        None => k != TEMPLATE_HASH_LABEL,
    };
    let mut pairs: Vec<&(Text<'_>, Text<'_>)> = labels
        .0
        .iter()
        .filter(|(k, _)| wanted(k.as_str()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k.as_str());
        out.push('=');
        out.push_str(v.as_str());
    }
    (!out.is_empty()).then_some(out)
}

/// `list_resources_by_namespace` for the pods matching `selector` (every
/// pod of the namespace when `None`). Parses pod by pod (`Answer::each_pod`).
pub fn list_pods(
    host: &mut dyn Host,
    namespace: &str,
    selector: Option<&str>,
) -> Result<Answer, LookupError> {
    let req = ListResourcesByNamespaceRequest {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: namespace.into(),
        label_selector: selector.map(str::to_string),
        field_selector: None,
        field_masks: masks(&[
            "spec.nodeName",
            "spec.priority",
            "spec.priorityClassName",
            "status.phase",
        ]),
    };
    call(
        host,
        "list_resources_by_namespace",
        &req,
        Subject::Pods(namespace.to_string(), selector.map(str::to_string)),
    )
}

#[cfg(test)]
pub mod fake {
    //! An in-memory host for tests: answers expected calls in order and
    //! fails loudly on anything else.
    use super::Host;
    use serde_json::Value;
    use std::collections::VecDeque;

    #[derive(Default)]
    pub struct FakeHost {
        pub expected: VecDeque<(String, Value, Result<Value, String>)>,
    }

    impl FakeHost {
        pub fn expect(mut self, op: &str, payload: Value, answer: Result<Value, String>) -> Self {
            self.expected.push_back((op.into(), payload, answer));
            self
        }
        pub fn done(&self) {
            assert!(
                self.expected.is_empty(),
                "host calls not made: {:?}",
                self.expected
            );
        }
    }

    impl Host for FakeHost {
        fn kubernetes(&mut self, op: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
            let got: Value = serde_json::from_slice(payload).unwrap();
            let (want_op, want, answer) = self
                .expected
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected host call {op} {got}"));
            assert_eq!(op, want_op);
            assert_eq!(got, want);
            answer.map(|v| serde_json::to_vec(&v).unwrap())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeHost;
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn node_lookup_payload_and_labels() {
        let mut host = FakeHost::default().expect(
            "get_resource",
            json!({"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}),
            Ok(json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","labels":{"a":"b"}}})),
        );
        let answer = node(&mut host, "n1").unwrap();
        let parsed = answer.node().unwrap();
        assert_eq!(parsed.metadata.labels.get("a"), Some("b"));
        host.done();
    }

    #[rstest]
    #[case::plain("n1")]
    #[case::dotted("ip-10-0-1-2.ec2.internal")]
    #[case::quote_and_backslash("q\"uote\\back")]
    #[case::control_character("tab\t")]
    #[case::non_ascii("ünï")]
    #[case::empty("")]
    fn node_payload_is_the_sdk_request(#[case] name: &str) {
        struct Echo(Vec<u8>);
        impl Host for Echo {
            fn kubernetes(&mut self, _: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
                self.0 = payload.to_vec();
                Ok(Vec::new())
            }
        }
        let mut host = Echo(Vec::new());
        node(&mut host, name).unwrap();
        let sdk = GetResourceRequest {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: name.into(),
            namespace: None,
            disable_cache: false,
            field_masks: masks(&["metadata.labels"]),
        };
        assert_eq!(
            String::from_utf8(host.0).unwrap(),
            serde_json::to_string(&sdk).unwrap()
        );
    }

    #[test]
    fn node_lookup_errors_name_the_node() {
        let mut host = FakeHost::default().expect(
            "get_resource",
            json!({"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}),
            Err("nodes \"n1\" not found".into()),
        );
        assert_eq!(
            node(&mut host, "n1").err().unwrap().to_string(),
            "cannot read node \"n1\": nodes \"n1\" not found"
        );
        let mut host = FakeHost::default().expect(
            "get_resource",
            json!({"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}),
            Ok(json!({"metadata":{"labels":{"a":7}}})),
        );
        let answer = node(&mut host, "n1").unwrap();
        assert_eq!(
            answer.node().unwrap_err().to_string(),
            "cannot read node \"n1\": malformed answer from the cluster: metadata.labels.a: expected a string, found a number"
        );
    }

    #[test]
    fn pod_lookup_payload() {
        let mut host = FakeHost::default().expect(
            "get_resource",
            json!({"api_version":"v1","kind":"Pod","name":"p","namespace":"ns","disable_cache":true,"field_masks":["spec.priority","spec.priorityClassName"]}),
            Ok(json!({"metadata":{"name":"p","uid":"u"}})),
        );
        let answer = pod(&mut host, "ns", "p").unwrap();
        assert_eq!(answer.pod().unwrap().metadata.uid.as_str(), "u");
        host.done();
    }

    #[test]
    fn sibling_selector_leaves_the_template_hash_out() {
        let labels = LabelSet(vec![
            ("pod-template-hash".into(), "abc".into()),
            ("tier".into(), "front".into()),
            ("app".into(), "web".into()),
        ]);
        assert_eq!(
            sibling_selector(&labels, None).as_deref(),
            Some("app=web,tier=front")
        );
        let only_hash = LabelSet(vec![("pod-template-hash".into(), "abc".into())]);
        assert_eq!(sibling_selector(&only_hash, None), None);
        assert_eq!(sibling_selector(&LabelSet::default(), None), None);
        // siblingLabels: only the keys named, the ones the pod carries.
        let keys = ["tier".to_string(), "app".to_string(), "team".to_string()];
        assert_eq!(
            sibling_selector(&labels, Some(&keys)).as_deref(),
            Some("app=web,tier=front")
        );
        let keys = ["team".to_string()];
        assert_eq!(sibling_selector(&labels, Some(&keys)), None);
        // Named explicitly, the hash is used as any other key.
        let keys = ["pod-template-hash".to_string()];
        assert_eq!(
            sibling_selector(&labels, Some(&keys)).as_deref(),
            Some("pod-template-hash=abc")
        );
    }

    fn list_req(selector: Option<&str>) -> serde_json::Value {
        json!({"api_version":"v1","kind":"Pod","namespace":"ns","label_selector":selector,"field_selector":null,
               "field_masks":["spec.nodeName","spec.priority","spec.priorityClassName","status.phase"]})
    }

    #[test]
    fn list_payload_and_selector() {
        let mut host = FakeHost::default().expect(
            "list_resources_by_namespace",
            list_req(Some("app=web")),
            Ok(json!({"apiVersion":"v1","kind":"PodList","metadata":{},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})),
        );
        let answer = list_pods(&mut host, "ns", Some("app=web")).unwrap();
        let mut names = Vec::new();
        answer
            .each_pod(true, |p| names.push(p.metadata.name.as_str().to_string()))
            .unwrap();
        assert_eq!(names, ["a", "b"]);
        host.done();
    }

    #[test]
    fn list_without_selector_names_the_namespace() {
        let mut host = FakeHost::default().expect(
            "list_resources_by_namespace",
            list_req(None),
            Err("pods is forbidden".into()),
        );
        assert_eq!(
            list_pods(&mut host, "ns", None).err().unwrap().to_string(),
            "cannot read pods in namespace \"ns\" (no label selector): pods is forbidden"
        );
        host.done();
    }
}
