//! `audit` and `backfill` on the bundled snapshots and on one derived from
//! the ACK snapshot where the policy was installed halfway through: the
//! exact findings, and that applying the printed `kubectl annotate`
//! commands to the snapshot leaves nothing to find.

use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use kubectl_deletion_cost::audit::{self, AuditReport};
use kubectl_deletion_cost::{Options, PolicyConfig, backfill, expected, simulate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use wasm_host::Policy;

const NOW: &str = "2026-11-22T00:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn snap(rel: &str) -> PathBuf {
    root().join("crates/kubectl-deletion-cost/snapshots").join(rel)
}

fn policy() -> Policy {
    Policy::load(&wasm_host::default_policy_wasm()).expect("policy.wasm (make policy.wasm)")
}

fn config(example: &str) -> PolicyConfig {
    PolicyConfig::load(Some(&root().join("examples").join(example))).expect("example settings")
}

fn now() -> u64 {
    parse_timestamp(NOW).expect("NOW")
}

fn ack() -> Snapshot {
    Snapshot::load(&[snap("ack-zones/nodes.json"), snap("ack-zones/pods.json")]).expect("ACK")
}

fn eks() -> Snapshot {
    Snapshot::load(&[snap("eks-hybrid/cluster.json")]).expect("EKS")
}

fn run_audit(snapshot: &Snapshot, config: &PolicyConfig) -> AuditReport {
    audit::audit(&policy(), snapshot, config, now()).expect("audit")
}

/// Findings as "kind ns/rs pods zone: detail" lines, easy to compare.
fn lines(r: &AuditReport) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| {
            format!(
                "{} {}/{} [{}] {}: {}",
                f.kind.as_str(),
                f.namespace,
                f.replica_set,
                f.pods.join(","),
                f.zone.as_deref().unwrap_or("-"),
                f.detail
            )
        })
        .collect()
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Edits the pods of kubectl JSON files and writes the result to `dir`:
/// `edit(namespace, name, pod)` may change any pod. Returns the new files.
fn rewrite(
    files: &[PathBuf],
    dir: &Path,
    mut edit: impl FnMut(&str, &str, &mut Value),
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).expect("snapshot file");
        let mut doc: Value = serde_json::from_str(&text).expect("kubectl JSON");
        let items: Vec<&mut Value> = match doc.get_mut("items") {
            Some(Value::Array(items)) => items.iter_mut().collect(),
            _ => vec![&mut doc],
        };
        for item in items {
            if item["kind"] != "Pod" {
                continue;
            }
            let ns = item["metadata"]["namespace"].as_str().unwrap_or("").to_string();
            let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
            edit(&ns, &name, item);
        }
        let path = dir.join(format!("{i}-{}", file.file_name().unwrap().to_string_lossy()));
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        out.push(path);
    }
    out
}

fn set_annotation(pod: &mut Value, key: &str, value: &str) {
    let meta = &mut pod["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = serde_json::json!({});
    }
    meta["annotations"][key] = Value::String(value.to_string());
}

/// What `kubectl annotate --overwrite --resource-version=RV -n NS pod/NAME
/// k=v ...` does to a pod, read from the printed command line.
struct Annotate {
    namespace: String,
    pod: String,
    resource_version: String,
    pairs: Vec<(String, String)>,
}

fn parse_command(line: &str) -> Annotate {
    let words = shlex::split(line).expect("shell words");
    assert_eq!(words[..3], ["kubectl", "annotate", "--overwrite"], "{line}");
    let rv = words[3]
        .strip_prefix("--resource-version=")
        .unwrap_or_else(|| panic!("no --resource-version in {line}"));
    assert_eq!(words[4], "-n", "{line}");
    let pod = words[6].strip_prefix("pod/").expect("pod/NAME");
    let pairs = words[7..]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    Annotate {
        namespace: words[5].clone(),
        pod: pod.to_string(),
        resource_version: rv.to_string(),
        pairs,
    }
}

/// Runs the printed backfill commands against the snapshot files (as the
/// API server would: refused when the resourceVersion differs) and returns
/// the files after them.
fn apply_backfill(files: &[PathBuf], commands: &str, dir: &Path) -> Vec<PathBuf> {
    let mut todo: Vec<Annotate> = commands
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(parse_command)
        .collect();
    let out = rewrite(files, dir, |ns, name, pod| {
        if let Some(i) = todo.iter().position(|a| a.namespace == ns && a.pod == name) {
            let a = todo.remove(i);
            assert_eq!(
                pod["metadata"]["resourceVersion"], a.resource_version,
                "{ns}/{name}: resourceVersion"
            );
            for (k, v) in &a.pairs {
                set_annotation(pod, k, v);
            }
        }
    });
    assert!(todo.is_empty(), "commands for pods not in the snapshot");
    out
}

/// The ACK snapshot as it would be had the policy been installed when
/// half its pods were bound: the later half carries what the policy gave
/// them then (counting the earlier, unannotated pods as it does).
fn ack_half_installed(dir: &Path) -> Vec<PathBuf> {
    let files = vec![snap("ack-zones/nodes.json"), snap("ack-zones/pods.json")];
    let snapshot = Snapshot::load(&files).unwrap();
    let mut times: Vec<u64> = snapshot
        .pods
        .iter()
        .filter(|p| p.pod.node_name.is_some())
        .map(|p| p.scheduled)
        .collect();
    times.sort();
    let options = Options {
        installed_at: Some(times[times.len() / 2]),
        now: Some(now()),
        ..Default::default()
    };
    let config = config("ack-zones-placeholders.yaml");
    let report = simulate(&policy(), &snapshot, &config, &options).expect("replay");
    rewrite(&files, dir, |ns, name, pod| {
        let binding = report
            .bindings
            .iter()
            .find(|b| b.namespace == ns && b.pod == name);
        for (k, v) in binding.map(|b| &b.annotations).into_iter().flatten() {
            set_annotation(pod, k, v);
        }
    })
}

fn balance_only() -> PolicyConfig {
    PolicyConfig::parse(
        "balance.yaml",
        "zones: {topologyKey: available_zone, balance: true}\nplaceholders: {priorityClassNames: [default-priority-class]}\n",
    )
    .unwrap()
}

#[test]
fn explore() {
    let snapshot = ack();
    let c = balance_only();
    let r = run_audit(&snapshot, &c);
    println!("{}", audit::render_table(&r));
    let views = expected::evaluate(&policy(), &snapshot, &c).unwrap();
    let plan = backfill::plan(&views, false);
    let cmds = backfill::render_commands(&plan);
    println!("{cmds}");
    let dir = scratch("explore");
    let files = apply_backfill(&[snap("ack-zones/nodes.json"), snap("ack-zones/pods.json")], &cmds, &dir);
    let r = run_audit(&Snapshot::load(&files).unwrap(), &c);
    println!("{}", audit::render_table(&r));
}
