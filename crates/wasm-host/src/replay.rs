//! kwctl replay sessions: recorded host calls answered in order, each live
//! request compared with the recorded one field by field, as kwctl does.

use crate::HostResponder;
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The kwctl tag: KubernetesGetResource, KubernetesListResourceNamespace…
    pub tag: String,
    pub request: Map<String, Value>,
    pub response: Result<Vec<u8>, String>,
}

/// The kwctl tag a host operation is recorded under.
pub use pod_deletion_cost_policy::cluster::kwctl_tag as tag_of;

/// Fields kwctl requires in a recorded request: a session without them
/// does not load there, so it must not pass here.
fn required_fields(tag: &str) -> &'static [&'static str] {
    match tag {
        "KubernetesGetResource" => &["api_version", "kind", "name", "disable_cache"],
        "KubernetesListResourceNamespace" => &["api_version", "kind", "namespace"],
        "KubernetesListResourceAll" => &["api_version", "kind"],
        _ => &[],
    }
}

pub fn parse_session(text: &str, origin: &str) -> Result<Vec<Recorded>> {
    let doc: Yaml = serde_yaml::from_str(text).with_context(|| format!("{origin}: not YAML"))?;
    let items = match doc {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Sequence(items) => items,
        _ => bail!("{origin}: a replay session is a YAML list of exchanges"),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_exchange(item).with_context(|| format!("{origin}: exchange [{i}]")))
        .collect()
}

fn parse_exchange(item: &Yaml) -> Result<Recorded> {
    if item["type"].as_str() != Some("Exchange") {
        bail!("type must be Exchange");
    }
    let request_text = item["request"]
        .as_str()
        .context("request: missing (a tagged YAML string)")?;
    let request: Yaml = serde_yaml::from_str(request_text).context("request: not YAML")?;
    let Yaml::Tagged(tagged) = request else {
        bail!("request: missing its !Tag (e.g. !KubernetesGetResource)");
    };
    let tag = tagged.tag.to_string().trim_start_matches('!').to_string();
    let json = serde_json::to_value(&tagged.value).context("request: cannot be read as JSON")?;
    let Value::Object(fields) = json else {
        bail!("request: must be a map of fields");
    };
    for f in required_fields(&tag) {
        if !fields.contains_key(*f) {
            bail!("request: {tag} needs the field `{f}`");
        }
    }
    let response = &item["response"];
    let response = match response["type"].as_str() {
        Some("Success") => Ok(response["payload"]
            .as_str()
            .context("response.payload: missing")?
            .as_bytes()
            .to_vec()),
        Some("Error") => Err(response["message"]
            .as_str()
            .context("response.message: missing")?
            .to_string()),
        other => bail!("response.type: {other:?}, expected Success or Error"),
    };
    Ok(Recorded {
        tag,
        request: fields,
        response,
    })
}

pub fn load_session(path: &Path) -> Result<Vec<Recorded>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_session(&text, &path.display().to_string())
}

/// Differences between a recorded request and a live one, one line per
/// field. `field_masks` is a set; `null`, absent and `[]` are kept apart.
pub fn diff_request(recorded: &Map<String, Value>, live: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = recorded.keys().chain(live.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let want = recorded.get(key).filter(|v| !v.is_null());
        let got = live.get(key).filter(|v| !v.is_null());
        let equal = match (want, got) {
            (Some(Value::Array(a)), Some(Value::Array(b))) if key == "field_masks" => {
                let set = |v: &Vec<Value>| v.iter().map(Value::to_string).collect::<BTreeSet<_>>();
                set(a) == set(b)
            }
            (a, b) => a == b,
        };
        if !equal {
            let show =
                |v: Option<&Value>| v.map_or("(absent or null)".to_string(), Value::to_string);
            out.push(format!(
                "  {key}: expected {}, got {}",
                show(want),
                show(got)
            ));
        }
    }
    out
}

/// Answers host calls from a session, recording every mismatch.
#[derive(Debug, Default)]
pub struct Replay {
    pub exchanges: Vec<Recorded>,
    pub next: usize,
    pub failures: Vec<String>,
}

impl Replay {
    pub fn new(exchanges: Vec<Recorded>) -> Self {
        Replay {
            exchanges,
            next: 0,
            failures: Vec::new(),
        }
    }

    /// Everything that went wrong: mismatches, then exchanges never used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for (i, left) in self.exchanges.iter().enumerate().skip(self.next) {
            out.push(format!(
                "exchange [{i}] ({} {}) was never requested by the policy",
                left.tag,
                Value::Object(left.request.clone())
            ));
        }
        out
    }
}

impl HostResponder for Replay {
    fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let live: Map<String, Value> = match serde_json::from_slice(payload) {
            Ok(Value::Object(m)) => m,
            _ => {
                let msg = format!("host call {operation} with a payload that is not a JSON object");
                self.failures.push(msg.clone());
                return Err(msg);
            }
        };
        let index = self.next;
        let Some(recorded) = self.exchanges.get(index) else {
            let msg = format!(
                "unexpected host call [{index}] {operation} {}: the session has no more exchanges",
                Value::Object(live)
            );
            self.failures.push(msg.clone());
            return Err(msg);
        };
        self.next += 1;
        let tag = tag_of(operation).unwrap_or("unknown");
        let mut diff = Vec::new();
        if tag != recorded.tag {
            diff.push(format!(
                "  type: expected !{}, got !{tag} ({operation})",
                recorded.tag
            ));
        }
        diff.extend(diff_request(&recorded.request, &live));
        if !diff.is_empty() {
            let msg = format!(
                "host call [{index}] does not match the session:\n{}",
                diff.join("\n")
            );
            self.failures.push(msg.clone());
            // kwctl answers a mismatch with an error, and so does this.
            return Err(msg);
        }
        recorded.response.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Node
    name: n1
    namespace: null
    disable_cache: false
    field_masks:
    - metadata.labels
  response:
    type: Success
    payload: '{"metadata":{"labels":{"a":"b"}}}'
"#;

    const LIVE: &[u8] = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;

    fn replay(text: &str) -> Replay {
        Replay::new(parse_session(text, "session.yml").unwrap())
    }

    #[test]
    fn matching_call_is_answered() {
        let mut r = replay(SESSION);
        assert_eq!(
            r.call("get_resource", LIVE).unwrap(),
            br#"{"metadata":{"labels":{"a":"b"}}}"#
        );
        assert!(r.problems().is_empty());
    }

    #[test]
    fn wrong_field_mask_fails_with_a_diff() {
        let mut r = replay(SESSION);
        let live = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata"]}"#;
        let err = r.call("get_resource", live).unwrap_err();
        assert_eq!(
            err,
            "host call [0] does not match the session:\n  field_masks: expected [\"metadata.labels\"], got [\"metadata\"]"
        );
        assert_eq!(r.problems(), [err]);
    }

    #[test]
    fn disable_cache_and_empty_masks_are_compared() {
        let mut r = replay(SESSION);
        let live = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":true,"field_masks":[]}"#;
        let err = r.call("get_resource", live).unwrap_err();
        assert!(
            err.contains("  disable_cache: expected false, got true"),
            "{err}"
        );
        assert!(
            err.contains("  field_masks: expected [\"metadata.labels\"], got []"),
            "{err}"
        );
    }

    #[test]
    fn missing_exchange_fails() {
        let mut r = replay("[]");
        let err = r.call("get_resource", LIVE).unwrap_err();
        assert!(
            err.starts_with("unexpected host call [0] get_resource"),
            "{err}"
        );
        assert_eq!(r.problems().len(), 1);
    }

    #[test]
    fn unused_exchange_fails() {
        let r = replay(SESSION);
        assert_eq!(r.problems().len(), 1);
        assert!(r.problems()[0].contains("was never requested"));
    }

    #[test]
    fn wrong_operation_type_fails() {
        let mut r = replay(SESSION);
        let live = br#"{"api_version":"v1","kind":"Node","namespace":"x","label_selector":null,"field_selector":null,"field_masks":["metadata.labels"]}"#;
        let err = r.call("list_resources_by_namespace", live).unwrap_err();
        assert!(
            err.contains(
                "type: expected !KubernetesGetResource, got !KubernetesListResourceNamespace"
            ),
            "{err}"
        );
    }

    #[test]
    fn sessions_kwctl_would_refuse_are_refused() {
        let no_cache_flag = SESSION.replace("    disable_cache: false\n", "");
        let err = parse_session(&no_cache_flag, "s.yml").unwrap_err();
        assert!(
            format!("{err:#}").contains("needs the field `disable_cache`"),
            "{err:#}"
        );
        let untagged = SESSION.replace("!KubernetesGetResource\n", "");
        assert!(parse_session(&untagged, "s.yml").is_err());
    }

    #[test]
    fn error_answers() {
        let text = SESSION.replace(
            "    type: Success\n    payload: '{\"metadata\":{\"labels\":{\"a\":\"b\"}}}'",
            "    type: Error\n    message: nodes \"n1\" not found",
        );
        let mut r = replay(&text);
        assert_eq!(
            r.call("get_resource", LIVE).unwrap_err(),
            "nodes \"n1\" not found"
        );
        assert!(r.problems().is_empty());
    }
}
