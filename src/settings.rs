//! Policy settings: parsing and validation.
//!
//! `parse` is the single way in: it deserialises with the path of every
//! field kept (so a type error or an unknown field names where it is) and
//! then checks what serde cannot, again naming the path.

use crate::selector::{LabelSelector, Labels, validate_dns_subdomain, validate_label_key};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const DEFAULT_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
const EKS_COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub rules: Vec<Rule>,
    pub default_deletion_cost: Option<i32>,
    pub zones: Option<Zones>,
    pub placeholders: Option<Placeholders>,
    pub keep_existing_cost: bool,
    pub on_lookup_error: OnLookupError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: Option<String>,
    pub node_selector: LabelSelector,
    pub deletion_cost: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    pub topology_key: String,
    pub deletion_costs: BTreeMap<String, i32>,
    pub balance: bool,
    /// The label keys whose values select the sibling list; `None`: every
    /// label of the pod but `pod-template-hash`.
    pub sibling_labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    pub priority_class_names: Vec<String>,
    pub pod_selector: Option<LabelSelector>,
    /// Pods whose `spec.priority` is at most this are placeholders.
    pub max_priority: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLookupError {
    #[default]
    Allow,
    Reject,
}

// By hand: serde's derived enum also takes the map form `{reject: null}`,
// which no administrator means; only the two strings are settings.
impl<'de> Deserialize<'de> for OnLookupError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "allow" => Ok(OnLookupError::Allow),
            "reject" => Ok(OnLookupError::Reject),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["allow", "reject"],
            )),
        }
    }
}

impl Default for Settings {
    /// The reference EKS Hybrid Nodes setup: hybrid nodes cost 1, every
    /// other pod is left alone.
    fn default() -> Self {
        Settings {
            rules: vec![Rule {
                name: Some("hybrid".into()),
                node_selector: LabelSelector {
                    match_labels: Labels::from([(EKS_COMPUTE_TYPE.into(), "hybrid".into())]),
                    match_expressions: Vec::new(),
                },
                deletion_cost: 1,
            }],
            default_deletion_cost: None,
            zones: None,
            placeholders: None,
            keep_existing_cost: false,
            on_lookup_error: OnLookupError::Allow,
        }
    }
}

impl Settings {
    /// Whether evaluation needs the pod object, not just the node.
    pub fn needs_pod(&self) -> bool {
        self.placeholders.is_some()
            || self.keep_existing_cost
            || self.zones.as_ref().is_some_and(|z| z.balance)
    }

    pub fn balance(&self) -> bool {
        self.zones.as_ref().is_some_and(|z| z.balance)
    }
}

// The wire format. Costs arrive as JSON numbers of any size so that an
// out-of-range value is reported as such, not silently wrapped or rejected
// with a bare serde message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    rules: Option<Vec<RawRule>>,
    default_deletion_cost: Option<serde_json::Number>,
    zones: Option<RawZones>,
    placeholders: Option<RawPlaceholders>,
    #[serde(default)]
    keep_existing_cost: bool,
    #[serde(default)]
    on_lookup_error: OnLookupError,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    name: Option<String>,
    node_selector: Option<LabelSelector>,
    deletion_cost: Option<serde_json::Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawZones {
    topology_key: Option<String>,
    #[serde(default)]
    deletion_costs: BTreeMap<String, serde_json::Number>,
    #[serde(default)]
    balance: bool,
    sibling_labels: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPlaceholders {
    #[serde(default)]
    priority_class_names: Vec<String>,
    pod_selector: Option<LabelSelector>,
    max_priority: Option<serde_json::Number>,
}

/// Parses and validates settings given as JSON. `null` (what policy-server
/// sends when a policy has no settings) and `{}` both mean the defaults.
pub fn parse(json: &[u8]) -> Result<Settings, String> {
    // serde would also accept a struct written as a sequence, with baffling
    // messages for a settings list; only a map (or nothing) is settings.
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'n') => {}
        _ => return Err("settings: must be a map of settings (or null)".into()),
    }
    // Checked first, so that every array written for a map gets the same
    // message; a document that is not JSON is left to serde to explain.
    if let Ok(doc) = serde_json::from_slice(json) {
        no_arrays_for_maps(&doc)?;
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw: Option<RawSettings> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let msg = crate::json_error_text(e.inner());
        if path == "." {
            format!("settings: {msg}")
        } else {
            format!("{path}: {msg}")
        }
    })?;
    de.end()
        .map_err(|e| format!("settings: {}", crate::json_error_text(&e)))?;
    match raw {
        None => Ok(Settings::default()),
        Some(raw) => raw.validate(),
    }
}

/// serde's derived structs also take an array of their field values, so
/// `rules: [["hybrid", {}, 1]]` would read as a rule and `nodeSelector: []`
/// as a selector that matches every node. Where the settings have a map,
/// an array is refused, naming its path.
fn no_arrays_for_maps(doc: &serde_json::Value) -> Result<(), String> {
    use serde_json::{Map, Value};
    fn map<'a>(v: Option<&'a Value>, path: &str) -> Result<Option<&'a Map<String, Value>>, String> {
        match v {
            Some(Value::Array(_)) => Err(format!("{path}: invalid type: sequence, expected a map")),
            Some(Value::Object(m)) => Ok(Some(m)),
            // serde refuses any other type when it reads the document next.
            _ => Ok(None),
        }
    }
    fn selector(v: Option<&Value>, path: &str) -> Result<(), String> {
        if let Some(sel) = map(v, path)?
            && let Some(Value::Array(exprs)) = sel.get("matchExpressions")
        {
            for (i, e) in exprs.iter().enumerate() {
                map(Some(e), &format!("{path}.matchExpressions[{i}]"))?;
            }
        }
        Ok(())
    }
    let Some(root) = map(Some(doc), "settings")? else {
        return Ok(());
    };
    if let Some(Value::Array(rules)) = root.get("rules") {
        for (i, r) in rules.iter().enumerate() {
            let here = format!("rules[{i}]");
            if let Some(rule) = map(Some(r), &here)? {
                selector(rule.get("nodeSelector"), &format!("{here}.nodeSelector"))?;
            }
        }
    }
    map(root.get("zones"), "zones")?;
    if let Some(p) = map(root.get("placeholders"), "placeholders")? {
        selector(p.get("podSelector"), "placeholders.podSelector")?;
    }
    Ok(())
}

fn int32(n: &serde_json::Number, path: &str) -> Result<i32, String> {
    n.as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| {
            // Printed through serde_json: core's float formatting would
            // add ~15 KB to the module for this one message.
            let shown = serde_json::to_string(n).unwrap_or_default();
            format!("{path}: {shown} is not an int32 (an integer from -2147483648 to 2147483647)")
        })
}

/// `zones.siblingLabels`: an empty list would list every pod of the
/// namespace for each binding, which no administrator means by it.
fn validate_sibling_labels(keys: &[String]) -> Result<(), String> {
    if keys.is_empty() {
        return Err("zones.siblingLabels: must not be empty when given (leave it out to select siblings by all the pod's labels but pod-template-hash)".into());
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let here = format!("zones.siblingLabels[{i}]");
        validate_label_key(key).map_err(|e| format!("{here}: invalid label key {key:?}: {e}"))?;
        if let Some(first) = seen.insert(key, i) {
            return Err(format!(
                "{here}: duplicate label key {key:?} (already zones.siblingLabels[{first}])"
            ));
        }
    }
    Ok(())
}

impl RawSettings {
    fn validate(self) -> Result<Settings, String> {
        let rules = match self.rules {
            None => Settings::default().rules,
            Some(raw_rules) => {
                let mut rules = Vec::with_capacity(raw_rules.len());
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for (i, r) in raw_rules.into_iter().enumerate() {
                    let here = format!("rules[{i}]");
                    if let Some(name) = &r.name {
                        if name.is_empty() {
                            return Err(format!("{here}.name: must not be empty when given"));
                        }
                        if let Some(first) = seen.insert(name.clone(), i) {
                            return Err(format!(
                                "{here}.name: duplicate rule name {name:?} (already used by rules[{first}])"
                            ));
                        }
                    }
                    let node_selector = r
                        .node_selector
                        .ok_or_else(|| format!("{here}.nodeSelector: missing field"))?;
                    node_selector.validate(&format!("{here}.nodeSelector"))?;
                    let cost = r
                        .deletion_cost
                        .ok_or_else(|| format!("{here}.deletionCost: missing field"))?;
                    rules.push(Rule {
                        name: r.name,
                        node_selector,
                        deletion_cost: int32(&cost, &format!("{here}.deletionCost"))?,
                    });
                }
                rules
            }
        };

        let default_deletion_cost = self
            .default_deletion_cost
            .map(|n| int32(&n, "defaultDeletionCost"))
            .transpose()?;

        let zones = self
            .zones
            .map(|z| -> Result<Zones, String> {
                let topology_key = z
                    .topology_key
                    .unwrap_or_else(|| DEFAULT_TOPOLOGY_KEY.to_string());
                validate_label_key(&topology_key).map_err(|e| {
                    format!("zones.topologyKey: invalid label key {topology_key:?}: {e}")
                })?;
                let mut deletion_costs = BTreeMap::new();
                for (zone, n) in &z.deletion_costs {
                    let here = format!("zones.deletionCosts[{zone:?}]");
                    if zone.is_empty() {
                        return Err(format!("{here}: zone name must not be empty"));
                    }
                    crate::selector::validate_label_value(zone)
                        .map_err(|e| format!("{here}: invalid zone (a label value): {e}"))?;
                    deletion_costs.insert(zone.clone(), int32(n, &here)?);
                }
                let sibling_labels = z
                    .sibling_labels
                    .map(|keys| validate_sibling_labels(&keys).map(|()| keys))
                    .transpose()?;
                Ok(Zones {
                    topology_key,
                    deletion_costs,
                    balance: z.balance,
                    sibling_labels,
                })
            })
            .transpose()?;

        let placeholders = self
            .placeholders
            .map(|p| -> Result<Placeholders, String> {
                for (i, name) in p.priority_class_names.iter().enumerate() {
                    validate_dns_subdomain(name).map_err(|e| {
                        format!(
                            "placeholders.priorityClassNames[{i}]: invalid priority class name {name:?}: {e}"
                        )
                    })?;
                }
                if let Some(sel) = &p.pod_selector {
                    // An empty selector matches every pod: every pod would be
                    // a placeholder and the policy would do nothing.
                    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
                        return Err("placeholders.podSelector: must not be empty (an empty selector matches every pod)".into());
                    }
                    sel.validate("placeholders.podSelector")?;
                }
                let max_priority = p
                    .max_priority
                    .map(|n| int32(&n, "placeholders.maxPriority"))
                    .transpose()?;
                if p.priority_class_names.is_empty()
                    && p.pod_selector.is_none()
                    && max_priority.is_none()
                {
                    return Err("placeholders: give at least one of priorityClassNames, podSelector and maxPriority".into());
                }
                Ok(Placeholders {
                    priority_class_names: p.priority_class_names,
                    pod_selector: p.pod_selector,
                    max_priority,
                })
            })
            .transpose()?;

        Ok(Settings {
            rules,
            default_deletion_cost,
            zones,
            placeholders,
            keep_existing_cost: self.keep_existing_cost,
            on_lookup_error: self.on_lookup_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn parse_value(v: serde_json::Value) -> Result<Settings, String> {
        parse(&serde_json::to_vec(&v).unwrap())
    }

    fn err(v: serde_json::Value) -> String {
        parse_value(v).unwrap_err()
    }

    #[rstest]
    #[case::null(json!(null))]
    #[case::empty_map(json!({}))]
    fn no_settings_is_the_eks_default(#[case] empty: serde_json::Value) {
        let s = parse_value(empty).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].deletion_cost, 1);
        assert_eq!(
            s.rules[0].node_selector.match_labels.get(EKS_COMPUTE_TYPE),
            Some(&"hybrid".to_string())
        );
        assert!(!s.needs_pod());
    }

    #[test]
    fn empty_rules_means_no_class_cost() {
        let s = parse_value(json!({"rules": []})).unwrap();
        assert!(s.rules.is_empty());
    }

    #[test]
    fn full_settings() {
        let s = parse_value(json!({
            "rules": [{
                "name": "hybrid",
                "nodeSelector": {
                    "matchLabels": {"eks.amazonaws.com/compute-type": "hybrid"},
                    "matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["t3.micro"]}]
                },
                "deletionCost": 1
            }],
            "defaultDeletionCost": 0,
            "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10, "k": 0}, "balance": true},
            "placeholders": {"priorityClassNames": ["default-priority-class"], "podSelector": {"matchLabels": {"app": "ack-place-holder"}}, "maxPriority": -1},
            "keepExistingCost": true,
            "onLookupError": "reject"
        }))
        .unwrap();
        assert_eq!(s.placeholders.as_ref().unwrap().max_priority, Some(-1));
        assert_eq!(s.default_deletion_cost, Some(0));
        let z = s.zones.as_ref().unwrap();
        assert_eq!(z.topology_key, "available_zone");
        assert_eq!(z.deletion_costs.get("i"), Some(&10));
        assert!(z.balance);
        assert!(s.keep_existing_cost);
        assert_eq!(s.on_lookup_error, OnLookupError::Reject);
        assert!(s.needs_pod());
    }

    #[test]
    fn zones_default_topology_key() {
        let s = parse_value(json!({"zones": {}})).unwrap();
        assert_eq!(s.zones.unwrap().topology_key, DEFAULT_TOPOLOGY_KEY);
    }

    #[test]
    fn unknown_fields_are_named() {
        assert_eq!(
            err(json!({"rulez": []})),
            "rulez: unknown field `rulez`, expected one of `rules`, `defaultDeletionCost`, `zones`, `placeholders`, `keepExistingCost`, `onLookupError`"
        );
        assert_eq!(
            err(json!({"rules": [{"nodeSelector": {"matchLabel": {}}, "deletionCost": 1}]})),
            "rules[0].nodeSelector.matchLabel: unknown field `matchLabel`, expected `matchLabels` or `matchExpressions`"
        );
        assert_eq!(
            err(json!({"zones": {"balanced": true}})),
            "zones.balanced: unknown field `balanced`, expected one of `topologyKey`, `deletionCosts`, `balance`, `siblingLabels`"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            err(json!({"keepExistingCost": "yes"})),
            "keepExistingCost: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            err(json!({"onLookupError": "deny"})),
            "onLookupError: unknown variant `deny`, expected `allow` or `reject`"
        );
        assert_eq!(
            err(json!({"rules": [{"nodeSelector": {}, "deletionCost": "1"}]})),
            "rules[0].deletionCost: invalid type: string \"1\", expected a JSON number"
        );
        assert_eq!(
            err(json!([1])),
            "settings: must be a map of settings (or null)"
        );
    }

    #[test]
    fn on_lookup_error_is_a_string() {
        // Found by the settings fuzz target: the map form was taken as reject.
        assert_eq!(
            err(json!({"onLookupError": {"reject": null}})),
            "onLookupError: invalid type: map, expected a string"
        );
        assert_eq!(
            parse_value(json!({"onLookupError": "reject"}))
                .unwrap()
                .on_lookup_error,
            OnLookupError::Reject
        );
    }

    #[rstest]
    #[case::array(b"[]", "settings: must be a map of settings (or null)")]
    #[case::number(b"1", "settings: must be a map of settings (or null)")]
    #[case::string(b"\"x\"", "settings: must be a map of settings (or null)")]
    #[case::nothing(b"", "settings: must be a map of settings (or null)")]
    #[case::boolean(b"  true", "settings: must be a map of settings (or null)")]
    #[case::trailing_characters(b"{} x", "settings: trailing characters")]
    #[case::truncated_null(b"nul", "settings: EOF while parsing a value")]
    fn not_a_map(#[case] raw: &[u8], #[case] message: &str) {
        assert_eq!(parse(raw).unwrap_err(), message);
    }

    #[test]
    fn bad_operator_is_named() {
        assert_eq!(
            err(json!({"rules": [
                {"nodeSelector": {}, "deletionCost": 1},
                {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, "deletionCost": 2}
            ]})),
            "rules[1].nodeSelector.matchExpressions[0].operator: \"Equals\" is not a valid operator (expected In, NotIn, Exists or DoesNotExist)"
        );
    }

    #[test]
    fn costs_must_be_int32() {
        assert_eq!(
            err(json!({"rules": [{"nodeSelector": {}, "deletionCost": 2147483648u64}]})),
            "rules[0].deletionCost: 2147483648 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
        assert_eq!(
            err(json!({"defaultDeletionCost": -2147483649i64})),
            "defaultDeletionCost: -2147483649 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
        assert_eq!(
            err(json!({"defaultDeletionCost": 1.5})),
            "defaultDeletionCost: 1.5 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
        assert_eq!(
            err(json!({"zones": {"deletionCosts": {"i": 99999999999u64}}})),
            "zones.deletionCosts[\"i\"]: 99999999999 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
        let s = parse_value(json!({"rules": [{"nodeSelector": {}, "deletionCost": -2147483648i64}], "defaultDeletionCost": 2147483647})).unwrap();
        assert_eq!(s.rules[0].deletion_cost, i32::MIN);
        assert_eq!(s.default_deletion_cost, Some(i32::MAX));
    }

    #[test]
    fn rules_need_selector_and_cost() {
        assert_eq!(
            err(json!({"rules": [{"deletionCost": 1}]})),
            "rules[0].nodeSelector: missing field"
        );
        assert_eq!(
            err(json!({"rules": [{"nodeSelector": {}}]})),
            "rules[0].deletionCost: missing field"
        );
    }

    #[test]
    fn rule_names_are_unique() {
        assert_eq!(
            err(json!({"rules": [
                {"name": "a", "nodeSelector": {}, "deletionCost": 1},
                {"name": "b", "nodeSelector": {}, "deletionCost": 1},
                {"name": "a", "nodeSelector": {}, "deletionCost": 1}
            ]})),
            "rules[2].name: duplicate rule name \"a\" (already used by rules[0])"
        );
        assert_eq!(
            err(json!({"rules": [{"name": "", "nodeSelector": {}, "deletionCost": 1}]})),
            "rules[0].name: must not be empty when given"
        );
    }

    #[test]
    fn label_syntax_is_checked() {
        assert_eq!(
            err(
                json!({"rules": [{"nodeSelector": {"matchLabels": {"bad key!": "x"}}, "deletionCost": 1}]})
            ),
            "rules[0].nodeSelector.matchLabels: invalid label key \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(json!({"zones": {"topologyKey": "Zone/x"}})),
            "zones.topologyKey: invalid label key \"Zone/x\": prefix part must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character"
        );
        assert_eq!(
            err(json!({"zones": {"deletionCosts": {"zone a": 1}}})),
            "zones.deletionCosts[\"zone a\"]: invalid zone (a label value): must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(
                json!({"rules": [{"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "-no"]}]}, "deletionCost": 1}]})
            ),
            "rules[0].nodeSelector.matchExpressions[0].values[1]: invalid label value \"-no\": must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
    }

    #[test]
    fn sibling_labels_are_checked() {
        let s = parse_value(json!({"zones": {"balance": true, "siblingLabels": ["app", "app.kubernetes.io/instance"]}})).unwrap();
        assert_eq!(
            s.zones.unwrap().sibling_labels,
            Some(vec![
                "app".to_string(),
                "app.kubernetes.io/instance".to_string()
            ])
        );
        let s = parse_value(json!({"zones": {"balance": true, "siblingLabels": null}})).unwrap();
        assert_eq!(s.zones.unwrap().sibling_labels, None);
        assert_eq!(
            err(json!({"zones": {"siblingLabels": []}})),
            "zones.siblingLabels: must not be empty when given (leave it out to select siblings by all the pod's labels but pod-template-hash)"
        );
        assert_eq!(
            err(json!({"zones": {"siblingLabels": ["app", "bad key!"]}})),
            "zones.siblingLabels[1]: invalid label key \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(json!({"zones": {"siblingLabels": ["app", "tier", "app"]}})),
            "zones.siblingLabels[2]: duplicate label key \"app\" (already zones.siblingLabels[0])"
        );
        assert_eq!(
            err(json!({"zones": {"siblingLabels": "app"}})),
            "zones.siblingLabels: invalid type: string \"app\", expected a sequence"
        );
        assert_eq!(
            err(json!({"zones": {"siblingLabels": ["app", 3]}})),
            "zones.siblingLabels[1]: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn placeholders_are_checked() {
        assert_eq!(
            err(json!({"placeholders": {"priorityClassNames": ["Default_Priority"]}})),
            "placeholders.priorityClassNames[0]: invalid priority class name \"Default_Priority\": must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character"
        );
        assert_eq!(
            err(
                json!({"placeholders": {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}}})
            ),
            "placeholders.podSelector.matchExpressions[0].values: must be empty when operator is Exists"
        );
        assert_eq!(
            err(json!({"placeholders": {"podSelector": {}}})),
            "placeholders.podSelector: must not be empty (an empty selector matches every pod)"
        );
        assert_eq!(
            err(json!({"placeholders": {}})),
            "placeholders: give at least one of priorityClassNames, podSelector and maxPriority"
        );
        // null is how YAML writes an absent value: still none of the three.
        assert_eq!(
            err(json!({"placeholders": {"maxPriority": null}})),
            "placeholders: give at least one of priorityClassNames, podSelector and maxPriority"
        );
        assert_eq!(
            err(json!({"placeholders": {"maxPriorty": -1}})),
            "placeholders.maxPriorty: unknown field `maxPriorty`, expected one of `priorityClassNames`, `podSelector`, `maxPriority`"
        );
    }

    #[rstest]
    #[case::negative(json!(-1), -1)]
    #[case::zero(json!(0), 0)]
    #[case::int32_min(json!(-2147483648i64), i32::MIN)]
    #[case::int32_max(json!(2147483647), i32::MAX)]
    fn max_priority_alone_makes_placeholders(#[case] given: serde_json::Value, #[case] max: i32) {
        let s = parse_value(json!({"placeholders": {"maxPriority": given}})).unwrap();
        let p = s.placeholders.as_ref().unwrap();
        assert_eq!(p.max_priority, Some(max));
        assert!(p.priority_class_names.is_empty() && p.pod_selector.is_none());
        // Telling a placeholder needs the pod.
        assert!(s.needs_pod());
    }

    #[rstest]
    #[case::beyond_int32(
        json!(2147483648u64),
        "placeholders.maxPriority: 2147483648 is not an int32 (an integer from -2147483648 to 2147483647)"
    )]
    #[case::below_int32(
        json!(-2147483649i64),
        "placeholders.maxPriority: -2147483649 is not an int32 (an integer from -2147483648 to 2147483647)"
    )]
    #[case::a_fraction(
        json!(-0.5),
        "placeholders.maxPriority: -0.5 is not an int32 (an integer from -2147483648 to 2147483647)"
    )]
    #[case::a_string(
        json!("-1"),
        "placeholders.maxPriority: invalid type: string \"-1\", expected a JSON number"
    )]
    fn bad_input_max_priority(#[case] given: serde_json::Value, #[case] message: &str) {
        assert_eq!(
            err(json!({"placeholders": {"maxPriority": given}})),
            message
        );
    }

    // ---- bad input: each test backs a row of the README's bad-input table ----

    #[test]
    fn bad_input_operator_values() {
        assert_eq!(
            err(
                json!({"rules": [{"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}, "deletionCost": 1}]})
            ),
            "rules[0].nodeSelector.matchExpressions[0].values: must be non-empty when operator is In"
        );
        assert_eq!(
            err(
                json!({"rules": [{"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "deletionCost": 1}]})
            ),
            "rules[0].nodeSelector.matchExpressions[0].values: must be empty when operator is Exists"
        );
    }

    #[test]
    fn bad_input_invalid_label_value() {
        assert_eq!(
            err(
                json!({"rules": [{"nodeSelector": {"matchLabels": {"a": "bad value"}}, "deletionCost": 1}]})
            ),
            "rules[0].nodeSelector.matchLabels[\"a\"]: invalid label value \"bad value\": must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
    }

    #[test]
    fn bad_input_cost_float_forms() {
        // JSON's -0 and exponent forms are floats, whatever their value.
        assert_eq!(
            parse(br#"{"defaultDeletionCost": -0}"#).unwrap_err(),
            "defaultDeletionCost: -0.0 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
        assert_eq!(
            parse(br#"{"defaultDeletionCost": 1e3}"#).unwrap_err(),
            "defaultDeletionCost: 1000.0 is not an int32 (an integer from -2147483648 to 2147483647)"
        );
    }

    #[test]
    fn bad_input_empty_zone_name() {
        assert_eq!(
            err(json!({"zones": {"deletionCosts": {"": 1}}})),
            "zones.deletionCosts[\"\"]: zone name must not be empty"
        );
    }

    #[test]
    fn bad_input_duplicate_settings_field() {
        assert_eq!(
            parse(br#"{"rules": [], "rules": []}"#).unwrap_err(),
            "settings: duplicate field `rules`"
        );
    }

    #[test]
    fn bad_input_rules_null() {
        // null is how YAML writes an absent value: the EKS default applies.
        assert_eq!(
            parse_value(json!({"rules": null})).unwrap(),
            Settings::default()
        );
    }

    // Found by the settings fuzz target: serde took these as structs.
    #[rstest]
    #[case::rule_as_an_array(json!({"rules": [["y", [], 2]]}), "rules[0]")]
    #[case::node_selector_as_an_array(
        json!({"rules": [{"nodeSelector": [], "deletionCost": 1}]}),
        "rules[0].nodeSelector"
    )]
    #[case::expression_as_an_array(
        json!({"rules": [{"nodeSelector": {"matchExpressions": [["a", "Exists", []]]}, "deletionCost": 1}]}),
        "rules[0].nodeSelector.matchExpressions[0]"
    )]
    #[case::zones_as_an_array(json!({"zones": []}), "zones")]
    #[case::placeholders_as_an_array(json!({"placeholders": [["hold"]]}), "placeholders")]
    #[case::pod_selector_as_an_array(
        json!({"placeholders": {"podSelector": [{"app": "x"}]}}),
        "placeholders.podSelector"
    )]
    fn bad_input_array_for_a_map(#[case] settings: serde_json::Value, #[case] path: &str) {
        assert_eq!(
            err(settings),
            format!("{path}: invalid type: sequence, expected a map")
        );
    }
}
