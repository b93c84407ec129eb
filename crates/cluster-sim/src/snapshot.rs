//! Reads a cluster snapshot exported with plain kubectl into the simulator's
//! model: `kubectl get nodes,pods -A -o json` (a `v1 List`), or the output
//! of `kubectl get nodes -o json` and `kubectl get pods -A -o json` as two
//! files. YAML output (`-o yaml`) is read too.
//!
//! Only the fields the policy and the ReplicaSet controller look at are
//! read; every one of them is checked, and a bad one is reported with the
//! file, the item and the field path.

use crate::{Node, Owner, Pod};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Marks a static pod's mirror: the kubelet creates it already bound, so
/// no Binding (and no policy call) ever happened for it.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, Clone)]
pub struct SnapshotPod {
    /// The pod as the snapshot shows it (node, phase, readiness, ...).
    pub pod: Pod,
    /// When the scheduler bound it: the PodScheduled condition's transition
    /// time, else its creation time.
    pub scheduled: u64,
    pub mirror: bool,
    /// Where it was read from, for messages.
    pub source: String,
    /// `metadata.resourceVersion`: a change written with it is refused
    /// when the pod has changed since the snapshot.
    pub resource_version: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub files: Vec<PathBuf>,
    pub nodes: Vec<Node>,
    pub pods: Vec<SnapshotPod>,
    /// Objects of other kinds in the files (a `kubectl get all` export),
    /// by kind: not an error, they play no part.
    pub ignored: BTreeMap<String, usize>,
    /// The newest timestamp in the snapshot: the default "now".
    pub latest: u64,
}

impl Snapshot {
    pub fn load(paths: &[PathBuf]) -> Result<Snapshot, String> {
        if paths.is_empty() {
            return Err(
                "no snapshot file given (kubectl get nodes,pods -A -o json > cluster.json)".into(),
            );
        }
        let mut snapshot = Snapshot::default();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            snapshot.add(&path.display().to_string(), &text)?;
            snapshot.files.push(path.clone());
        }
        snapshot.check()?;
        Ok(snapshot)
    }

    /// Adds the objects of one kubectl output, named `file` in messages.
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), String> {
        let document = parse_document(file, text)?;
        let top = Obj::new(&document, file.to_string(), String::new());
        let kind = top.opt_str("kind")?.unwrap_or("");
        match kind {
            "List" | "NodeList" | "PodList" => {
                let implied = kind.strip_suffix("List").filter(|k| !k.is_empty());
                let items = top.array("items")?;
                for (i, item) in items.iter().enumerate() {
                    let at = format!("items[{i}]");
                    self.add_object(file, &at, item, implied)?;
                }
                Ok(())
            }
            "Node" | "Pod" => self.add_object(file, "", &document, None),
            "" => Err(format!(
                "{file}: no \"kind\": expected kubectl's JSON output, a List (kubectl get nodes,pods -A -o json), a NodeList, a PodList, a Node or a Pod"
            )),
            other => Err(format!(
                "{file}: kind {other:?}: expected a List (kubectl get nodes,pods -A -o json), a NodeList, a PodList, a Node or a Pod"
            )),
        }
    }

    fn add_object(
        &mut self,
        file: &str,
        at: &str,
        item: &Value,
        implied: Option<&str>,
    ) -> Result<(), String> {
        let place = if at.is_empty() {
            file.to_string()
        } else {
            format!("{file}: {at}")
        };
        if !item.is_object() {
            return Err(format!(
                "{place}: expected an object, found {}",
                kind_of(item)
            ));
        }
        let probe = Obj::new(item, place.clone(), String::new());
        let kind = match (probe.opt_str("kind")?, implied) {
            (Some(k), _) => k,
            (None, Some(k)) => k,
            (None, None) => {
                return Err(format!(
                    "{place}: no \"kind\" (kubectl writes one on every item of a List)"
                ));
            }
        };
        let name = probe.opt_str("metadata.name")?.unwrap_or("");
        let namespace = probe.opt_str("metadata.namespace")?.unwrap_or("");
        match kind {
            "Node" => {
                let obj = Obj::new(item, format!("{place} (Node {name})"), String::new());
                let node = read_node(&obj)?;
                self.nodes.push(node);
                self.note_times(&obj, &["metadata.creationTimestamp"])?;
            }
            "Pod" => {
                let obj = Obj::new(
                    item,
                    format!("{place} (Pod {namespace}/{name})"),
                    String::new(),
                );
                let pod = read_pod(&obj, &place)?;
                self.latest = self.latest.max(pod.pod.created).max(pod.scheduled);
                self.latest = self.latest.max(pod.pod.ready_since);
                self.pods.push(pod);
            }
            other => *self.ignored.entry(other.to_string()).or_default() += 1,
        }
        Ok(())
    }

    fn note_times(&mut self, obj: &Obj, paths: &[&str]) -> Result<(), String> {
        for p in paths {
            if let Some(t) = obj.opt_time(p)? {
                self.latest = self.latest.max(t);
            }
        }
        Ok(())
    }

    /// The same node or pod twice (a file given twice, overlapping exports)
    /// would make the replay ambiguous. `load` checks once every file is
    /// added.
    pub fn check(&self) -> Result<(), String> {
        let mut nodes = BTreeSet::new();
        for n in &self.nodes {
            if !nodes.insert(n.name.as_str()) {
                return Err(format!(
                    "node {} appears more than once in the snapshot",
                    n.name
                ));
            }
        }
        let mut pods = BTreeSet::new();
        for p in &self.pods {
            if !pods.insert((p.pod.namespace.as_str(), p.pod.name.as_str())) {
                return Err(format!(
                    "{}: pod {}/{} appears more than once in the snapshot",
                    p.source, p.pod.namespace, p.pod.name
                ));
            }
        }
        if self.nodes.is_empty() && self.pods.is_empty() {
            return Err("the snapshot holds no node and no pod".into());
        }
        Ok(())
    }
}

fn parse_document(file: &str, text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("{file}: not valid JSON: {e}"))
    } else {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| format!("{file}: not valid JSON or YAML: {e}"))?;
        serde_json::to_value(yaml).map_err(|e| format!("{file}: {e}"))
    }
}

fn read_node(obj: &Obj) -> Result<Node, String> {
    Ok(Node {
        name: obj.req_str("metadata.name")?.to_string(),
        labels: obj.string_map("metadata.labels")?,
    })
}

fn read_pod(obj: &Obj, source: &str) -> Result<SnapshotPod, String> {
    let name = obj.req_str("metadata.name")?.to_string();
    let namespace = obj.req_str("metadata.namespace")?.to_string();
    let uid = match obj.opt_str("metadata.uid")? {
        Some(u) => u.to_string(),
        None => format!("{namespace}/{name}"),
    };
    let created = obj.opt_time("metadata.creationTimestamp")?.ok_or_else(|| {
        format!(
            "{}: metadata.creationTimestamp: missing (kubectl always prints it)",
            obj.ctx
        )
    })?;
    let mut owner = None;
    for (i, r) in obj.array("metadata.ownerReferences")?.iter().enumerate() {
        let r = obj.child(r, &format!("metadata.ownerReferences[{i}]"));
        if r.opt_bool("controller")?.unwrap_or(false) {
            owner = Some(Owner {
                kind: r.req_str("kind")?.to_string(),
                name: r.req_str("name")?.to_string(),
                uid: r.req_str("uid")?.to_string(),
            });
        }
    }
    let priority = match obj.opt_i64("spec.priority")? {
        None => None,
        Some(p) => Some(
            i32::try_from(p)
                .map_err(|_| format!("{}: spec.priority: {p} is not an int32", obj.ctx))?,
        ),
    };
    let mut ready = false;
    let mut ready_since = 0;
    let mut scheduled = None;
    for (i, c) in obj.array("status.conditions")?.iter().enumerate() {
        let c = obj.child(c, &format!("status.conditions[{i}]"));
        let is_true = c.opt_str("status")? == Some("True");
        match c.opt_str("type")? {
            Some("Ready") if is_true => {
                ready = true;
                ready_since = c.opt_time("lastTransitionTime")?.unwrap_or(0);
            }
            Some("PodScheduled") if is_true => scheduled = c.opt_time("lastTransitionTime")?,
            _ => {}
        }
    }
    let mut restarts = 0u32;
    for (i, s) in obj.array("status.containerStatuses")?.iter().enumerate() {
        let s = obj.child(s, &format!("status.containerStatuses[{i}]"));
        if let Some(n) = s.opt_i64("restartCount")? {
            restarts = restarts.max(u32::try_from(n).unwrap_or(0));
        }
    }
    let annotations = obj.string_map("metadata.annotations")?;
    let mirror = annotations.contains_key(MIRROR_ANNOTATION);
    let node_name = obj
        .opt_str("spec.nodeName")?
        .filter(|n| !n.is_empty())
        .map(String::from);
    let pod = Pod {
        name,
        namespace,
        uid,
        labels: obj.string_map("metadata.labels")?,
        annotations,
        owner,
        node_name,
        priority_class_name: obj.opt_str("spec.priorityClassName")?.map(String::from),
        priority,
        phase: obj
            .opt_str("status.phase")?
            .unwrap_or("Pending")
            .to_string(),
        ready,
        deleting: obj.get("metadata.deletionTimestamp").is_some(),
        created,
        ready_since,
        restarts,
    };
    Ok(SnapshotPod {
        scheduled: scheduled.unwrap_or(created),
        mirror,
        source: source.to_string(),
        resource_version: obj.opt_str("metadata.resourceVersion")?.map(String::from),
        pod,
    })
}

/// A JSON object being read, with where it came from for messages.
struct Obj<'a> {
    value: &'a Value,
    /// "file: items[3] (Pod shop/web-1)".
    ctx: String,
    /// Path of `value` inside the item, "" at the item itself.
    prefix: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, ctx: String, prefix: String) -> Self {
        Obj { value, ctx, prefix }
    }

    fn child(&self, value: &'a Value, path: &str) -> Obj<'a> {
        Obj::new(value, self.ctx.clone(), self.path(path))
    }

    fn path(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}.{path}", self.prefix)
        }
    }

    /// The value at a dotted path; JSON `null` counts as absent, as it does
    /// for the API server.
    fn get(&self, path: &str) -> Option<&'a Value> {
        let mut v = self.value;
        for part in path.split('.') {
            v = v.get(part)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn wrong(&self, path: &str, expected: &str, found: &Value) -> String {
        format!(
            "{}: {}: expected {expected}, found {}",
            self.ctx,
            self.path(path),
            kind_of(found)
        )
    }

    fn opt_str(&self, path: &str) -> Result<Option<&'a str>, String> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(path, "a string", other)),
        }
    }

    fn req_str(&self, path: &str) -> Result<&'a str, String> {
        match self.opt_str(path)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(format!("{}: {}: missing", self.ctx, self.path(path))),
        }
    }

    fn opt_bool(&self, path: &str) -> Result<Option<bool>, String> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(path, "true or false", other)),
        }
    }

    fn opt_i64(&self, path: &str) -> Result<Option<i64>, String> {
        match self.get(path) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(path, "an integer", v)),
        }
    }

    fn opt_time(&self, path: &str) -> Result<Option<u64>, String> {
        match self.opt_str(path)? {
            None => Ok(None),
            Some(s) => parse_timestamp(s)
                .map(Some)
                .map_err(|e| format!("{}: {}: {e}", self.ctx, self.path(path))),
        }
    }

    fn array(&self, path: &str) -> Result<&'a [Value], String> {
        match self.get(path) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong(path, "a list", other)),
        }
    }

    fn string_map(&self, path: &str) -> Result<BTreeMap<String, String>, String> {
        match self.get(path) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(self.wrong(&format!("{path}.{k}"), "a string", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong(path, "a map of strings", other)),
        }
    }
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Seconds since the epoch of an RFC 3339 time as the API server writes it
/// (`2026-11-20T08:15:02Z`; fractions and offsets are accepted too).
pub fn parse_timestamp(s: &str) -> Result<u64, String> {
    let at = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|_| format!("{s:?} is not an RFC 3339 time such as 2026-11-20T08:15:02Z"))?;
    u64::try_from(at.timestamp()).map_err(|_| format!("{s:?} is before 1970"))
}

/// `secs` since the epoch as the API server writes times.
pub fn format_timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::epoch("1970-01-01T00:00:00Z")]
    #[case::api_server_form("2026-11-20T08:15:02Z")]
    #[case::leap_day("2000-02-29T23:59:59Z")]
    fn timestamps_round_trip(#[case] written: &str) {
        assert_eq!(format_timestamp(parse_timestamp(written).unwrap()), written);
    }

    #[rstest]
    #[case::fraction("2026-11-20T08:15:02.123456Z")]
    #[case::positive_offset("2026-11-20T09:15:02+01:00")]
    #[case::negative_offset("2026-11-20T07:45:02-00:30")]
    #[case::lower_case("2026-11-20t08:15:02z")]
    fn other_forms_of_the_same_time(#[case] written: &str) {
        assert_eq!(
            parse_timestamp(written),
            parse_timestamp("2026-11-20T08:15:02Z")
        );
    }

    /// Each is refused with a message naming it, never a panic: offsets
    /// into the text must not split a character.
    #[rstest]
    #[case::a_word("yesterday")]
    #[case::non_ascii_after_seconds("2026-11-30T12:00:00é1234")]
    #[case::non_ascii_offset_sign("2026-11-30T12:00:00é01:00")]
    #[case::non_ascii_in_offset("2026-11-30T12:00:00+0é:0")]
    #[case::non_ascii_after_fraction("2026-11-30T12:00:00.5é")]
    #[case::non_ascii_in_seconds("2026-11-30T12:00:0é0Z")]
    #[case::signed_offset_hours("2026-11-30T12:00:00+-1:00")]
    #[case::offset_out_of_range("2026-11-30T12:00:00+24:00")]
    #[case::empty_fraction("2026-11-30T12:00:00.Z")]
    #[case::no_zone("2026-11-30T12:00:00")]
    #[case::month_13("2026-13-30T12:00:00Z")]
    #[case::before_1970("1969-12-31T23:59:59Z")]
    fn bad_timestamps_are_refused(#[case] written: &str) {
        let message = parse_timestamp(written).unwrap_err();
        assert!(
            message.starts_with(&format!("{written:?} is ")),
            "{message}"
        );
    }

    fn add(text: &str) -> Result<Snapshot, String> {
        let mut s = Snapshot::default();
        s.add("cluster.json", text)?;
        s.check()?;
        Ok(s)
    }

    #[test]
    fn reads_a_kubectl_list() {
        let s = add(r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","labels":{"zone":"a"},"creationTimestamp":"2026-11-01T00:00:00Z"}},
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","uid":"u1",
             "creationTimestamp":"2026-11-02T00:00:00Z",
             "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"rs1","controller":true}]},
           "spec":{"nodeName":"n1","priority":0},
           "status":{"phase":"Running","conditions":[
             {"type":"PodScheduled","status":"True","lastTransitionTime":"2026-11-02T00:00:01Z"},
             {"type":"Ready","status":"True","lastTransitionTime":"2026-11-02T00:00:09Z"}],
             "containerStatuses":[{"name":"a","restartCount":2},{"name":"b","restartCount":5}]}},
          {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"}}]}"#)
        .unwrap();
        assert_eq!(s.nodes.len(), 1);
        let p = &s.pods[0];
        assert_eq!(p.pod.owner.as_ref().unwrap().uid, "rs1");
        assert_eq!(
            p.scheduled,
            parse_timestamp("2026-11-02T00:00:01Z").unwrap()
        );
        assert!(p.pod.ready);
        assert_eq!(p.pod.restarts, 5);
        assert_eq!(s.latest, parse_timestamp("2026-11-02T00:00:09Z").unwrap());
        assert_eq!(s.ignored["Service"], 1);
    }

    #[test]
    fn typed_lists_imply_the_item_kind() {
        let s = add(r#"{"kind":"NodeList","items":[{"metadata":{"name":"n1"}}]}"#).unwrap();
        assert_eq!(s.nodes[0].name, "n1");
    }

    #[rstest]
    #[case::label_not_a_string(
        r#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"n1","labels":{"zone":3}}}]}"#,
        "cluster.json: items[0] (Node n1): metadata.labels.zone: expected a string, found 3"
    )]
    #[case::bad_condition_time(
        r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns","creationTimestamp":"2026-11-02T00:00:00Z"},"status":{"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"soon"}]}}]}"#,
        "cluster.json: items[0] (Pod ns/p): status.conditions[0].lastTransitionTime: \"soon\" is not an RFC 3339 time such as 2026-11-20T08:15:02Z"
    )]
    #[case::non_ascii_in_a_time(
        r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns","creationTimestamp":"2026-11-30T12:00:00é1234"}}]}"#,
        "cluster.json: items[0] (Pod ns/p): metadata.creationTimestamp: \"2026-11-30T12:00:00é1234\" is not an RFC 3339 time such as 2026-11-20T08:15:02Z"
    )]
    #[case::non_ascii_in_a_node_time(
        r#"{"kind":"Node","metadata":{"name":"n1","creationTimestamp":"2026-11-30T12:00:00+0é:0"}}"#,
        "cluster.json (Node n1): metadata.creationTimestamp: \"2026-11-30T12:00:00+0é:0\" is not an RFC 3339 time such as 2026-11-20T08:15:02Z"
    )]
    #[case::missing_namespace(
        r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","creationTimestamp":"2026-11-02T00:00:00Z"}}]}"#,
        "cluster.json: items[0] (Pod /p): metadata.namespace: missing"
    )]
    #[case::item_without_kind(
        r#"{"kind":"List","items":[{"metadata":{"name":"p"}}]}"#,
        "cluster.json: items[0]: no \"kind\" (kubectl writes one on every item of a List)"
    )]
    #[case::not_a_list_kind(
        r#"{"kind":"Deployment"}"#,
        "cluster.json: kind \"Deployment\": expected a List (kubectl get nodes,pods -A -o json), a NodeList, a PodList, a Node or a Pod"
    )]
    #[case::items_not_a_list(
        r#"{"kind":"List","items":{}}"#,
        "cluster.json: items: expected a list, found an object"
    )]
    #[case::priority_beyond_int32(
        r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns","creationTimestamp":"2026-11-02T00:00:00Z"},"spec":{"priority":3000000000}}]}"#,
        "cluster.json: items[0] (Pod ns/p): spec.priority: 3000000000 is not an int32"
    )]
    #[case::node_twice(
        r#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"n"}},{"kind":"Node","metadata":{"name":"n"}}]}"#,
        "node n appears more than once in the snapshot"
    )]
    fn errors_name_the_file_item_and_field(#[case] text: &str, #[case] want: &str) {
        assert_eq!(add(text).unwrap_err(), want);
    }

    #[test]
    fn truncated_json_is_named() {
        assert!(
            add("{\"kind\": ")
                .unwrap_err()
                .starts_with("cluster.json: not valid JSON: EOF while parsing")
        );
    }

    #[test]
    fn reads_yaml_output() {
        let s =
            add("apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  metadata:\n    name: n1\n")
                .unwrap();
        assert_eq!(s.nodes[0].name, "n1");
    }
}
