//! The policy's settings as an administrator gives them: a settings file,
//! or a ClusterAdmissionPolicy / AdmissionPolicy manifest, with which
//! bindings the API server would send to the policy.

use crate::selectors::Selector;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use wasm_host::Policy;

pub use pod_deletion_cost_policy::settings::DEFAULT_TOPOLOGY_KEY;
use pod_deletion_cost_policy::settings::{self, Settings};
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The policy's settings and, when they come from a policy manifest, which
/// bindings the API server would send to it.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// Where the settings came from, for messages.
    pub source: String,
    pub settings: Value,
    pub policy_name: Option<String>,
    pub mode: Option<String>,
    /// An AdmissionPolicy only sees its own namespace.
    pub namespace: Option<String>,
    pub namespace_selector: Option<Selector>,
    pub object_selector: Option<Selector>,
    pub warnings: Vec<String>,
}

impl PolicyConfig {
    /// Reads a settings file (YAML or JSON), or a ClusterAdmissionPolicy /
    /// AdmissionPolicy manifest (its `spec.settings`; other documents of a
    /// multi-document file, such as RBAC, are skipped). `None`: the
    /// policy's defaults.
    pub fn load(path: Option<&Path>) -> Result<PolicyConfig, String> {
        let Some(path) = path else {
            return Ok(PolicyConfig {
                source: "no settings given: the policy's defaults".into(),
                settings: json!({}),
                ..Default::default()
            });
        };
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<PolicyConfig, String> {
        use serde::Deserialize;
        let mut documents = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let yaml = serde_yaml::Value::deserialize(doc)
                .map_err(|e| format!("{file}: not valid YAML or JSON: {e}"))?;
            let value = serde_json::to_value(yaml)
                .map_err(|e| format!("{file}: document {}: {e}", i + 1))?;
            if !value.is_null() {
                documents.push(value);
            }
        }
        let is_policy = |d: &Value| {
            matches!(
                d.get("kind").and_then(Value::as_str),
                Some("ClusterAdmissionPolicy" | "AdmissionPolicy")
            ) && d
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("policies.kubewarden.io/"))
        };
        let policies: Vec<&Value> = documents.iter().filter(|d| is_policy(d)).collect();
        match policies.as_slice() {
            [policy] => Self::from_manifest(file, policy),
            [] => match documents.as_slice() {
                [] => Ok(PolicyConfig {
                    source: format!("{file} (empty: the policy's defaults)"),
                    settings: json!({}),
                    ..Default::default()
                }),
                [Value::Object(map)] if !map.contains_key("kind") => Ok(PolicyConfig {
                    source: file.to_string(),
                    settings: Value::Object(map.clone()),
                    ..Default::default()
                }),
                [Value::Object(map)] => Err(format!(
                    "{file}: a {} is neither policy settings nor a ClusterAdmissionPolicy or AdmissionPolicy",
                    map.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("document")
                )),
                [other] => Err(format!(
                    "{file}: settings must be a map, found {}",
                    short_kind(other)
                )),
                _ => Err(format!(
                    "{file}: {} documents and no ClusterAdmissionPolicy or AdmissionPolicy among them",
                    documents.len()
                )),
            },
            many => Err(format!(
                "{file}: {} Kubewarden policies ({}); keep the one to simulate",
                many.len(),
                many.iter()
                    .map(|p| p
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// A ClusterAdmissionPolicy or AdmissionPolicy read from `file` (or a
    /// cluster), its settings and scope.
    pub fn from_manifest(file: &str, policy: &Value) -> Result<PolicyConfig, String> {
        let kind = policy
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = policy.pointer("/metadata/name").and_then(Value::as_str);
        let at = format!("{file} ({kind} {})", name.unwrap_or("?"));
        let spec = policy.get("spec").unwrap_or(&Value::Null);
        let text = |key: &str| -> Result<Option<String>, String> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "{at}: spec.{key}: expected a string, found {}",
                    short_kind(other)
                )),
            }
        };
        let settings = match spec.get("settings") {
            None | Some(Value::Null) => json!({}),
            Some(s @ Value::Object(_)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "{at}: spec.settings: expected a map, found {}",
                    short_kind(other)
                ));
            }
        };
        let selector = |key: &str| -> Result<Option<Selector>, String> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Selector::parse(v, &format!("{at}: spec.{key}")).map(Some),
            }
        };
        let mut config = PolicyConfig {
            source: format!("{at}, spec.settings"),
            settings,
            policy_name: name.map(String::from),
            mode: text("mode")?,
            namespace: if kind == "AdmissionPolicy" {
                Some(
                    policy
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .to_string(),
                )
            } else {
                None
            },
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
            warnings: Vec::new(),
        };
        if config.mode.as_deref() == Some("monitor") {
            config.warnings.push(format!(
                "{at}: spec.mode is monitor: policy-server only logs these decisions and applies no annotation; the report shows what protect mode would do"
            ));
        }
        if !covers_bindings(spec.get("rules")) {
            config.warnings.push(format!(
                "{at}: spec.rules do not cover pods/binding CREATE: the API server would never send a Binding to this policy; the report shows what it would do if they did"
            ));
        }
        if let Some(s) = &config.namespace_selector {
            for key in s.keys() {
                if key != NAMESPACE_NAME_LABEL {
                    config.warnings.push(format!(
                        "{at}: spec.namespaceSelector uses the namespace label {key:?}, which a snapshot of nodes and pods does not hold: it is treated as absent on every namespace"
                    ));
                }
            }
        }
        Ok(config)
    }

    /// Whether the API server would send this pod's Binding to the policy.
    pub(crate) fn sends(&self, namespace: &str) -> Result<(), &'static str> {
        if self.namespace.as_deref().is_some_and(|n| n != namespace) {
            return Err("outside the AdmissionPolicy's namespace");
        }
        if let Some(s) = &self.namespace_selector {
            let labels =
                BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]);
            if !s.matches(&labels) {
                return Err("outside the policy's namespaceSelector");
            }
        }
        // A Binding carries no labels of its own.
        if let Some(s) = &self.object_selector
            && !s.matches(&BTreeMap::new())
        {
            return Err("outside the policy's objectSelector (a Binding has no labels)");
        }
        Ok(())
    }
}

/// The node label the reports group zones by: the policy's topology key,
/// else the standard zone label.
pub fn zone_label(settings: &Settings) -> &str {
    settings
        .zones
        .as_ref()
        .map_or(DEFAULT_TOPOLOGY_KEY, |z| z.topology_key.as_str())
}

fn covers_bindings(rules: Option<&Value>) -> bool {
    let Some(Value::Array(rules)) = rules else {
        return false;
    };
    let has = |rule: &Value, key: &str, wanted: &[&str]| {
        rule.get(key).and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .any(|v| v.as_str().is_some_and(|s| wanted.contains(&s)))
        })
    };
    rules.iter().any(|r| {
        has(
            r,
            "resources",
            &["pods/binding", "pods/*", "*/*", "*/binding"],
        ) && has(r, "operations", &["CREATE", "*"])
    })
}

fn short_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The policy's own check of the settings, its message naming where they
/// came from.
pub fn check_settings(policy: &Policy, config: &PolicyConfig) -> Result<Settings, String> {
    let verdict = policy
        .validate_settings(&config.settings)
        .map_err(|e| format!("{}: validate_settings failed: {e:#}", config.source))?;
    if !verdict.valid {
        return Err(format!(
            "{}: the policy refuses these settings: {}",
            config.source,
            verdict.message.unwrap_or_default()
        ));
    }
    read_accepted_settings(config)
}

/// Settings the module has accepted, read by the policy's own parser, so
/// that the reports use the topology key, zone costs and balance the module
/// does. A module given with --policy may be another version, which is why
/// it is asked first and this can still fail.
fn read_accepted_settings(config: &PolicyConfig) -> Result<Settings, String> {
    let json = serde_json::to_vec(&config.settings).map_err(|e| e.to_string())?;
    settings::parse(&json).map_err(|e| {
        format!(
            "{}: the policy module accepts these settings, but this version of the tool cannot read them: {e}",
            config.source
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn settings_documents_and_manifests() {
        let c = PolicyConfig::parse("s.yml", "rules: []\n").unwrap();
        assert_eq!(c.settings, json!({"rules": []}));
        assert_eq!(c.source, "s.yml");
        assert!(c.sends("kube-system").is_ok());

        let c = PolicyConfig::parse("s.json", "").unwrap();
        assert_eq!(c.settings, json!({}));

        let manifest = "apiVersion: policies.kubewarden.io/v1
kind: AdmissionPolicy
metadata: {name: p, namespace: shop}
spec:
  mode: monitor
  rules: [{apiGroups: [''], apiVersions: [v1], resources: [pods/binding], operations: [CREATE]}]
  settings: {keepExistingCost: true}
";
        let c = PolicyConfig::parse("p.yaml", manifest).unwrap();
        assert_eq!(c.settings, json!({"keepExistingCost": true}));
        assert_eq!(c.source, "p.yaml (AdmissionPolicy p), spec.settings");
        assert_eq!(c.sends("shop"), Ok(()));
        assert_eq!(
            c.sends("web"),
            Err("outside the AdmissionPolicy's namespace")
        );
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("spec.mode is monitor"));
    }

    #[test]
    fn manifest_scope_and_warnings() {
        let manifest = "apiVersion: policies.kubewarden.io/v1
kind: ClusterAdmissionPolicy
metadata: {name: p}
spec:
  rules: [{resources: [pods], operations: [CREATE]}]
  namespaceSelector:
    matchLabels: {team: a}
    matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]
  objectSelector: {matchLabels: {x: y}}
";
        let c = PolicyConfig::parse("p.yaml", manifest).unwrap();
        assert_eq!(c.settings, json!({}));
        assert_eq!(
            c.warnings,
            [
                "p.yaml (ClusterAdmissionPolicy p): spec.rules do not cover pods/binding CREATE: the API server would never send a Binding to this policy; the report shows what it would do if they did",
                "p.yaml (ClusterAdmissionPolicy p): spec.namespaceSelector uses the namespace label \"team\", which a snapshot of nodes and pods does not hold: it is treated as absent on every namespace",
            ]
        );
        assert_eq!(
            c.sends("shop"),
            Err("outside the policy's namespaceSelector")
        );
    }

    #[test]
    fn settings_a_newer_module_accepts_are_refused_by_name() {
        let config = PolicyConfig::parse("s.yml", "zones: {balance: true, spread: 2}\n").unwrap();
        assert_eq!(
            read_accepted_settings(&config).unwrap_err(),
            "s.yml: the policy module accepts these settings, but this version of the tool cannot read them: zones.spread: unknown field `spread`, expected one of `topologyKey`, `deletionCosts`, `balance`, `siblingLabels`"
        );
        let config =
            PolicyConfig::parse("s.yml", "zones: {balance: true, topologyKey: az}\n").unwrap();
        let settings = read_accepted_settings(&config).unwrap();
        assert!(settings.balance());
        assert_eq!(zone_label(&settings), "az");
        assert_eq!(zone_label(&Settings::default()), DEFAULT_TOPOLOGY_KEY);
    }

    /// `want` is the whole message but for the YAML parser's own words,
    /// which follow it where the text is not YAML.
    #[rstest]
    #[case::a_list("- a\n- b\n", "s.yml: settings must be a map, found a list")]
    #[case::another_kind(
        "kind: ClusterRole\nmetadata: {name: x}\n",
        "s.yml: a ClusterRole is neither policy settings nor a ClusterAdmissionPolicy or AdmissionPolicy"
    )]
    #[case::not_yaml("a: [\n", "s.yml: not valid YAML or JSON: ")]
    #[case::settings_a_list(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {settings: [1]}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.settings: expected a map, found a list"
    )]
    #[case::bad_selector_operator(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {namespaceSelector: {matchExpressions: [{key: a, operator: Equals}]}}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.namespaceSelector.matchExpressions[0].operator: \"Equals\" is not a valid operator (expected In, NotIn, Exists or DoesNotExist)"
    )]
    #[case::mode_a_number(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {mode: 3}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.mode: expected a string, found a number"
    )]
    fn settings_errors_name_the_file_and_field(#[case] text: &str, #[case] want: &str) {
        let got = PolicyConfig::parse("s.yml", text).unwrap_err();
        if want.ends_with(": ") {
            assert!(got.starts_with(want), "{got}");
        } else {
            assert_eq!(got, want);
        }
    }
}
