//! Reading and mutating the `v1 Binding` as the text the request carried.
//!
//! policy-server diffs the returned object against the original, so every
//! field we do not touch must come back equal, including ones no typed
//! struct knows. Splicing the annotations into the original text keeps all
//! of it as sent, and costs a fraction of a round trip through a
//! `serde_json::Value` (a third of a typical evaluation).

use crate::json_error_text;
use crate::scan::{self, AnnotationsAt, KindAt, OWN_ANNOTATIONS, TargetAt};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a Binding says: which pod goes to which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub pod: String,
    pub namespace: String,
    pub node: String,
}

/// A Binding's text and where its annotations go.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    metadata_open: usize,
    annotations: AnnotationsAt,
}

/// Reads the pod and node names. `request_namespace` is the admission
/// request's namespace, used when the Binding leaves its own out (the API
/// server defaults it from the URL).
pub fn read<'a>(text: &'a str, request_namespace: &str) -> Result<(Binding, Document<'a>), String> {
    // Whatever is returned must parse on policy-server's side, which reads
    // it as a serde_json::Value: hold the text to that parser's rules
    // (numbers included) before anything else.
    serde_json::from_str::<Checked>(text)
        .map_err(|e| format!("the Binding is not valid JSON: {}", json_error_text(&e)))?;
    let b = scan::binding(text).map_err(|e| format!("the Binding cannot be read: {e}"))?;
    let pod = b.name.as_ref().map_or("", |n| n.as_str());
    let metadata_open = match b.metadata_open {
        Some(at) if !pod.is_empty() => at,
        _ => return Err("the Binding has no metadata.name (the pod's name)".into()),
    };
    let namespace = b
        .namespace
        .as_ref()
        .map(|n| n.as_str())
        .filter(|ns| !ns.is_empty())
        .unwrap_or(request_namespace);
    if namespace.is_empty() {
        return Err(format!("the Binding of pod {pod:?} has no namespace"));
    }
    let who = format!("the Binding of pod \"{namespace}/{pod}\"");
    let (kind, node) = match &b.target {
        TargetAt::Map { kind, name } => (kind, name.as_ref().map_or("", |n| n.as_str())),
        TargetAt::Null | TargetAt::Absent => return Err(format!("{who} has no target")),
        TargetAt::NotMap => return Err(format!("{who} has a target that is not an object")),
    };
    match kind {
        // The API server accepts a target without a kind and treats it as a node.
        KindAt::Absent | KindAt::Null => {}
        KindAt::Text(k) if k.as_str() == "Node" || k.as_str().is_empty() => {}
        KindAt::Text(k) => {
            let mut quoted = Vec::new();
            crate::json::push_str(&mut quoted, k.as_str());
            let quoted = String::from_utf8_lossy(&quoted);
            return Err(format!("{who} targets a {quoted}, not a Node"));
        }
        KindAt::Other(raw) => return Err(format!("{who} targets a {}, not a Node", raw.trim())),
    }
    if node.is_empty() {
        return Err(format!("{who} has a target with an empty node name"));
    }
    let binding = Binding {
        pod: pod.to_string(),
        namespace: namespace.to_string(),
        node: node.to_string(),
    };
    let doc = Document {
        text,
        metadata_open,
        annotations: b.annotations,
    };
    Ok((binding, doc))
}

/// The Binding's text with `annotations` set in `metadata.annotations`
/// (the map created when missing or `null`, other keys kept, the policy's
/// own keys overwritten). The API server copies them onto the pod,
/// overwriting the same keys. Only the policy's own annotations
/// (`scan::OWN_ANNOTATIONS`) can be set.
pub fn annotate(doc: &Document, annotations: &[(&str, String)]) -> Result<String, String> {
    let mut new_pairs = Vec::new();
    // (where, bytes replaced, replacement), in no particular order yet.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for (key, value) in annotations {
        let Some(index) = OWN_ANNOTATIONS.iter().position(|k| k == key) else {
            return Err(format!("{key} is not an annotation the policy sets"));
        };
        let existing = match &doc.annotations {
            AnnotationsAt::Map { own, .. } => own.get(index).cloned().flatten(),
            _ => None,
        };
        let mut quoted = Vec::with_capacity(value.len() + 2);
        crate::json::push_str(&mut quoted, value);
        match existing {
            Some(range) => edits.push((range.start, range.end - range.start, quoted)),
            None => {
                if !new_pairs.is_empty() {
                    new_pairs.push(b',');
                }
                crate::json::push_str(&mut new_pairs, key);
                new_pairs.push(b':');
                new_pairs.extend_from_slice(&quoted);
            }
        }
    }
    let wrapped = |pairs: &[u8]| [b"{".as_slice(), pairs, b"}"].concat();
    match &doc.annotations {
        // metadata holds at least the pod's name: a comma always follows.
        AnnotationsAt::Absent => {
            let mut ins = br#""annotations":"#.to_vec();
            ins.extend_from_slice(&wrapped(&new_pairs));
            ins.push(b',');
            edits.push((doc.metadata_open, 0, ins));
        }
        AnnotationsAt::Null(range) => {
            edits.push((range.start, range.end - range.start, wrapped(&new_pairs)));
        }
        AnnotationsAt::Map { open, empty, .. } => {
            if !new_pairs.is_empty() {
                if !empty {
                    new_pairs.push(b',');
                }
                edits.push((*open, 0, new_pairs));
            }
        }
        AnnotationsAt::Other => {
            return Err("the Binding's metadata.annotations is not an object".into());
        }
    }
    // At most four edits: put them in order without pulling a general
    // sort into the module.
    for i in 1..edits.len() {
        let mut j = i;
        while j > 0 && edits.get(j - 1).map(|e| e.0) > edits.get(j).map(|e| e.0) {
            edits.swap(j - 1, j);
            j -= 1;
        }
    }
    let bytes = doc.text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 160);
    let mut at = 0;
    for (start, removed, replacement) in edits {
        let keep = bytes.get(at..start).ok_or("the Binding's edits overlap")?;
        out.extend_from_slice(keep);
        out.extend_from_slice(&replacement);
        at = start + removed;
    }
    out.extend_from_slice(bytes.get(at..).unwrap_or_default());
    // Pieces of valid UTF-8 cut at ASCII delimiters.
    String::from_utf8(out).map_err(|e| format!("the annotated Binding is not UTF-8: {e}"))
}

/// A JSON document parsed by serde_json's rules, nothing kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
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
        let out = annotate(&doc, annotations)?;
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
    fn annotate_changes_nothing_else_in_the_text() {
        // Field order, blanks and numbers as sent: only the map changes.
        let text = "{\"kind\":\"Binding\", \"apiVersion\":\"v1\",\n \"metadata\": {\"name\":\"p\",\"generation\":12345678901234567890},\"target\":{\"name\":\"n\"}}";
        let (_, doc) = read(text, "ns").unwrap();
        assert_eq!(
            annotate(&doc, &[(COST, "-5".into())]).unwrap(),
            format!(
                "{{\"kind\":\"Binding\", \"apiVersion\":\"v1\",\n \"metadata\": {{\"annotations\":{{\"{COST}\":\"-5\"}},\"name\":\"p\",\"generation\":12345678901234567890}},\"target\":{{\"name\":\"n\"}}}}"
            )
        );
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
