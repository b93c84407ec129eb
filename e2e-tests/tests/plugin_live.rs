//! `kubectl deletion-cost` on a live cluster: the real control plane on
//! loopback (`control_plane`), read and patched by the built command
//! through its kubeconfig, as an administrator runs it.
//!
//! `make e2e-cluster` runs these with the cluster stories (they are
//! `#[ignore]`d otherwise, so a plain `cargo test` lists them as ignored):
//! it sets `ANNOTATED_POLICY_WASM`, `KUBE_BIN_DIR` and `DELETION_COST`.

use anyhow::{Context, Result, ensure};
use control_plane::cluster::Credential;
use control_plane::nodes::{self, HYBRID_LABEL};
use control_plane::pki::Identity;
use control_plane::webhook::{self, Policy, PolicyServer};
use control_plane::workload::{self, Deployment, Pod};
use control_plane::{Binaries, ControlPlane};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One cluster at a time: two on two cores would slow each other past
/// their bounded waits.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The test hook of `--apply` (kubectl_deletion_cost::apply::PAUSE_ENV).
const PAUSE_ENV: &str = kubectl_deletion_cost::apply::PAUSE_ENV;

/// The Kubewarden CRD `--from-policy` reads, reduced to what the API server
/// needs to store one: no Kubewarden controller runs here.
const POLICY_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusteradmissionpolicies.policies.kubewarden.io
spec:
  group: policies.kubewarden.io
  scope: Cluster
  names:
    kind: ClusterAdmissionPolicy
    listKind: ClusterAdmissionPolicyList
    plural: clusteradmissionpolicies
    singular: clusteradmissionpolicy
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_path(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set: run these with `make e2e-cluster`"))
}

/// A cluster with policy-server's account, and the policy served once.
fn cluster(name: &str, nodes: &[nodes::Node]) -> Result<ControlPlane> {
    let dir = std::env::temp_dir().join(format!("plugin-{name}-{}", std::process::id()));
    let mut plane = ControlPlane::start(Binaries::locate()?, &dir, true)?;
    nodes::create(&mut plane, nodes)?;
    webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
    Ok(plane)
}

fn example_policy(file: &str) -> Result<Policy> {
    Policy::from_manifest(
        &repo().join("examples").join(file),
        &repo().join("metadata.yml"),
    )
}

/// A kubeconfig for this cluster whose user is `user` in `group`, with the
/// RBAC of `examples/plugin-rbac.yaml` for that group (or none).
fn identity(plane: &ControlPlane, user: &str, group: Option<&str>) -> Result<PathBuf> {
    let cert = plane.ca.client(user, &Identity { user, group })?;
    let path = plane.dir.join(format!("{user}.kubeconfig"));
    plane.write_kubeconfig(&path, &Credential::Cert(&cert))?;
    Ok(path)
}

/// What one run of the command gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `kubectl-deletion_cost ARGS` with `KUBECONFIG=kubeconfig`, the module
/// built into it.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Result<Command> {
    let mut command = Command::new(env_path("DELETION_COST")?);
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove(PAUSE_ENV)
        .stdin(Stdio::null());
    Ok(command)
}

fn run(kubeconfig: &Path, args: &[&str]) -> Result<Run> {
    Ok(Run::from(plugin(kubeconfig, args)?.output()?))
}

/// Waits for `path` to exist, at most `within`.
fn wait_for_file(path: &Path, within: Duration) -> Result<()> {
    let started = Instant::now();
    while !path.exists() {
        ensure!(
            started.elapsed() < within,
            "{} did not appear within {within:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn costs(pods: &[Pod]) -> BTreeMap<String, Option<String>> {
    pods.iter()
        .map(|p| (p.name.clone(), p.cost.clone()))
        .collect()
}

/// policy-server down (`failurePolicy: Ignore`): the pods are bound
/// without a cost. With no snapshot the command reads the cluster of its
/// kubeconfig and the settings of the ClusterAdmissionPolicy stored there;
/// `audit` finds the pods, `backfill --apply` patches them (a pod changed
/// between the read and the patch is refused by the API server, reported
/// and left alone, exit 1; the next run patches it), and `audit` then finds
/// nothing. An identity that may read but not patch gets exit 2 before any
/// change; one that may not read, exit 2 naming what it may not do.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn a_live_cluster_is_audited_and_backfilled_in_place() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let wasm = env_path("ANNOTATED_POLICY_WASM")?;
    let nodes = nodes::eks(3);
    let hybrid = nodes[0].name.clone();
    let mut plane = cluster("backfill", &nodes)?;
    let mut server = PolicyServer::start(
        &mut plane,
        example_policy("eks-hybrid-bursting.yaml")?,
        &wasm,
    )?;
    server.stop();
    let (key, value) = HYBRID_LABEL;
    let web = Deployment::new("web", 6).preferring(key, value);
    let pods = workload::apply(&mut plane, &web)?;
    let on_hybrid: Vec<String> = pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(hybrid.as_str()))
        .map(|p| p.name.clone())
        .collect();
    ensure!(on_hybrid.len() == 3, "3 pods on the hybrid node: {pods:?}");
    ensure!(
        pods.iter().all(|p| p.cost.is_none()),
        "a cost with policy-server down: {pods:?}"
    );
    plane.apply(POLICY_CRD)?;
    plane.kubectl_quiet(&[
        "wait",
        "--for=condition=Established",
        "crd/clusteradmissionpolicies.policies.kubewarden.io",
        "--timeout=60s",
    ])?;
    let manifest = std::fs::read_to_string(repo().join("examples/eks-hybrid-bursting.yaml"))?;
    plane.apply(&manifest)?;
    let rbac = std::fs::read_to_string(repo().join("examples/plugin-rbac.yaml"))?;
    plane.apply(&rbac)?;
    let from_policy = ["--from-policy", "pod-deletion-cost-eks-hybrid"];

    let admin = plane.admin_kubeconfig.clone();
    let audit = run(&admin, &[&["audit"][..], &from_policy].concat())?;
    ensure!(audit.code == 1, "audit should find the 3 pods: {audit}");
    ensure!(
        audit
            .stdout
            .starts_with("Audit of context loopback (namespace default): 6 ReplicaSet pods checked\nSettings: context loopback (ClusterAdmissionPolicy pod-deletion-cost-eks-hybrid), spec.settings\n"),
        "{audit}"
    );
    for pod in &on_hybrid {
        ensure!(
            audit.stdout.lines().any(|l| l.contains(pod)
                && l.contains("missing-cost")
                && l.contains("the policy would write 1")
                && l.ends_with("kubectl deletion-cost backfill")),
            "audit does not report {pod} with its fix: {audit}"
        );
    }

    // Read, not patch: refused before any change, naming the permission.
    let reader = identity(
        &plane,
        "deletion-cost-reader",
        Some("deletion-cost-readers"),
    )?;
    let refused = run(
        &reader,
        &[&["backfill", "--apply"][..], &from_policy].concat(),
    )?;
    ensure!(
        refused.code == 2
            && refused.stderr.contains("context loopback: cannot patch pods in namespace default: forbidden for user deletion-cost-reader")
            && refused.stderr.contains("nothing was changed"),
        "backfill --apply without patch rights: {refused}"
    );
    let plain = run(&reader, &[&["backfill"][..], &from_policy].concat())?;
    ensure!(
        plain.code == 0 && plain.stdout.lines().count() == 3,
        "backfill without --apply needs no patch right: {plain}"
    );
    ensure!(
        workload::pods(&plane, &web)?
            .iter()
            .all(|p| p.cost.is_none()),
        "a pod changed by a refused --apply"
    );
    // Nothing granted at all: the first request says what is missing.
    let nobody = identity(&plane, "nobody", None)?;
    let denied = run(&nobody, &["audit", "--settings", "/dev/null"])?;
    ensure!(
        denied.code == 2
            && denied.stderr.contains(
                "context loopback: cannot list nodes: forbidden: nodes is forbidden: User \"nobody\" cannot list resource \"nodes\""
            ),
        "audit without any right: {denied}"
    );

    // A pod changed between the read and the patch.
    let operator = identity(
        &plane,
        "deletion-cost-operator",
        Some("deletion-cost-operators"),
    )?;
    let go = plane.dir.join("go");
    let child = plugin(
        &operator,
        &[&["backfill", "--apply"][..], &from_policy].concat(),
    )?
    .env(PAUSE_ENV, &go)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    wait_for_file(&go.with_extension("paused"), Duration::from_secs(120))?;
    let changed = &on_hybrid[0];
    plane.kubectl_quiet(&["annotate", "pod", changed, "example.com/touched=meanwhile"])?;
    std::fs::write(&go, "")?;
    let applied = Run::from(child.wait_with_output()?);
    ensure!(
        applied.code == 1,
        "a refused patch should exit 1: {applied}"
    );
    ensure!(
        applied.stdout.contains(&format!(
            "refused default/{changed}: changed since it was read (409 Conflict: "
        )) && applied
            .stdout
            .ends_with("2 pods patched, 1 refused (changed or deleted since they were read: run the command again to read them anew)\n"),
        "{applied}"
    );
    let after = costs(&workload::pods(&plane, &web)?);
    for pod in &on_hybrid {
        let want = (pod != changed).then(|| "1".to_string());
        ensure!(
            after.get(pod) == Some(&want),
            "{pod}: {:?} after the first --apply, expected {want:?}",
            after.get(pod)
        );
    }

    let again = run(
        &operator,
        &[&["backfill", "--apply"][..], &from_policy].concat(),
    )?;
    ensure!(
        again.code == 0 && again.stdout.ends_with("1 pod patched, 0 refused\n"),
        "{again}"
    );
    let clean = run(&admin, &[&["audit"][..], &from_policy].concat())?;
    ensure!(
        clean.code == 0 && clean.stdout.contains("Findings: none"),
        "{clean}"
    );
    let pods = workload::pods(&plane, &web)?;
    for p in &pods {
        let want = on_hybrid.contains(&p.name).then(|| "1".to_string());
        ensure!(
            p.cost == want,
            "{} carries {:?}, expected {want:?}",
            p.name,
            p.cost
        );
    }
    eprintln!(
        "live backfill: 3 pods found, 2 patched, 1 refused (changed meanwhile) then patched; audit clean"
    );
    read_in_pages(&plane)
}

/// More pods than one page holds (500): the list is read whole, through
/// the continue token, as the API server's audit log shows.
fn read_in_pages(plane: &ControlPlane) -> Result<()> {
    const PODS: usize = 501;
    plane.kubectl_quiet(&["create", "namespace", "many"])?;
    // Left unscheduled (no scheduler has that name): created, never bound.
    let items: Vec<serde_json::Value> = (0..PODS)
        .map(|i| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("waiting-{i}"), "namespace": "many"},
                "spec": {"schedulerName": "nobody", "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]},
            })
        })
        .collect();
    plane.apply(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )?;
    let admin = plane.admin_kubeconfig.clone();
    let simulated = run(
        &admin,
        &["simulate", "-n", "many", "--settings", "/dev/null"],
    )?;
    ensure!(
        simulated.code == 0
            && simulated.stdout.starts_with(&format!(
                "Snapshot: context loopback (namespace many) (4 nodes, {PODS} pods): 0 bindings evaluated, 0 not sent to the policy, 0 mirror pods, {PODS} pods not bound\n"
            )),
        "{simulated}"
    );
    let pages: Vec<String> = plane
        .audit_events()?
        .iter()
        .filter(|e| {
            e["verb"] == "list"
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["namespace"] == "many"
                && e["stage"] == "ResponseComplete"
                && e["user"]["username"] == "kubernetes-admin"
        })
        .filter_map(|e| e["requestURI"].as_str().map(String::from))
        .collect();
    ensure!(
        pages.len() == 2
            && pages.iter().all(|u| u.contains("limit=500"))
            && pages[1].contains("continue="),
        "the pods of namespace many in two pages of 500: {pages:?}"
    );
    Ok(())
}

/// A burst (0 → 24, bound concurrently) with one rank then taken twice in
/// a zone, as bindings admitted together take it: `audit` names the
/// duplicate and `rebalance`; `rebalance --apply` ranks every zone 0..n-1
/// again with the matching costs; `audit` finds nothing; and 24 → 6 leaves
/// the zones at most one pod apart.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn rebalance_after_a_burst_evens_the_next_scale_down() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let wasm = env_path("ANNOTATED_POLICY_WASM")?;
    let key = "topology.kubernetes.io/zone";
    let nodes = nodes::zones(key, &["a", "b", "c"], 4);
    let zones = nodes::zone_of(&nodes, key);
    let mut plane = cluster("rebalance", &nodes)?;
    let settings = serde_json::json!({"rules": [], "zones": {"topologyKey": key, "balance": true}});
    let mut policy = example_policy("ack-zones-placeholders.yaml")?;
    policy.settings = settings.clone();
    let _server = PolicyServer::start(&mut plane, policy, &wasm)?;
    let settings_file = plane.dir.join("balance.json");
    std::fs::write(&settings_file, settings.to_string())?;
    let settings_arg = settings_file.to_str().context("a path that is not UTF-8")?;

    let web = Deployment::new("web", 0).spread_over(key);
    workload::apply(&mut plane, &web)?;
    let burst = workload::scale(&mut plane, &web, 24)?;
    let stats: BTreeMap<String, workload::RankStats> = workload::per_zone(&burst, &zones)
        .iter()
        .map(|(z, p)| (z.clone(), workload::rank_stats(p)))
        .collect();
    // The pod with the highest rank of zone a takes the lowest rank held
    // there again, with its cost: two pods of the zone then share it.
    let in_a = workload::per_zone(&burst, &zones)
        .remove("a")
        .context("no pod in zone a")?;
    let rank_of = |p: &Pod| p.rank.as_deref().and_then(|r| r.parse::<u32>().ok());
    let top = in_a
        .iter()
        .max_by_key(|p| rank_of(p))
        .context("no ranked pod in zone a")?;
    let lowest = in_a.iter().filter_map(|p| rank_of(p)).min().unwrap_or(0);
    plane.kubectl_quiet(&[
        "annotate",
        "--overwrite",
        "pod",
        &top.name,
        &format!("{}={lowest}", workload::RANK_ANNOTATION),
        &format!("{}={}", workload::COST_ANNOTATION, -i64::from(lowest)),
    ])?;

    let admin = plane.admin_kubeconfig.clone();
    let audit = run(&admin, &["audit", "--settings", settings_arg])?;
    ensure!(
        audit.code == 1
            && audit
                .stdout
                .lines()
                .any(|l| l.starts_with("  rank-duplicated")
                    && l.contains(&top.name)
                    && l.ends_with("kubectl deletion-cost rebalance")),
        "audit should report the shared rank in zone a and its fix: {audit}"
    );
    let planned = run(&admin, &["rebalance", "--settings", settings_arg])?;
    ensure!(planned.code == 0, "{planned}");
    let commands = planned.stdout.lines().count();
    ensure!(commands > 0, "rebalance planned nothing: {planned}");
    let applied = run(
        &admin,
        &["rebalance", "--apply", "--settings", settings_arg],
    )?;
    ensure!(
        applied.code == 0
            && applied
                .stdout
                .ends_with(&format!("{commands} pods patched, 0 refused\n")),
        "{applied}"
    );
    // Every namespace: the canary pods of the webhook's registration are
    // gone, so these are the same 24 pods.
    let clean = run(&admin, &["audit", "-A", "--settings", settings_arg])?;
    ensure!(
        clean.code == 0
            && clean.stdout.starts_with(
                "Audit of context loopback (all namespaces): 24 ReplicaSet pods checked\n"
            )
            && clean.stdout.contains("Findings: none"),
        "{clean}"
    );
    // What the policy would do to the cluster read live, replayed.
    let simulated = run(
        &admin,
        &[
            "simulate",
            "-n",
            "default",
            "--settings",
            settings_arg,
            "--scale",
            "default/web=6",
        ],
    )?;
    ensure!(
        simulated.code == 0
            && simulated.stdout.starts_with(
                "Snapshot: context loopback (namespace default) (12 nodes, 24 pods): 24 bindings evaluated"
            )
            && simulated.stdout.contains("Scale default/web ("),
        "{simulated}"
    );
    let pods = workload::pods(&plane, &web)?;
    for (zone, members) in workload::per_zone(&pods, &zones) {
        let mut ranks: Vec<u32> = members
            .iter()
            .filter_map(|p| p.rank.as_deref()?.parse().ok())
            .collect();
        ranks.sort();
        ensure!(
            ranks.iter().copied().eq(0..members.len() as u32),
            "zone {zone}: ranks {ranks:?} after rebalance --apply"
        );
        for p in &members {
            let rank: i64 = p.rank.as_deref().unwrap_or("0").parse()?;
            ensure!(
                p.cost == Some((-rank).to_string()),
                "{}: cost {:?} for rank {rank}",
                p.name,
                p.cost
            );
        }
    }
    let left = workload::scale(&mut plane, &web, 6)?;
    let counts: BTreeMap<String, usize> = workload::per_zone(&left, &zones)
        .into_iter()
        .map(|(z, p)| (z, p.len()))
        .collect();
    eprintln!(
        "burst 0 → 24: ranks {stats:?}; rebalance --apply patched {commands} pods; zones after 24 → 6: {counts:?}"
    );
    let (min, max) = (
        counts.values().min().copied().unwrap_or(0),
        counts.values().max().copied().unwrap_or(0),
    );
    ensure!(
        counts.len() == 3 && max - min <= 1,
        "after rebalance the scale-down should leave the zones at most 1 apart: {counts:?}"
    );
    Ok(())
}
