//! Reading and mutating the raw `v1 Binding` JSON.
//!
//! The Binding stays a `serde_json::Value`: policy-server diffs the returned
//! object against the original, so every field we do not touch must come
//! back byte-for-byte equal, including ones no typed struct knows.

use serde_json::{Map, Value};

/// What a Binding says: which pod goes to which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub pod: String,
    pub namespace: String,
    pub node: String,
}

/// Reads the pod and node names. `request_namespace` is the admission
/// request's namespace, used when the Binding leaves its own out (the API
/// server defaults it from the URL).
pub fn read(object: &Value, request_namespace: &str) -> Result<Binding, String> {
    let meta = object.get("metadata");
    let pod = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if pod.is_empty() {
        return Err("the Binding has no metadata.name (the pod's name)".into());
    }
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(request_namespace);
    if namespace.is_empty() {
        return Err(format!("the Binding of pod {pod:?} has no namespace"));
    }
    let who = format!("the Binding of pod \"{namespace}/{pod}\"");
    let target = match object.get("target") {
        Some(Value::Object(t)) => t,
        Some(Value::Null) | None => return Err(format!("{who} has no target")),
        Some(_) => return Err(format!("{who} has a target that is not an object")),
    };
    match target.get("kind") {
        // The API server accepts a target without a kind and treats it as a node.
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if k == "Node" || k.is_empty() => {}
        Some(k) => return Err(format!("{who} targets a {k}, not a Node")),
    }
    let node = target.get("name").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() {
        return Err(format!("{who} has a target with an empty node name"));
    }
    Ok(Binding {
        pod: pod.to_string(),
        namespace: namespace.to_string(),
        node: node.to_string(),
    })
}

/// Adds annotations to `metadata.annotations`, creating the map when
/// missing and keeping what is there. The API server copies them onto the
/// pod, overwriting the same keys.
pub fn annotate(object: &mut Value, annotations: &[(&str, String)]) -> Result<(), String> {
    let Value::Object(root) = object else {
        return Err("the Binding is not a JSON object".into());
    };
    let meta = child_map(root, "metadata", "the Binding's metadata")?;
    let map = child_map(meta, "annotations", "the Binding's metadata.annotations")?;
    for (k, v) in annotations {
        map.insert((*k).to_string(), Value::String(v.clone()));
    }
    Ok(())
}

/// The map under `key`, created when absent or `null`; anything else there
/// is an error naming `what`.
fn child_map<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let child = parent
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if child.is_null() {
        *child = Value::Object(Map::new());
    }
    match child {
        Value::Object(map) => Ok(map),
        _ => Err(format!("{what} is not an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(target: Value) -> Value {
        json!({"kind": "Binding", "apiVersion": "v1",
               "metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": null},
               "target": target})
    }

    #[test]
    fn reads_pod_and_node() {
        let b = read(&binding(json!({"kind": "Node", "name": "n1"})), "other").unwrap();
        assert_eq!(
            b,
            Binding {
                pod: "p".into(),
                namespace: "ns".into(),
                node: "n1".into()
            }
        );
        let b = read(&binding(json!({"name": "n1", "apiVersion": "v1"})), "").unwrap();
        assert_eq!(b.node, "n1");
    }

    #[test]
    fn namespace_falls_back_to_the_request() {
        let b = read(
            &json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n"}}),
            "ns",
        )
        .unwrap();
        assert_eq!(b.namespace, "ns");
    }

    #[test]
    fn malformed_bindings_are_explained() {
        let cases = [
            (
                json!({"target": {"name": "n"}}),
                "the Binding has no metadata.name (the pod's name)",
            ),
            (
                json!({"metadata": {"name": 7}}),
                "the Binding has no metadata.name (the pod's name)",
            ),
            (
                json!(null),
                "the Binding has no metadata.name (the pod's name)",
            ),
            (
                binding(Value::Null),
                "the Binding of pod \"ns/p\" has no target",
            ),
            (
                json!({"metadata": {"name": "p", "namespace": "ns"}}),
                "the Binding of pod \"ns/p\" has no target",
            ),
            (
                binding(json!("n1")),
                "the Binding of pod \"ns/p\" has a target that is not an object",
            ),
            (
                binding(json!({"kind": "Pod", "name": "x"})),
                "the Binding of pod \"ns/p\" targets a \"Pod\", not a Node",
            ),
            (
                binding(json!({"kind": "Node", "name": ""})),
                "the Binding of pod \"ns/p\" has a target with an empty node name",
            ),
            (
                binding(json!({"kind": "Node"})),
                "the Binding of pod \"ns/p\" has a target with an empty node name",
            ),
            (
                binding(json!({"kind": "Node", "name": 3})),
                "the Binding of pod \"ns/p\" has a target with an empty node name",
            ),
        ];
        for (object, want) in cases {
            assert_eq!(read(&object, "ns").unwrap_err(), want, "{object}");
        }
        assert_eq!(
            read(
                &json!({"metadata": {"name": "p"}, "target": {"name": "n"}}),
                ""
            )
            .unwrap_err(),
            "the Binding of pod \"p\" has no namespace"
        );
    }

    #[test]
    fn annotate_creates_the_map() {
        let mut b = binding(json!({"kind": "Node", "name": "n1"}));
        let before = b.clone();
        annotate(&mut b, &[("k", "1".into())]).unwrap();
        assert_eq!(b["metadata"]["annotations"], json!({"k": "1"}));
        b["metadata"].as_object_mut().unwrap().remove("annotations");
        assert_eq!(b, before);
    }

    #[test]
    fn annotate_keeps_existing_annotations() {
        let mut b =
            json!({"metadata": {"name": "p", "annotations": {"a": "x", "k": "old"}}, "target": {}});
        annotate(&mut b, &[("k", "2".into()), ("z", "i".into())]).unwrap();
        assert_eq!(
            b["metadata"]["annotations"],
            json!({"a": "x", "k": "2", "z": "i"})
        );
        let mut b = json!({"metadata": {"name": "p", "annotations": null}});
        annotate(&mut b, &[("k", "2".into())]).unwrap();
        assert_eq!(b["metadata"]["annotations"], json!({"k": "2"}));
    }

    #[test]
    fn annotate_refuses_odd_shapes() {
        assert!(annotate(&mut json!([]), &[]).is_err());
        assert!(annotate(&mut json!({"metadata": 1}), &[]).is_err());
        assert!(annotate(&mut json!({"metadata": {"annotations": []}}), &[]).is_err());
    }
}
