//! Reading and mutating the `v1 Binding` as the text the request carried.
//!
//! policy-server diffs the returned object against the original, so every
//! field we do not touch must come back equal, including ones no typed
//! struct knows. One serde pass reads the Binding by serde_json's rules
//! (those policy-server reads it back with) and notes where its
//! annotations go; the annotations are then spliced into the original
//! text. A round trip through a `serde_json::Value` instead costs about
//! 20,000 more instructions per request, two thirds of them re-escaping
//! strings that did not change (docs/performance.md).

use crate::objects::Text;
use crate::view::{Found, Level, OWN_ANNOTATIONS, Shape, end_of, pass, start_of, string};
use serde_json::value::RawValue;
use std::ops::Range;

/// What a Binding says: which pod goes to which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub pod: String,
    pub namespace: String,
    pub node: String,
}

impl Binding {
    /// How messages about this Binding begin: `the Binding of pod "ns/name"`.
    pub fn described(&self) -> String {
        described(&self.namespace, &self.pod)
    }
}

fn described(namespace: &str, pod: &str) -> String {
    format!("the Binding of pod \"{namespace}/{pod}\"")
}

/// A Binding's text and where its annotations go.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    /// Just after the value of `metadata.name`.
    name_end: usize,
    annotations: AnnotationsAt,
}

/// `metadata.annotations` of a Binding.
#[derive(Debug, Default, PartialEq, Eq)]
enum AnnotationsAt {
    #[default]
    Absent,
    /// The bytes of the `null`.
    Null(Range<usize>),
    /// Just after the `{`; whether the map has members; the bytes of the
    /// values already there under the policy's own keys.
    Map {
        open: usize,
        empty: bool,
        own: [Option<Range<usize>>; 3],
    },
    Other,
}

/// Reads the pod and node names. `request_namespace` is the admission
/// request's namespace, used when the Binding leaves its own out (the API
/// server defaults it from the URL). Fields of the wrong type read as
/// absent, as they would from a `serde_json::Value`; when a key repeats,
/// the last one counts, as it does for the API server.
pub fn read<'a>(text: &'a str, request_namespace: &str) -> Result<(Binding, Document<'a>), String> {
    let f = fields(text).map_err(|e| {
        format!(
            "the Binding is not valid JSON: {}",
            crate::json_error_text(&e)
        )
    })?;
    let pod = f.pod.as_ref().map_or("", Text::as_str);
    if pod.is_empty() {
        return Err("the Binding has no metadata.name (the pod's name)".into());
    }
    let namespace = match f.namespace.as_ref().map_or("", Text::as_str) {
        "" => request_namespace,
        ns => ns,
    };
    if namespace.is_empty() {
        return Err(format!("the Binding of pod {pod:?} has no namespace"));
    }
    let who = described(namespace, pod);
    match f.target {
        Shape::Map => {}
        Shape::Absent | Shape::Null => return Err(format!("{who} has no target")),
        Shape::Other => return Err(format!("{who} has a target that is not an object")),
    }
    match (f.kind.as_ref().map(Text::as_str), f.kind_raw) {
        // The API server accepts a target without a kind and treats it as a node.
        (_, None | Some("null")) | (Some("Node" | ""), _) => {}
        (_, Some(raw)) => return Err(format!("{who} targets a {raw}, not a Node")),
    }
    let node = f.node.as_ref().map_or("", Text::as_str);
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
        name_end: f.name_end,
        annotations: f.annotations,
    };
    Ok((binding, doc))
}

/// The fields of a Binding the policy reads, strings decoded (`None` when
/// absent or of another type).
struct Fields<'a> {
    pod: Option<Text<'a>>,
    name_end: usize,
    namespace: Option<Text<'a>>,
    annotations: AnnotationsAt,
    target: Shape,
    kind: Option<Text<'a>>,
    /// The text of `target.kind`, to quote it when it is not a Node.
    kind_raw: Option<&'a str>,
    node: Option<Text<'a>>,
}

/// Reads the Binding in one pass over the whole text, checked by
/// serde_json's rules before anything is made of it; the annotations map,
/// when there is one, is read once more from its own text.
fn fields(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    let mut found = Found::default();
    pass(text, Level::Binding, &mut found)?;
    Ok(Fields {
        pod: string(found.name)?,
        name_end: found.name.map_or(0, |raw| end_of(text, raw)),
        namespace: string(found.namespace)?,
        annotations: annotations_at(text, found.annotations)?,
        target: found.target,
        kind: string(found.kind)?,
        kind_raw: found.kind.map(RawValue::get),
        node: string(found.node)?,
    })
}

/// Locates `metadata.annotations` and the policy's own keys in it. The
/// map is read from its own text: it is usually absent from a Binding, and
/// serde has no other way to tell where a value starts.
fn annotations_at(text: &str, raw: Option<&RawValue>) -> Result<AnnotationsAt, serde_json::Error> {
    let Some(raw) = raw else {
        return Ok(AnnotationsAt::Absent);
    };
    let start = start_of(text, raw);
    let mut found = Found::default();
    match pass(raw.get(), Level::Annotations, &mut found)? {
        Shape::Null => Ok(AnnotationsAt::Null(start..end_of(text, raw))),
        Shape::Map => Ok(AnnotationsAt::Map {
            open: start + 1,
            empty: found.annotation_count == 0,
            own: found
                .own
                .map(|v| v.map(|v| start_of(text, v)..end_of(text, v))),
        }),
        Shape::Absent | Shape::Other => Ok(AnnotationsAt::Other),
    }
}

/// The Binding's text with `annotations` set in `metadata.annotations`
/// (the map created when missing or `null`, other keys kept, the policy's
/// own keys overwritten). The API server copies them onto the pod,
/// overwriting the same keys. Only the policy's own annotations can be set.
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
        AnnotationsAt::Absent => {
            let mut ins = br#","annotations":"#.to_vec();
            ins.extend_from_slice(&wrapped(&new_pairs));
            edits.push((doc.name_end, 0, ins));
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
            return Err("metadata.annotations is not an object".into());
        }
    }
    // At most three edits (each annotation is either replaced where it is or
    // part of the one insertion): put them in order without pulling a
    // general sort into the module.
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
    #[case::kind_a_number(
        binding(json!({"kind": 5, "name": "n"})),
        "the Binding of pod \"ns/p\" targets a 5, not a Node"
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
                "{{\"kind\":\"Binding\", \"apiVersion\":\"v1\",\n \"metadata\": {{\"name\":\"p\",\"annotations\":{{\"{COST}\":\"-5\"}},\"generation\":12345678901234567890}},\"target\":{{\"name\":\"n\"}}}}"
            )
        );
    }

    #[test]
    fn existing_values_are_replaced_in_place() {
        let text = format!(
            r#"{{"metadata": {{"name": "p", "annotations": {{"{ZONE}": "a", "x": "y",  "{COST}" : "7"}}}}, "target": {{"name": "n"}}}}"#
        );
        let (_, doc) = read(&text, "ns").unwrap();
        assert_eq!(
            annotate(&doc, &[(COST, "2".into()), (ZONE, "b".into())]).unwrap(),
            format!(
                r#"{{"metadata": {{"name": "p", "annotations": {{"{ZONE}": "b", "x": "y",  "{COST}" : "2"}}}}, "target": {{"name": "n"}}}}"#
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
            "metadata.annotations is not an object"
        );
        let text = r#"{"metadata": {"name": "p"}, "target": {"name": "n"}}"#;
        assert_eq!(
            annotated(text, &[("k", "1".into())]).unwrap_err(),
            "k is not an annotation the policy sets"
        );
    }

    #[rstest]
    #[case::number_out_of_range(r#"{"x": 1e400}"#, "number out of range")]
    #[case::bad_literal(r#"{"x": tru}"#, "expected ident")]
    #[case::invalid_escape(r#"{"x": "\q"}"#, "invalid escape")]
    #[case::cost_out_of_range(
        r#"{"metadata": {"name": "p", "annotations": {"controller.kubernetes.io/pod-deletion-cost": 1e400}}}"#,
        "number out of range"
    )]
    #[case::namespace_out_of_range(
        r#"{"metadata": {"name": "p", "namespace": -1e999}, "target": {"name": "n"}}"#,
        "number out of range"
    )]
    #[case::target_kind_out_of_range(
        r#"{"metadata": {"name": "p"}, "target": {"kind": 1e999, "name": "n"}}"#,
        "number out of range"
    )]
    #[case::trailing_characters(r#"{"x": 1} 2"#, "trailing characters")]
    fn only_valid_json_is_read(#[case] text: &str, #[case] cause: &str) {
        assert_eq!(
            read(text, "ns").unwrap_err(),
            format!("the Binding is not valid JSON: {cause}")
        );
    }
}
