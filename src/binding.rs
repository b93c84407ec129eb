//! Reading and mutating the `v1 Binding` the request carried.
//!
//! policy-server diffs the returned object against the original, so every
//! field we do not touch must come back equal, including ones no typed
//! struct knows: the Binding is read once as a `serde_json::Value`, the
//! parser policy-server itself reads it with, and the annotations are set
//! in that value.

use crate::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use serde_json::{Map, Value};

/// What a Binding says: which pod goes to which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub pod: String,
    pub namespace: String,
    pub node: String,
}

/// The Binding as it was sent, to be annotated.
#[derive(Debug)]
pub struct Document(Value);

/// The annotations the policy sets; no other key can be set.
const OWN_ANNOTATIONS: [&str; 3] = [COST_ANNOTATION, ZONE_ANNOTATION, RANK_ANNOTATION];

/// Reads the pod and node names. `request_namespace` is the admission
/// request's namespace, used when the Binding leaves its own out (the API
/// server defaults it from the URL). Fields of the wrong type read as
/// absent; of repeated keys, the last one counts, as for the API server.
pub fn read(text: &str, request_namespace: &str) -> Result<(Binding, Document), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the Binding is not valid JSON: {}",
            crate::json_error_text(&e)
        )
    })?;
    let text_at = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let metadata = doc.get("metadata").unwrap_or(&Value::Null);
    let pod = text_at(metadata, "name");
    if pod.is_empty() {
        return Err("the Binding has no metadata.name (the pod's name)".into());
    }
    let mut namespace = text_at(metadata, "namespace");
    if namespace.is_empty() {
        namespace = request_namespace.to_string();
    }
    if namespace.is_empty() {
        return Err(format!("the Binding of pod {pod:?} has no namespace"));
    }
    let who = format!("the Binding of pod \"{namespace}/{pod}\"");
    let target = match doc.get("target") {
        None | Some(Value::Null) => return Err(format!("{who} has no target")),
        Some(t) if !t.is_object() => {
            return Err(format!("{who} has a target that is not an object"));
        }
        Some(t) => t,
    };
    match target.get("kind") {
        // The API server accepts a target without a kind and treats it as a node.
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if k == "Node" || k.is_empty() => {}
        Some(other) => return Err(format!("{who} targets a {other}, not a Node")),
    }
    let node = text_at(target, "name");
    if node.is_empty() {
        return Err(format!("{who} has a target with an empty node name"));
    }
    let binding = Binding {
        pod,
        namespace,
        node,
    };
    Ok((binding, Document(doc)))
}

/// The Binding's text with `annotations` set in `metadata.annotations`
/// (the map created when missing or `null`, other keys kept, the policy's
/// own keys overwritten). The API server copies them onto the pod,
/// overwriting the same keys. Only the policy's own annotations can be set.
pub fn annotate(doc: Document, annotations: &[(&str, String)]) -> Result<String, String> {
    let mut doc = doc.0;
    // `read` found metadata to be a map holding the pod's name.
    let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err("the Binding's metadata is not an object".into());
    };
    let map = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if map.is_null() {
        *map = Value::Object(Map::new());
    }
    let Some(map) = map.as_object_mut() else {
        return Err("the Binding's metadata.annotations is not an object".into());
    };
    for (key, value) in annotations {
        if !OWN_ANNOTATIONS.contains(key) {
            return Err(format!("{key} is not an annotation the policy sets"));
        }
        map.insert(key.to_string(), Value::String(value.clone()));
    }
    serde_json::to_string(&doc).map_err(|e| format!("the annotated Binding: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::{Value, json};

    fn read_value(object: &Value, ns: &str) -> Result<Binding, String> {
        let text = object.to_string();
        read(&text, ns).map(|(b, _)| b)
    }

    /// Annotates `text` and returns the result parsed.
    fn annotated(text: &str, annotations: &[(&str, String)]) -> Result<Value, String> {
        let (_, doc) = read(text, "ns")?;
        let out = annotate(doc, annotations)?;
        Ok(serde_json::from_str(&out).unwrap())
    }

    const COST: &str = crate::objects::COST_ANNOTATION;
    const ZONE: &str = crate::objects::ZONE_ANNOTATION;

    fn binding(target: Value) -> Value {
        json!({"kind": "Binding", "apiVersion": "v1",
               "metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": null},
               "target": target})
    }

    #[test]
    fn reads_pod_and_node() {
        let b = read_value(&binding(json!({"kind": "Node", "name": "n1"})), "other").unwrap();
        assert_eq!(
            b,
            Binding {
                pod: "p".into(),
                namespace: "ns".into(),
                node: "n1".into()
            }
        );
        let b = read_value(&binding(json!({"name": "n1", "apiVersion": "v1"})), "").unwrap();
        assert_eq!(b.node, "n1");
    }

    #[test]
    fn namespace_falls_back_to_the_request() {
        let b = read_value(
            &json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n"}}),
            "ns",
        )
        .unwrap();
        assert_eq!(b.namespace, "ns");
    }

    #[rstest]
    #[case::no_metadata(
        json!({"target": {"name": "n"}}),
        "the Binding has no metadata.name (the pod's name)"
    )]
    #[case::name_not_a_string(
        json!({"metadata": {"name": 7}}),
        "the Binding has no metadata.name (the pod's name)"
    )]
    #[case::null(
        json!(null),
        "the Binding has no metadata.name (the pod's name)"
    )]
    #[case::null_target(binding(Value::Null), "the Binding of pod \"ns/p\" has no target")]
    #[case::no_target(
        json!({"metadata": {"name": "p", "namespace": "ns"}}),
        "the Binding of pod \"ns/p\" has no target"
    )]
    #[case::target_not_an_object(
        binding(json!("n1")),
        "the Binding of pod \"ns/p\" has a target that is not an object"
    )]
    #[case::target_a_pod(
        binding(json!({"kind": "Pod", "name": "x"})),
        "the Binding of pod \"ns/p\" targets a \"Pod\", not a Node"
    )]
    #[case::empty_node_name(
        binding(json!({"kind": "Node", "name": ""})),
        "the Binding of pod \"ns/p\" has a target with an empty node name"
    )]
    #[case::no_node_name(
        binding(json!({"kind": "Node"})),
        "the Binding of pod \"ns/p\" has a target with an empty node name"
    )]
    #[case::node_name_not_a_string(
        binding(json!({"kind": "Node", "name": 3})),
        "the Binding of pod \"ns/p\" has a target with an empty node name"
    )]
    fn malformed_bindings_are_explained(#[case] object: Value, #[case] message: &str) {
        assert_eq!(read_value(&object, "ns").unwrap_err(), message);
    }

    #[test]
    fn a_binding_without_namespace_is_explained() {
        assert_eq!(
            read_value(
                &json!({"metadata": {"name": "p"}, "target": {"name": "n"}}),
                ""
            )
            .unwrap_err(),
            "the Binding of pod \"p\" has no namespace"
        );
    }

    #[test]
    fn annotate_creates_the_map() {
        let b = binding(json!({"kind": "Node", "name": "n1"}));
        let mut got = annotated(&b.to_string(), &[(COST, "1".into())]).unwrap();
        assert_eq!(got["metadata"]["annotations"], json!({COST: "1"}));
        got["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert_eq!(got, b);
    }

    #[test]
    fn annotate_keeps_existing_annotations() {
        let text = format!(
            r#"{{"metadata": {{"name": "p", "annotations": {{"a": "x", "{COST}": "old"}}}}, "target": {{"name": "n"}}}}"#
        );
        let got = annotated(&text, &[(COST, "2".into()), (ZONE, "i".into())]).unwrap();
        assert_eq!(
            got["metadata"]["annotations"],
            json!({"a": "x", COST: "2", ZONE: "i"})
        );
        let text = r#"{"metadata": {"name": "p", "annotations": null}, "target": {"name": "n"}}"#;
        let got = annotated(text, &[(COST, "2".into())]).unwrap();
        assert_eq!(got["metadata"]["annotations"], json!({COST: "2"}));
        let text = r#"{"metadata": {"name": "p", "annotations": { }}, "target": {"name": "n"}}"#;
        let got = annotated(text, &[(COST, "2".into()), (ZONE, "i".into())]).unwrap();
        assert_eq!(
            got["metadata"]["annotations"],
            json!({COST: "2", ZONE: "i"})
        );
    }

    #[test]
    fn annotate_changes_nothing_else() {
        // Unknown fields and numbers policy-server reads the same way.
        let text = "{\"kind\":\"Binding\", \"apiVersion\":\"v1\",\n \"metadata\": {\"name\":\"p\",\"generation\":12345678901234567890,\"x\":[-0.5,1e3,{}]},\"target\":{\"name\":\"n\"},\"extra\":{\"a\":null}}";
        let mut got = annotated(text, &[(COST, "-5".into())]).unwrap();
        assert_eq!(got["metadata"]["annotations"], json!({COST: "-5"}));
        got["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert_eq!(got, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn annotate_writes_into_the_last_of_repeated_keys() {
        // serde_json (and so policy-server) keeps the last of repeated keys.
        let text = format!(
            r#"{{"metadata": {{"name": "old"}}, "metadata": {{"name": "p", "annotations": {{"{COST}": "1", "{COST}": "2"}}}}, "target": {{"name": "n"}}}}"#
        );
        let got = annotated(&text, &[(COST, "3".into())]).unwrap();
        assert_eq!(got["metadata"]["annotations"], json!({COST: "3"}));
        assert_eq!(got["metadata"]["name"], "p");
    }

    #[test]
    fn annotate_refuses_odd_shapes() {
        let text = r#"{"metadata": {"name": "p", "annotations": ["x"]}, "target": {"name": "n"}}"#;
        assert_eq!(
            annotated(text, &[(COST, "1".into())]).unwrap_err(),
            "the Binding's metadata.annotations is not an object"
        );
        let text = r#"{"metadata": {"name": "p"}, "target": {"name": "n"}}"#;
        assert_eq!(
            annotated(text, &[("k", "1".into())]).unwrap_err(),
            "k is not an annotation the policy sets"
        );
    }

    #[test]
    fn only_valid_json_is_read() {
        for (text, want) in [
            (
                r#"{"x": 1e400}"#,
                "the Binding is not valid JSON: number out of range",
            ),
            (
                r#"{"x": tru}"#,
                "the Binding is not valid JSON: expected ident",
            ),
            (
                r#"{"x": "\q"}"#,
                "the Binding is not valid JSON: invalid escape",
            ),
            (
                r#"{"x": 1} 2"#,
                "the Binding is not valid JSON: trailing characters",
            ),
        ] {
            assert_eq!(read(text, "ns").unwrap_err(), want, "{text}");
        }
    }
}
