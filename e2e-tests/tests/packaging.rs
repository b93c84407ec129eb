//! What ships besides the module: metadata, Artifact Hub package, UI
//! questions, example manifests, and the module's size.

use rstest::rstest;
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wasm_host::Policy;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    let full = root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|d| Yaml::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|d| !d.is_null())
        .collect()
}

fn cargo_version() -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("Cargo.toml has a version")
        .to_string()
}

fn policy_wasm() -> PathBuf {
    wasm_host::default_policy_wasm()
}

#[test]
fn versions_agree() {
    let version = cargo_version();
    let metadata = yaml("metadata.yml");
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.version"].as_str(),
        Some(version.as_str()),
        "metadata.yml io.kubewarden.policy.version"
    );
    let hub = yaml("artifacthub-pkg.yml");
    assert_eq!(
        hub["version"].as_str(),
        Some(version.as_str()),
        "artifacthub-pkg.yml version"
    );
    assert!(
        read("CHANGELOG.md").contains(&format!("## [{version}]")),
        "CHANGELOG.md has no entry for {version}"
    );
    for example in example_policies() {
        let (path, doc) = example;
        let module = doc["spec"]["module"].as_str().unwrap_or_default();
        assert!(
            module.ends_with(&format!(":v{version}")),
            "{path}: module {module} is not v{version}"
        );
    }
}

/// The value at a path of a YAML document (`["rules", "0", "apiGroups"]`).
fn at<'a>(doc: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter()
        .fold(doc, |v, part| match part.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*part],
        })
}

/// Fields of the packaging files that the contract fixes, each with the
/// YAML it must hold.
#[rstest]
#[case::rule_api_groups("metadata.yml", &["rules", "0", "apiGroups"], "['']")]
#[case::rule_api_versions("metadata.yml", &["rules", "0", "apiVersions"], "[v1]")]
#[case::rule_resources("metadata.yml", &["rules", "0", "resources"], "[pods/binding]")]
#[case::rule_operations("metadata.yml", &["rules", "0", "operations"], "[CREATE]")]
#[case::mutating("metadata.yml", &["mutating"], "true")]
#[case::no_background_audit("metadata.yml", &["backgroundAudit"], "false")]
#[case::execution_mode("metadata.yml", &["executionMode"], "kubewarden-wapc")]
#[case::context_aware_resources(
    "metadata.yml",
    &["contextAwareResources"],
    "[{apiVersion: v1, kind: Node}, {apiVersion: v1, kind: Pod}]"
)]
#[case::host_capabilities(
    "metadata.yml",
    &["hostCapabilities"],
    "[kubernetes/get_resource, kubernetes/list_resources_by_namespace]"
)]
#[case::license("metadata.yml", &["annotations", "io.kubewarden.policy.license"], "Apache-2.0")]
#[case::hub_resources("metadata.yml", &["annotations", "io.artifacthub.resources"], "Binding")]
#[case::hub_license("artifacthub-pkg.yml", &["license"], "Apache-2.0")]
#[case::hub_mutation("artifacthub-pkg.yml", &["annotations", "kubewarden/mutation"], "'true'")]
#[case::hub_kubewarden_resources(
    "artifacthub-pkg.yml",
    &["annotations", "kubewarden/resources"],
    "Binding"
)]
fn packaging_matches_the_contract(#[case] file: &str, #[case] path: &[&str], #[case] want: &str) {
    let want: Yaml = serde_yaml::from_str(want).unwrap();
    assert_eq!(at(&yaml(file), path), &want);
}

#[rstest]
#[case::title("io.kubewarden.policy.title")]
#[case::description("io.kubewarden.policy.description")]
#[case::source("io.kubewarden.policy.source")]
#[case::display_name("io.artifacthub.displayName")]
#[case::keywords("io.artifacthub.keywords")]
fn metadata_annotation_is_set(#[case] key: &str) {
    let m = yaml("metadata.yml");
    assert!(
        m["annotations"][key]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "metadata.yml lacks {key}"
    );
}

#[test]
fn artifacthub_inlines_the_questions() {
    let hub = yaml("artifacthub-pkg.yml");
    assert_eq!(
        hub["annotations"]["kubewarden/questions-ui"]
            .as_str()
            .map(str::trim),
        Some(read("questions-ui.yml").trim()),
        "artifacthub-pkg.yml inlines questions-ui.yml"
    );
}

/// Setting names, read from the settings' wire structs so that a new field
/// is caught here until it is documented.
fn setting_names() -> BTreeSet<String> {
    let src = read("src/settings.rs");
    let mut names = BTreeSet::new();
    let mut in_raw = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("struct Raw") {
            in_raw = true;
            continue;
        }
        if in_raw && t == "}" {
            in_raw = false;
        }
        if in_raw
            && !t.starts_with("//")
            && !t.starts_with('#')
            && let Some((field, _)) = t.split_once(':')
        {
            let mut camel = String::new();
            let mut up = false;
            for ch in field.trim().chars() {
                if ch == '_' {
                    up = true;
                } else if up {
                    camel.extend(ch.to_uppercase());
                    up = false;
                } else {
                    camel.push(ch);
                }
            }
            names.insert(camel);
        }
    }
    names
}

fn question_variables(v: &Yaml, out: &mut BTreeSet<String>) {
    match v {
        Yaml::Mapping(m) => {
            if let Some(name) = m.get("variable").and_then(Yaml::as_str) {
                out.extend(name.split('.').map(str::to_string));
            }
            for (_, child) in m {
                question_variables(child, out);
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|c| question_variables(c, out)),
        _ => {}
    }
}

#[test]
fn every_setting_is_in_the_ui_and_the_readme() {
    let names = setting_names();
    for expected in [
        "rules",
        "nodeSelector",
        "deletionCost",
        "defaultDeletionCost",
        "zones",
        "topologyKey",
        "deletionCosts",
        "balance",
        "siblingLabels",
        "placeholders",
        "priorityClassNames",
        "podSelector",
        "keepExistingCost",
        "onLookupError",
    ] {
        assert!(
            names.contains(expected),
            "settings.rs no longer has {expected}: {names:?}"
        );
    }
    let mut questions = BTreeSet::new();
    question_variables(&yaml("questions-ui.yml"), &mut questions);
    let readme = read("README.md");
    for name in &names {
        assert!(
            questions.contains(name),
            "questions-ui.yml has no question for `{name}`"
        );
        assert!(
            readme.contains(&format!("`{name}`")) || readme.contains(&format!(".{name}`")),
            "README.md does not document `{name}`"
        );
    }
}

fn example_policies() -> Vec<(String, Yaml)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        let rel = format!("examples/{}", f.file_name().unwrap().to_string_lossy());
        for doc in yaml_docs(&rel) {
            if doc["kind"].as_str() == Some("ClusterAdmissionPolicy") {
                out.push((rel.clone(), doc));
            }
        }
    }
    out
}

/// Checks a value against the CRD's structural schema: types, required
/// fields, enums, and no field the schema does not know (the API server
/// would prune it silently, which is how settings get lost).
fn check_schema(schema: &Yaml, value: &Yaml, path: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_mapping(),
            "array" => value.is_sequence(),
            "string" => value.is_string(),
            "integer" => value.as_i64().is_some(),
            "number" => value.is_number(),
            "boolean" => value.is_bool(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: expected {t}"));
            return;
        }
    }
    if let Some(values) = schema["enum"].as_sequence()
        && !values.contains(value)
    {
        errors.push(format!("{path}: {value:?} not in {values:?}"));
    }
    if let Some(min) = schema["minimum"].as_i64()
        && value.as_i64().is_some_and(|v| v < min)
    {
        errors.push(format!("{path}: below {min}"));
    }
    if let Some(max) = schema["maximum"].as_i64()
        && value.as_i64().is_some_and(|v| v > max)
    {
        errors.push(format!("{path}: above {max}"));
    }
    if schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
        && schema["properties"].is_null()
    {
        return;
    }
    if let Some(map) = value.as_mapping() {
        for req in schema["required"].as_sequence().into_iter().flatten() {
            if let Some(r) = req.as_str()
                && !map.contains_key(r)
            {
                errors.push(format!("{path}.{r}: required"));
            }
        }
        let props = schema["properties"].as_mapping();
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default();
            let here = format!("{path}.{key}");
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check_schema(sub, v, &here, errors),
                None => match &schema["additionalProperties"] {
                    Yaml::Mapping(_) => {
                        check_schema(&schema["additionalProperties"], v, &here, errors)
                    }
                    _ if props.is_some() => errors.push(format!("{here}: unknown field")),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = value.as_sequence() {
        for (i, item) in items.iter().enumerate() {
            check_schema(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
}

#[test]
fn examples_follow_the_crd_and_the_advice() {
    let crd = yaml("e2e-tests/fixtures/crds/policies.kubewarden.io_clusteradmissionpolicies.yaml");
    let version = crd["spec"]["versions"]
        .as_sequence()
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some("v1")))
        .expect("CRD has a v1 version");
    let schema = &version["schema"]["openAPIV3Schema"];
    let policies = example_policies();
    assert!(
        policies.len() >= 2,
        "examples hold the EKS and ACK policies"
    );
    for (path, doc) in &policies {
        assert_eq!(
            doc["apiVersion"].as_str(),
            Some("policies.kubewarden.io/v1"),
            "{path}"
        );
        let mut errors = Vec::new();
        let mut spec_only = doc.clone();
        // metadata is validated by the API server, not by this schema.
        if let Yaml::Mapping(m) = &mut spec_only {
            m.remove("metadata");
        }
        check_schema(schema, &spec_only, "", &mut errors);
        assert!(errors.is_empty(), "{path}: {errors:#?}");
        let spec = &doc["spec"];
        assert_eq!(spec["mutating"], Yaml::Bool(true), "{path}: mutating");
        assert_eq!(
            spec["backgroundAudit"],
            Yaml::Bool(false),
            "{path}: backgroundAudit"
        );
        assert_eq!(
            spec["failurePolicy"].as_str(),
            Some("Ignore"),
            "{path}: failurePolicy"
        );
        let timeout = spec["timeoutSeconds"].as_i64().unwrap_or(0);
        assert!(
            (2..=10).contains(&timeout),
            "{path}: timeoutSeconds {timeout}"
        );
        assert!(
            !spec["namespaceSelector"].is_null(),
            "{path}: namespaceSelector example"
        );
        let kinds: Vec<&str> = spec["contextAwareResources"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|r| r["kind"].as_str())
            .collect();
        assert!(
            kinds.contains(&"Node"),
            "{path}: contextAwareResources lacks Node"
        );
        let settings = &spec["settings"];
        let needs_pod = !settings["placeholders"].is_null()
            || settings["keepExistingCost"].as_bool() == Some(true)
            || settings["zones"]["balance"].as_bool() == Some(true);
        assert_eq!(
            kinds.contains(&"Pod"),
            needs_pod,
            "{path}: v1/Pod access iff the pod features are on"
        );
        let rule = &spec["rules"][0];
        assert_eq!(
            rule["resources"],
            serde_yaml::from_str::<Yaml>("[pods/binding]").unwrap(),
            "{path}"
        );
    }
}

#[test]
fn example_settings_pass_the_policys_own_validation() {
    let policy = Policy::load(&policy_wasm()).unwrap_or_else(|e| panic!("{e:#}"));
    for (path, doc) in example_policies() {
        let settings: serde_json::Value =
            serde_json::to_value(&doc["spec"]["settings"]).expect("settings are JSON");
        let answer = policy
            .validate_settings(&settings)
            .expect("validate_settings");
        assert!(answer.valid, "{path}: {:?}", answer.message);
    }
    // And the check is real: a broken copy is refused with its path.
    let answer = policy
        .validate_settings(&serde_json::json!({"zones": {"balanced": true}}))
        .expect("validate_settings");
    assert!(!answer.valid);
    assert_eq!(
        answer.message.as_deref(),
        Some(
            "zones.balanced: unknown field `balanced`, expected one of `topologyKey`, `deletionCosts`, `balance`, `siblingLabels`"
        )
    );
}

#[test]
fn module_size_is_bounded() {
    let path = policy_wasm();
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make policy.wasm`)", path.display()))
        .len();
    assert!(
        size <= 1024 * 1024,
        "{} is {size} bytes, above 1 MB",
        Path::new(&path).display()
    );
}
