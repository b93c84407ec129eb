//! `audit` and `backfill` on the bundled snapshots and on one derived from
//! the ACK snapshot where the policy was installed halfway through: the
//! exact findings, and that applying the printed `kubectl annotate`
//! commands to the snapshot leaves nothing to find.

mod common;

use common::{NOW, Run, root, run, snapshot};

use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use kubectl_deletion_cost::audit::{self, AuditReport};
use kubectl_deletion_cost::{Options, PolicyConfig, backfill, expected, rebalance, simulate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use wasm_host::Policy;

thread_local! {
    // Compiling the module is the slow part of a test: once per thread.
    static POLICY: &'static Policy = Box::leak(Box::new(
        Policy::load(&wasm_host::default_policy_wasm()).expect("policy.wasm (make policy.wasm)"),
    ));
}

/// What the policy would write on each pod, as `audit` and `backfill` see it.
fn views_of(snapshot: &Snapshot, config: &PolicyConfig) -> Vec<expected::PodView> {
    let settings = kubectl_deletion_cost::check_settings(policy(), config).unwrap();
    expected::evaluate(policy(), snapshot, config, &settings).unwrap()
}

fn policy() -> &'static Policy {
    POLICY.with(|p| *p)
}

fn config(example: &str) -> PolicyConfig {
    PolicyConfig::load(Some(&root().join("examples").join(example))).expect("example settings")
}

fn now() -> u64 {
    parse_timestamp(NOW).expect("NOW")
}

fn ack() -> Snapshot {
    Snapshot::load(&[
        snapshot("ack-zones/nodes.json"),
        snapshot("ack-zones/pods.json"),
    ])
    .expect("ACK")
}

fn eks() -> Snapshot {
    Snapshot::load(&[snapshot("eks-hybrid/cluster.json")]).expect("EKS")
}

fn run_audit(snapshot: &Snapshot, config: &PolicyConfig) -> AuditReport {
    audit::audit(policy(), snapshot, config, now()).expect("audit")
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
    std::fs::create_dir_all(dir).expect("output dir");
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
            let ns = item["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
            edit(&ns, &name, item);
        }
        let path = dir.join(format!(
            "{i}-{}",
            file.file_name().unwrap().to_string_lossy()
        ));
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
    let files = vec![
        snapshot("ack-zones/nodes.json"),
        snapshot("ack-zones/pods.json"),
    ];
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
    let report = simulate(policy(), &snapshot, &config, &options).expect("replay");
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

fn ack_files() -> Vec<PathBuf> {
    vec![
        snapshot("ack-zones/nodes.json"),
        snapshot("ack-zones/pods.json"),
    ]
}

fn missing_unranked(rs: &str, pod: &str, zone: &str, base: i64) -> String {
    format!(
        "missing-cost shop/{rs} [{pod}] {zone}: no cost nor rank; the policy would write {base} minus the pod's rank in zone {zone}"
    )
}

const API: &str = "api-6d4b8f7c9";
const WEB: &str = "web-58c9d7f6b4";

/// Every ReplicaSet pod of the ACK snapshot (none has a cost yet) with its
/// zone, in the order findings are sorted.
const ACK_PODS: [(&str, &str, &str); 15] = [
    (API, "8rt94", "h"),
    (API, "dk7tj", "k"),
    (API, "fmj97", "h"),
    (API, "j5fbz", "i"),
    (API, "mfgw7", "i"),
    (API, "wg8rd", "k"),
    (WEB, "88z5p", "i"),
    (WEB, "bs8gv", "k"),
    (WEB, "clcgh", "h"),
    (WEB, "kfjbv", "k"),
    (WEB, "lg9h6", "k"),
    (WEB, "lk9jc", "i"),
    (WEB, "ntbms", "i"),
    (WEB, "rvxhf", "i"),
    (WEB, "zd89n", "i"),
];

fn ack_missing(zone_cost: impl Fn(&str) -> i64, rs: &str) -> Vec<String> {
    ACK_PODS
        .iter()
        .filter(|(r, _, _)| *r == rs)
        .map(|(r, pod, zone)| missing_unranked(r, &format!("{r}-{pod}"), zone, zone_cost(zone)))
        .collect()
}

#[test]
fn ack_example_settings_every_pod_lacks_its_cost() {
    let r = run_audit(&ack(), &config("ack-zones-placeholders.yaml"));
    let cost = |z: &str| if z == "i" { 10 } else { 0 };
    let mut want = ack_missing(cost, API);
    want.extend(ack_missing(cost, WEB));
    assert_eq!(lines(&r), want);
    // Placeholders are checked too, and left alone.
    assert_eq!(r.pods_checked, 19);
    assert_eq!(
        r.notes,
        [
            "shop/api-6d4b8f7c9: scaled 6 → 3: h 2→0, i 2→1, k 2→2; not flagged: zones.deletionCosts gives these zones different costs"
        ]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn balance_without_zone_costs_flags_the_uneven_halving() {
    let r = run_audit(&ack(), &balance_only());
    let mut want = ack_missing(|_| 0, API);
    want.push("zone-imbalance shop/api-6d4b8f7c9 [] -: scaled 6 → 3: h 2→0, i 2→1, k 2→2".into());
    want.extend(ack_missing(|_| 0, WEB));
    assert_eq!(lines(&r), want);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn every_finding_names_the_command_that_fixes_it() {
    let r = run_audit(&ack(), &balance_only());
    let fixes: std::collections::BTreeSet<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.kind.as_str(), f.fix.as_str()))
        .collect();
    assert_eq!(
        fixes.into_iter().collect::<Vec<_>>(),
        [
            ("missing-cost", "kubectl deletion-cost backfill"),
            // Pods of the ReplicaSet lack a cost: backfill them first.
            (
                "zone-imbalance",
                "kubectl deletion-cost backfill, then kubectl deletion-cost rebalance"
            ),
        ]
    );
    let table = audit::render_table(&r);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("  KIND ") && l.contains(" DETAIL ") && l.ends_with(" FIX"))
            && table.lines().any(|l| l.starts_with("  zone-imbalance")
                && l.contains(" h 2→0, i 2→1, k 2→2 ")
                && l.ends_with(
                    "  kubectl deletion-cost backfill, then kubectl deletion-cost rebalance"
                )),
        "{table}"
    );
}

/// The cost the tool writes with a rank (backfill, rebalance) is the one
/// the policy crate's own decision gives a binding that takes that rank,
/// for every ranked pod of the ACK snapshot and the first ranks.
#[test]
fn the_cost_written_with_a_rank_is_the_policy_s() {
    use pod_deletion_cost_policy::decision::{Decision, ZoneSiblings, decide};
    let config = config("ack-zones-placeholders.yaml");
    let settings = kubectl_deletion_cost::check_settings(policy(), &config).unwrap();
    let snapshot = ack();
    let views = views_of(&snapshot, &config);
    let mut checked = 0;
    for v in views.iter().filter(|v| v.ranked()) {
        let node = snapshot.nodes.iter().find(|n| n.name == v.node).unwrap();
        for rank in 0..4u32 {
            // Siblings holding 0..rank: the binding takes `rank`.
            let held = ZoneSiblings {
                ranks: (0..rank).map(Some).collect(),
                pending: 0,
            };
            let Decision::Annotate(a) = decide(&settings, &node.labels, None, Some(&held)) else {
                panic!("{}: the policy would not annotate it", v.name);
            };
            assert_eq!(a.rank, Some(rank));
            assert_eq!(
                v.cost_with_rank(Some(rank)),
                Some(a.cost.to_string()),
                "{} rank {rank}",
                v.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15 * 4);
}

#[test]
fn eks_example_settings_hybrid_pods_lack_cost_1() {
    let r = run_audit(&eks(), &config("eks-hybrid-bursting.yaml"));
    let want: Vec<String> = ["8x8gn", "cdghh", "ddbsb", "fjx4r", "kbqgc", "ms5nt", "q4x8n", "xlgbw"]
        .iter()
        .map(|p| {
            format!(
                "missing-cost shop/web-7d9f8c6b5d [web-7d9f8c6b5d-{p}] -: no cost; the policy would write 1"
            )
        })
        .collect();
    assert_eq!(lines(&r), want);
    assert_eq!(r.pods_checked, 17);
}

/// The pods of `web` bound before the policy in `ack_half_installed`, with
/// their zones, in the order findings are sorted.
const BOUND_BEFORE_HALF: [(&str, &str); 5] = [
    ("bs8gv", "k"),
    ("lg9h6", "k"),
    ("lk9jc", "i"),
    ("ntbms", "i"),
    ("zd89n", "i"),
];

/// The ACK example's zone cost.
fn ack_zone_cost(zone: &str) -> i64 {
    if zone == "i" { 10 } else { 0 }
}

#[test]
fn half_installed_snapshot_findings() {
    let dir = scratch("half-findings");
    let r = run_audit(
        &Snapshot::load(&ack_half_installed(&dir)).unwrap(),
        &config("ack-zones-placeholders.yaml"),
    );
    let want: Vec<String> = BOUND_BEFORE_HALF
        .iter()
        .map(|(p, z)| missing_unranked(WEB, &format!("{WEB}-{p}"), z, ack_zone_cost(z)))
        .collect();
    assert_eq!(lines(&r), want);
    assert_eq!(
        r.notes,
        [
            "shop/web-58c9d7f6b4: scaled 9 → 4: h 1→1, i 5→3, k 3→0; not flagged: zones.deletionCosts gives these zones different costs",
            "shop/api-6d4b8f7c9: scaled 6 → 3: h 2→0, i 2→2, k 2→1; not flagged: zones.deletionCosts gives these zones different costs",
        ]
    );
}

/// Backfills the snapshot, applies the printed commands, audits again.
fn backfill_round_trip(
    files: &[PathBuf],
    config: &PolicyConfig,
    include: bool,
    dir: &Path,
) -> (String, AuditReport) {
    let snapshot = Snapshot::load(files).unwrap();
    let views = views_of(&snapshot, config);
    let commands = backfill::render_commands(&backfill::plan(&views, include));
    let after = apply_backfill(files, &commands, dir);
    (
        commands,
        run_audit(&Snapshot::load(&after).unwrap(), config),
    )
}

#[rstest::rstest]
#[case::ack_example("ack", "ack-zones-placeholders.yaml")]
#[case::ack_balance_only("ack", "")]
#[case::eks_example("eks", "eks-hybrid-bursting.yaml")]
#[case::half_installed("half", "ack-zones-placeholders.yaml")]
fn backfill_then_audit_finds_nothing(#[case] which: &str, #[case] example: &str) {
    let dir = scratch(&format!("round-trip-{which}-{}", example.len()));
    let files = match which {
        "ack" => ack_files(),
        "eks" => vec![snapshot("eks-hybrid/cluster.json")],
        _ => ack_half_installed(&dir.join("half")),
    };
    let config = if example.is_empty() {
        balance_only()
    } else {
        config(example)
    };
    let before = run_audit(&Snapshot::load(&files).unwrap(), &config);
    let (commands, after) = backfill_round_trip(&files, &config, false, &dir);
    assert_eq!(
        commands.lines().count(),
        before
            .findings
            .iter()
            .filter(|f| f.kind == audit::FindingKind::MissingCost)
            .count(),
        "{commands}"
    );
    assert_eq!(lines(&after), Vec::<String>::new(), "{commands}");
}

#[test]
fn half_installed_backfill_fits_the_ranks_held() {
    let dir = scratch("half-backfill");
    let files = ack_half_installed(&dir);
    let snapshot = Snapshot::load(&files).unwrap();
    let config = config("ack-zones-placeholders.yaml");
    let views = views_of(&snapshot, &config);
    let commands = backfill::render_commands(&backfill::plan(&views, false));
    // The pods bound after installation hold ranks 3 and 4 in zone i and
    // 2 in zone k (the policy counted the older pods as holding the lowest
    // slots): the older pods take those slots.
    let cmd = |rv: &str, pod: &str, cost: i32, rank: u32, zone: &str| {
        format!(
            "kubectl annotate --overwrite --resource-version={rv} -n shop pod/{WEB}-{pod} controller.kubernetes.io/pod-deletion-cost={cost} pod-deletion-cost.kubewarden.io/rank={rank} pod-deletion-cost.kubewarden.io/zone={zone}\n"
        )
    };
    let want = [
        cmd("861213", "zd89n", 10, 0, "i"),
        cmd("543461", "lk9jc", 9, 1, "i"),
        cmd("292664", "lg9h6", 0, 0, "k"),
        cmd("678293", "ntbms", 8, 2, "i"),
        cmd("713370", "bs8gv", -1, 1, "k"),
    ]
    .concat();
    assert_eq!(commands, want);
    let mut ranks_held: Vec<(String, Option<u32>)> = views
        .iter()
        .filter(|v| v.cost.is_some() && v.replica_set == WEB)
        .map(|v| {
            (
                format!("{} {}", v.name, v.zone.clone().unwrap_or_default()),
                v.rank,
            )
        })
        .collect();
    ranks_held.sort();
    assert_eq!(
        ranks_held,
        [
            (format!("{WEB}-88z5p i"), Some(3)),
            (format!("{WEB}-clcgh h"), Some(0)),
            (format!("{WEB}-kfjbv k"), Some(2)),
            (format!("{WEB}-rvxhf i"), Some(4)),
        ]
    );
}

#[test]
fn damaged_annotations_are_found_and_fixed_with_include_existing() {
    let dir = scratch("damaged");
    let config = config("ack-zones-placeholders.yaml");
    // A cluster where every pod went through the policy...
    let (_, clean) = backfill_round_trip(&ack_files(), &config, false, &dir.join("clean"));
    assert!(clean.findings.is_empty());
    let clean_files: Vec<PathBuf> = (0..2)
        .map(|i| dir.join("clean").join(["0-nodes.json", "1-pods.json"][i]))
        .collect();
    // ...then costs and ranks changed by hand.
    std::fs::create_dir_all(dir.join("damaged")).unwrap();
    let damaged = rewrite(&clean_files, &dir.join("damaged"), |_, name, pod| {
        let rank = "pod-deletion-cost.kubewarden.io/rank";
        match name.rsplit('-').next() {
            Some("j5fbz") => set_annotation(pod, "controller.kubernetes.io/pod-deletion-cost", "5"),
            Some("rvxhf") => set_annotation(pod, rank, "3"),
            Some("kfjbv") => set_annotation(pod, rank, "02"),
            Some("8rt94") => set_annotation(pod, rank, "5"),
            _ => {}
        }
    });
    let r = run_audit(&Snapshot::load(&damaged).unwrap(), &config);
    assert_eq!(
        lines(&r),
        [
            "cost-differs shop/api-6d4b8f7c9 [api-6d4b8f7c9-8rt94] h: cost -1; the policy would write -5 (0 minus rank 5)",
            "cost-differs shop/api-6d4b8f7c9 [api-6d4b8f7c9-j5fbz] i: cost 5; the policy would write 10 (10 minus rank 0)",
            "rank-gap shop/api-6d4b8f7c9 [] h: 2 pods, rank 1, 2, 3, 4 free below rank 5 held",
            "cost-differs shop/web-58c9d7f6b4 [web-58c9d7f6b4-rvxhf] i: cost 6; the policy would write 7 (10 minus rank 3)",
            "rank-missing shop/web-58c9d7f6b4 [web-58c9d7f6b4-kfjbv] k: rank \"02\" is not a rank (plain decimal, no sign)",
            "rank-duplicated shop/web-58c9d7f6b4 [web-58c9d7f6b4-88z5p,web-58c9d7f6b4-rvxhf] i: 2 pods hold rank 3",
        ]
    );
    // Every pod carries a cost: left alone by default.
    let views = views_of(&Snapshot::load(&damaged).unwrap(), &config);
    assert_eq!(backfill::plan(&views, false), []);
    let (commands, after) = backfill_round_trip(&damaged, &config, true, &dir.join("fixed"));
    // The older holder keeps a duplicated rank; a rank out of the zone's
    // range or unreadable moves to the lowest free slot.
    let words: Vec<String> = commands
        .lines()
        .map(|l| l.split_once(" -n shop ").map_or(l, |(_, w)| w).to_string())
        .collect();
    assert_eq!(
        words,
        [
            "pod/web-58c9d7f6b4-kfjbv pod-deletion-cost.kubewarden.io/rank=2",
            "pod/web-58c9d7f6b4-rvxhf pod-deletion-cost.kubewarden.io/rank=4",
            "pod/api-6d4b8f7c9-j5fbz controller.kubernetes.io/pod-deletion-cost=10",
            "pod/api-6d4b8f7c9-8rt94 pod-deletion-cost.kubewarden.io/rank=1",
        ]
    );
    assert_eq!(lines(&after), Vec::<String>::new());

    // With keepExistingCost the costs stand, the ranks are still checked.
    let mut keep = config.clone();
    keep.settings["keepExistingCost"] = Value::Bool(true);
    let r = run_audit(&Snapshot::load(&damaged).unwrap(), &keep);
    assert_eq!(
        lines(&r),
        [
            "rank-gap shop/api-6d4b8f7c9 [] h: 2 pods, rank 1, 2, 3, 4 free below rank 5 held",
            "rank-duplicated shop/web-58c9d7f6b4 [web-58c9d7f6b4-88z5p,web-58c9d7f6b4-rvxhf] i: 2 pods hold rank 3",
        ]
    );
}

/// The ACK snapshot installed halfway (see `ack_half_installed`), where
/// the pods bound before the policy carry a cost from their pod template:
/// a cost, but neither the policy's zone nor its rank.
fn ack_template_costs(dir: &Path) -> Vec<PathBuf> {
    let half = ack_half_installed(&dir.join("half"));
    rewrite(&half, &dir.join("template"), |_, name, pod| {
        let is_workload = name.starts_with("web-") || name.starts_with("api-");
        if is_workload && pod["metadata"]["annotations"][cluster_sim::COST_ANNOTATION].is_null() {
            set_annotation(pod, cluster_sim::COST_ANNOTATION, "5");
        }
    })
}

#[test]
fn a_cost_from_the_pod_template_is_reported_as_differing_and_rebalanced() {
    let dir = scratch("template-costs");
    let files = ack_template_costs(&dir);
    let config = config("ack-zones-placeholders.yaml");
    let r = run_audit(&Snapshot::load(&files).unwrap(), &config);
    let want: Vec<String> = BOUND_BEFORE_HALF
    .iter()
    .map(|(p, z)| {
        format!(
            "cost-differs shop/{WEB} [{WEB}-{p}] {z}: cost 5 without the policy's zone and rank (set before the policy saw the pod); the policy would have replaced it at binding with {} minus the pod's rank in zone {z}",
            ack_zone_cost(z)
        )
    })
    .collect();
    assert_eq!(lines(&r), want);
    assert!(
        r.findings
            .iter()
            .all(|f| f.fix == "kubectl deletion-cost rebalance"),
        "{:?}",
        r.findings
    );
    // The backfill leaves them: they carry a cost.
    let views = views_of(&Snapshot::load(&files).unwrap(), &config);
    assert_eq!(backfill::plan(&views, false), []);
    // The rebalance gives them the slots the policy counted them in when
    // it ranked the pods bound after it (3 and 4 in zone i, 2 in zone k),
    // oldest binding first, and the cost of that rank.
    let commands = backfill::render_commands(&rebalance::plan(&views));
    let words: Vec<&str> = commands
        .lines()
        .map(|l| l.split_once(" -n shop ").map_or(l, |(_, w)| w))
        .collect();
    assert_eq!(
        words,
        [
            "pod/web-58c9d7f6b4-zd89n controller.kubernetes.io/pod-deletion-cost=10 pod-deletion-cost.kubewarden.io/rank=0 pod-deletion-cost.kubewarden.io/zone=i",
            "pod/web-58c9d7f6b4-lk9jc controller.kubernetes.io/pod-deletion-cost=9 pod-deletion-cost.kubewarden.io/rank=1 pod-deletion-cost.kubewarden.io/zone=i",
            "pod/web-58c9d7f6b4-ntbms controller.kubernetes.io/pod-deletion-cost=8 pod-deletion-cost.kubewarden.io/rank=2 pod-deletion-cost.kubewarden.io/zone=i",
            "pod/web-58c9d7f6b4-lg9h6 controller.kubernetes.io/pod-deletion-cost=0 pod-deletion-cost.kubewarden.io/rank=0 pod-deletion-cost.kubewarden.io/zone=k",
            "pod/web-58c9d7f6b4-bs8gv controller.kubernetes.io/pod-deletion-cost=-1 pod-deletion-cost.kubewarden.io/rank=1 pod-deletion-cost.kubewarden.io/zone=k",
        ],
        "{commands}"
    );
    let fixed = apply_backfill(&files, &commands, &dir.join("fixed"));
    assert_eq!(
        lines(&run_audit(&Snapshot::load(&fixed).unwrap(), &config)),
        Vec::<String>::new()
    );
}

/// Backfills, then rebalances, the snapshot (applying the printed
/// commands each time), and audits what is left.
fn backfill_then_rebalance(files: &[PathBuf], config: &PolicyConfig, dir: &Path) -> AuditReport {
    let (_, _) = backfill_round_trip(files, config, false, &dir.join("backfilled"));
    let backfilled: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            dir.join("backfilled")
                .join(format!("{i}-{}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    let views = views_of(&Snapshot::load(&backfilled).unwrap(), config);
    let commands = backfill::render_commands(&rebalance::plan(&views));
    let after = apply_backfill(&backfilled, &commands, &dir.join("rebalanced"));
    run_audit(&Snapshot::load(&after).unwrap(), config)
}

#[rstest::rstest]
#[case::ack_example("ack", "ack-zones-placeholders.yaml")]
#[case::ack_balance_only("ack", "")]
#[case::eks_example("eks", "eks-hybrid-bursting.yaml")]
#[case::half_installed("half", "ack-zones-placeholders.yaml")]
#[case::template_costs("template", "ack-zones-placeholders.yaml")]
fn backfill_then_rebalance_leaves_nothing_to_report(#[case] which: &str, #[case] example: &str) {
    let dir = scratch(&format!("then-rebalance-{which}-{}", example.len()));
    let files = match which {
        "ack" => ack_files(),
        "eks" => vec![snapshot("eks-hybrid/cluster.json")],
        "half" => ack_half_installed(&dir.join("half")),
        _ => ack_template_costs(&dir.join("input")),
    };
    let config = if example.is_empty() {
        balance_only()
    } else {
        config(example)
    };
    let r = backfill_then_rebalance(&files, &config, &dir);
    assert_eq!(lines(&r), Vec::<String>::new());
}

/// The command itself: `kubectl-deletion_cost <command> --policy
/// policy.wasm --now NOW <args>`.
fn command(subcommand: &str, args: &[String]) -> Run {
    run(
        subcommand,
        ["--now", NOW]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    )
}

fn paths(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.display().to_string()).collect()
}

#[test]
fn audit_exit_status_says_whether_something_was_found() {
    let dir = scratch("cli-status");
    let settings = root().join("examples/ack-zones-placeholders.yaml");
    let mut args = vec!["--settings".to_string(), settings.display().to_string()];
    args.extend(paths(&ack_half_installed(&dir.join("half"))));
    let found = command("audit", &args);
    assert_eq!(found.code, 1, "{}", found.stderr);
    assert!(found.stdout.contains("Findings (5):"), "{}", found.stdout);
    let json: Value = serde_json::from_str(
        &command(
            "audit",
            &[args.clone(), vec!["-o".into(), "json".into()]].concat(),
        )
        .stdout,
    )
    .expect("JSON report");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(5));
    assert_eq!(json["findings"][0]["kind"], "missing-cost");

    let backfill = command("backfill", &args);
    assert_eq!(backfill.code, 0, "{}", backfill.stderr);
    let fixed = apply_backfill(
        &ack_half_installed(&dir.join("half")),
        &backfill.stdout,
        &dir.join("fixed"),
    );
    let mut clean_args = vec!["--settings".to_string(), settings.display().to_string()];
    clean_args.extend(paths(&fixed));
    let clean = command("audit", &clean_args);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("Findings: none"), "{}", clean.stdout);
}

#[rstest::rstest]
#[case::missing_snapshot(&["/nonexistent/cluster.json"], "error: /nonexistent/cluster.json: cannot read")]
#[case::settings_refused(&["--settings", "@bad-settings", "@eks"], "the policy refuses these settings")]
#[case::strip_costs(&["--strip-costs", "@eks"], "error: --strip-costs: audit reads the pods' annotations as they are")]
fn audit_bad_input_exits_2(
    #[case] args: &[&str],
    #[case] message: &str,
    #[values("audit", "backfill")] subcommand: &str,
) {
    let dir = scratch(&format!("bad-input-{subcommand}-{}", message.len()));
    let bad_settings = dir.join("settings.yaml");
    std::fs::write(&bad_settings, "rules: [{deletionCost: 1, nodeSelector: {matchLabels: {a: b}}, name: x}, {deletionCost: 2, name: x}]\n").unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| match *a {
            "@bad-settings" => bad_settings.display().to_string(),
            "@eks" => snapshot("eks-hybrid/cluster.json").display().to_string(),
            other => other.to_string(),
        })
        .collect();
    let r = command(subcommand, &args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let message = message.replace("audit reads", &format!("{subcommand} reads"));
    assert!(r.stderr.contains(&message), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}
