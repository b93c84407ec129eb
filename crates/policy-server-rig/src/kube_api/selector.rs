//! Label and field selectors as the API server reads them from a LIST or
//! WATCH query: `labelSelector` with equality (`=`, `==`, `!=`), existence
//! (`key`, `!key`) and set (`in`, `notin`) terms; `fieldSelector` with
//! `=`, `==` and `!=` on dotted paths such as `spec.nodeName`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    path: Vec<String>,
    value: String,
    negated: bool,
}

/// Both selectors of one request; the empty filter matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    labels: Vec<LabelTerm>,
    fields: Vec<FieldTerm>,
}

impl Filter {
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, String> {
        let labels = split_terms(label_selector.unwrap_or(""))
            .into_iter()
            .map(parse_label_term)
            .collect::<Result<_, _>>()?;
        let fields = split_terms(field_selector.unwrap_or(""))
            .into_iter()
            .map(parse_field_term)
            .collect::<Result<_, _>>()?;
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => label(k) == Some(v),
            LabelTerm::NotEquals(k, v) => label(k) != Some(v),
            LabelTerm::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::DoesNotExist(k) => label(k).is_none(),
        });
        labels_match
            && self.fields.iter().all(|term| {
                let found = field_text(object, &term.path);
                (found == term.value) != term.negated
            })
    }
}

/// A field's value as the API server compares it: absent reads as "".
fn field_text(object: &Value, path: &[String]) -> String {
    let mut at = object;
    for part in path {
        match at.get(part) {
            Some(v) => at = v,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b=c`).
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_term(term: &str) -> Result<LabelTerm, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelTerm::DoesNotExist(checked_key(key, term)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelTerm::NotEquals(checked_key(k, term)?, v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelTerm::Equals(checked_key(k, term)?, v.trim().into()));
    }
    for (word, set) in [(" notin ", false), (" in ", true)] {
        if let Some((k, values)) = term.split_once(word) {
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("label selector term {term:?}: the values must be in parentheses")
                })?;
            let values = values.split(',').map(|v| v.trim().to_string()).collect();
            let key = checked_key(k, term)?;
            return Ok(if set {
                LabelTerm::In(key, values)
            } else {
                LabelTerm::NotIn(key, values)
            });
        }
    }
    Ok(LabelTerm::Exists(checked_key(term, term)?))
}

fn checked_key(key: &str, term: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) || key.contains(['(', ')', '=', '!']) {
        return Err(format!("label selector term {term:?} is not understood"));
    }
    Ok(key.to_string())
}

fn parse_field_term(term: &str) -> Result<FieldTerm, String> {
    let (path, value, negated) = if let Some((p, v)) = term.split_once("!=") {
        (p, v, true)
    } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (p, v, false)
    } else {
        return Err(format!(
            "field selector term {term:?} is not path=value or path!=value"
        ));
    };
    Ok(FieldTerm {
        path: path.trim().split('.').map(String::from).collect(),
        value: value.trim().to_string(),
        negated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_terms_follow_kubernetes() {
        let yes = [
            "app=web",
            "app==web,tier",
            "app!=db",
            "!gone",
            "tier in (front, back)",
            "tier notin (back)",
            "app=web,tier in (x,front)",
            "",
        ];
        let no = [
            "app=db",
            "gone",
            "!app",
            "tier in (back)",
            "tier notin (front)",
            "app=web,tier=back",
        ];
        for s in yes {
            assert!(Filter::parse(Some(s), None).unwrap().matches(&pod()), "{s}");
        }
        for s in no {
            assert!(
                !Filter::parse(Some(s), None).unwrap().matches(&pod()),
                "{s}"
            );
        }
    }

    #[test]
    fn field_terms_read_dotted_paths() {
        let f = |s| Filter::parse(None, Some(s)).unwrap().matches(&pod());
        assert!(f("spec.nodeName=n1,status.phase!=Failed"));
        assert!(f("metadata.namespace="));
        assert!(!f("spec.nodeName!=n1"));
    }

    #[test]
    fn malformed_selectors_are_named() {
        assert_eq!(
            Filter::parse(Some("a in x"), None).unwrap_err(),
            "label selector term \"a in x\": the values must be in parentheses"
        );
        assert_eq!(
            Filter::parse(None, Some("spec.nodeName")).unwrap_err(),
            "field selector term \"spec.nodeName\" is not path=value or path!=value"
        );
    }
}
