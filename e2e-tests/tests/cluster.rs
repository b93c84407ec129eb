//! The stories, in a real control plane on loopback: etcd, kube-apiserver,
//! kube-scheduler, kube-controller-manager and kwok's nodes, with the real
//! policy-server as the webhook (`control_plane`). The API server writes
//! each cost onto the pod from the Binding; the ReplicaSet controller
//! scales down by it.
//!
//! `make e2e-cluster` runs them (they are `#[ignore]`d otherwise, so a
//! plain `cargo test` lists them as ignored instead of passing them): it
//! builds the Kubernetes programs (`make kube`), annotates the module and
//! sets `ANNOTATED_POLICY_WASM`, `KUBE_BIN_DIR` and `DELETION_COST`.

use anyhow::{Context, Result, bail, ensure};
use control_plane::nodes::{self, HYBRID_LABEL, Node};
use control_plane::webhook::{self, Policy, PolicyServer};
use control_plane::workload::{self, Deployment, Pod};
use control_plane::{Binaries, ControlPlane, binaries};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Stories run one at a time: each starts a cluster of its own, and two on
/// two cores would measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required_env(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set: run the stories with `make e2e-cluster`"))
}

fn example(file: &str) -> Result<Policy> {
    Policy::from_manifest(
        &repo().join("examples").join(file),
        &repo().join("metadata.yml"),
    )
}

/// One story's cluster: the control plane, its nodes, policy-server's
/// account with the documented RBAC, and (once started) policy-server.
struct Story {
    plane: ControlPlane,
    server: Option<PolicyServer>,
    wasm: PathBuf,
}

impl Story {
    fn start(name: &str, nodes: &[Node]) -> Result<Story> {
        let wasm = required_env("ANNOTATED_POLICY_WASM")?;
        let bin = Binaries::locate()?;
        let dir = std::env::temp_dir().join(format!("story-{name}-{}", std::process::id()));
        let mut plane = ControlPlane::start(bin, &dir, true)?;
        nodes::create(&mut plane, nodes)?;
        webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
        Ok(Story {
            plane,
            server: None,
            wasm,
        })
    }

    fn serve(&mut self, policy: Policy) -> Result<()> {
        self.server = Some(PolicyServer::start(&mut self.plane, policy, &self.wasm)?);
        Ok(())
    }

    /// The served policy's id, which prefixes its audit annotations.
    fn policy_id(&self) -> Result<String> {
        self.server
            .as_ref()
            .map(|s| s.policy.id())
            .context("no policy is served")
    }

    /// Removes policy-server's webhook configuration (waiting until the
    /// API server no longer calls it), then stops it.
    fn unserve(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.unregister(&mut self.plane)?;
            server.stop();
        }
        Ok(())
    }
}

fn hybrid_node() -> String {
    nodes::eks(3)[0].name.clone()
}

fn on_node<'a>(pods: &'a [Pod], node: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .collect()
}

/// Scales a Deployment preferring the hybrid node to `up` and back to
/// `down`, first without the policy and then with it, in one cluster whose
/// hybrid node has room for `room` pods; returns how many hybrid pods each
/// kept (alone, with the policy).
fn burst_and_shrink(name: &str, room: u32, up: u32, down: u32) -> Result<(usize, usize)> {
    let hybrid = hybrid_node();
    let mut story = Story::start(name, &nodes::eks(room))?;
    let (key, value) = HYBRID_LABEL;
    let filled = |pods: &[Pod]| on_node(pods, &hybrid).len() == room as usize;

    let alone = Deployment::new("alone", up).preferring(key, value);
    let pods = workload::apply(&mut story.plane, &alone)?;
    ensure!(
        filled(&pods),
        "the burst did not fill the hybrid node: {pods:?}"
    );
    ensure!(
        pods.iter().all(|p| p.cost.is_none()),
        "a cost without the policy: {pods:?}"
    );
    let kept_alone = on_node(&workload::scale(&mut story.plane, &alone, down)?, &hybrid).len();
    workload::delete(&mut story.plane, &alone)?;

    story.serve(example("eks-hybrid-bursting.yaml")?)?;
    let burst = Deployment::new("burst", up).preferring(key, value);
    let pods = workload::apply(&mut story.plane, &burst)?;
    ensure!(
        filled(&pods),
        "the burst did not fill the hybrid node: {pods:?}"
    );
    for p in &pods {
        let expected = (p.node.as_deref() == Some(hybrid.as_str())).then(|| "1".to_string());
        ensure!(
            p.cost == expected,
            "{} on {:?} carries cost {:?}, expected {expected:?}",
            p.name,
            p.node,
            p.cost
        );
    }
    let left = workload::scale(&mut story.plane, &burst, down)?;
    let kept = on_node(&left, &hybrid).len();
    eprintln!(
        "EKS bursting {up} → {down}, hybrid node with room for {room} ({}): Kubernetes alone kept {kept_alone} of the {room} hybrid pods, the policy {kept}",
        binaries::kubernetes_version()
    );
    Ok((kept_alone, kept))
}

/// EKS bursting: a hybrid node with room for 3 pods and three EC2 nodes;
/// scaled to 15 every pod carries the policy's cost (`1` on the hybrid
/// node, none elsewhere) and scaled to 3 the hybrid pods are left.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn eks_bursting_shrinks_back_onto_the_hybrid_node() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_, kept) = burst_and_shrink("eks", 3, 15, 3)?;
    ensure!(
        kept == 3,
        "with the policy the 3 pods left should be the hybrid ones"
    );
    Ok(())
}

/// The same when the hybrid node holds more replicas than any EC2 node
/// (room for 6, 12 replicas: 6 there, 2 on each EC2 node): Kubernetes
/// alone deletes first from the node with the most replicas, the hybrid
/// one; the policy's cost keeps them.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn eks_bursting_keeps_the_hybrid_pods_where_kubernetes_alone_does_not() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (alone, kept) = burst_and_shrink("eks-full", 6, 12, 6)?;
    ensure!(
        kept == 6,
        "with the policy the 6 pods left should be the hybrid ones"
    );
    ensure!(
        alone < 6,
        "Kubernetes alone kept every hybrid pod here too ({alone}): the story no longer shows the difference"
    );
    Ok(())
}

fn ack_nodes() -> Vec<Node> {
    nodes::zones("available_zone", &["i", "k", "h"], 2)
}

const PLACEHOLDER_CLASS: &str = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: default-priority-class\nvalue: -1\nglobalDefault: false\ndescription: ack-autoscaling-placeholder's pause pods\n";

/// One placeholder Deployment per zone, as ack-autoscaling-placeholder
/// makes them (`app=ack-place-holder`, the PriorityClass of value -1).
fn placeholders(plane: &mut ControlPlane, zones: &[&str]) -> Result<Vec<Pod>> {
    plane.apply(PLACEHOLDER_CLASS)?;
    let mut all = Vec::new();
    for zone in zones {
        let mut d = Deployment::new(&format!("ack-place-holder-{zone}"), 1);
        d.labels = BTreeMap::from([
            ("app".to_string(), "ack-place-holder".to_string()),
            ("zone".to_string(), zone.to_string()),
        ]);
        d.pod_spec = serde_json::json!({
            "priorityClassName": "default-priority-class",
            "nodeSelector": {"available_zone": zone},
        });
        all.extend(workload::apply(plane, &d)?);
    }
    Ok(all)
}

/// Scales one pod at a time, each bound before the next is created: the
/// ranks of sequential bindings. (A burst, where the scheduler binds many
/// at once, is `make bench-burst`'s subject.)
fn scale_one_by_one(
    plane: &mut ControlPlane,
    d: &Deployment,
    from: u32,
    to: u32,
) -> Result<Vec<Pod>> {
    let mut pods = Vec::new();
    for n in from + 1..=to {
        pods = workload::scale(plane, d, n)?;
    }
    Ok(pods)
}

fn ranks_by_zone(pods: &[Pod]) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in pods {
        let rank = p.rank.as_deref().and_then(|r| r.parse().ok());
        if let (Some(zone), Some(rank)) = (&p.zone, rank) {
            out.entry(zone.clone()).or_default().push(rank);
        }
    }
    for ranks in out.values_mut() {
        ranks.sort();
    }
    out
}

/// ACK zones with placeholders: the placeholders never carry a cost; the
/// workload's pods are ranked 0, 1, 2 in each zone; scaled 9 → 3 the
/// ReplicaSet controller follows the costs: with the example's zone costs
/// (`i` +10) zone `i` keeps its pods, and with balance alone one pod per
/// zone is left.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn ack_zones_keep_placeholders_out_and_zones_balanced() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nodes = ack_nodes();
    let zones = nodes::zone_of(&nodes, "available_zone");
    let mut story = Story::start("ack", &nodes)?;
    let policy = example("ack-zones-placeholders.yaml")?;
    story.serve(policy.clone())?;
    let held = placeholders(&mut story.plane, &["i", "k", "h"])?;
    ensure!(
        held.iter().all(|p| p.cost.is_none() && p.rank.is_none()),
        "a placeholder was annotated: {held:?}"
    );

    let web = Deployment::new("web", 0).spread_over("available_zone");
    workload::apply(&mut story.plane, &web)?;
    let pods = scale_one_by_one(&mut story.plane, &web, 0, 9)?;
    let expected: BTreeMap<String, Vec<u32>> = ["h", "i", "k"]
        .iter()
        .map(|z| (z.to_string(), vec![0, 1, 2]))
        .collect();
    ensure!(
        ranks_by_zone(&pods) == expected,
        "ranks per zone: {:?}",
        ranks_by_zone(&pods)
    );
    let left = workload::scale(&mut story.plane, &web, 3)?;
    let counts: BTreeMap<String, usize> = workload::per_zone(&left, &zones)
        .into_iter()
        .map(|(z, p)| (z, p.len()))
        .collect();
    ensure!(
        counts == BTreeMap::from([("i".to_string(), 3)]),
        "with zone i costing 10 more, its 3 pods should be the ones left: {counts:?}"
    );
    workload::delete(&mut story.plane, &web)?;

    // The same with balance alone: no zone outweighs another.
    story.unserve()?;
    let mut balanced = policy;
    if let Some(z) = balanced.settings["zones"].as_object_mut() {
        z.remove("deletionCosts");
    }
    story.serve(balanced)?;
    let web = Deployment::new("web-balanced", 0).spread_over("available_zone");
    workload::apply(&mut story.plane, &web)?;
    scale_one_by_one(&mut story.plane, &web, 0, 9)?;
    let left = workload::scale(&mut story.plane, &web, 3)?;
    let counts: BTreeMap<String, usize> = workload::per_zone(&left, &zones)
        .into_iter()
        .map(|(z, p)| (z, p.len()))
        .collect();
    eprintln!("ACK zones 9 → 3: zone costs kept {{i: 3}}, balance alone kept {counts:?}");
    ensure!(
        counts.values().all(|&n| n == 1) && counts.len() == 3,
        "balance should leave one pod per zone: {counts:?}"
    );
    Ok(())
}

/// The pod LIST and WATCH requests policy-server made, from the API
/// server's audit log: (verb, label selector) → count.
fn policy_server_pod_reads(plane: &ControlPlane) -> Result<BTreeMap<(String, String), usize>> {
    let user = format!(
        "system:serviceaccount:{}:{}",
        webhook::NAMESPACE,
        webhook::SERVICE_ACCOUNT
    );
    let mut out = BTreeMap::new();
    for e in plane.audit_events()? {
        let verb = e["verb"].as_str().unwrap_or_default();
        if e["user"]["username"] != user.as_str()
            || e["objectRef"]["resource"] != "pods"
            || !matches!(verb, "list" | "watch")
            || e["stage"] != "ResponseStarted" && e["stage"] != "ResponseComplete"
        {
            continue;
        }
        let uri = e["requestURI"].as_str().unwrap_or_default();
        let selector = uri
            .split(['?', '&'])
            .find_map(|q| q.strip_prefix("labelSelector="))
            .unwrap_or("")
            .to_string();
        // A watch is audited when its response starts and again when it
        // ends; a list only when complete.
        if verb == "watch" && e["stage"] != "ResponseStarted" {
            continue;
        }
        *out.entry((verb.to_string(), selector)).or_default() += 1;
    }
    Ok(out)
}

/// Rollouts: each template change makes a new ReplicaSet whose pods are
/// ranked afresh; the old ReplicaSet is scaled down by cost, lowest first;
/// and policy-server lists and watches the Deployment's pods by one label
/// selector however many rollouts there are.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn rollouts_rank_the_new_set_and_keep_one_watch() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nodes = ack_nodes();
    let mut story = Story::start("rollouts", &nodes)?;
    story.serve(example("ack-zones-placeholders.yaml")?)?;
    let mut web = Deployment::new("web", 0).spread_over("available_zone");
    // One pod at a time: each old pod is deleted on its own, so the order
    // of deletions is the ReplicaSet controller's order.
    web.spec = serde_json::json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    workload::apply(&mut story.plane, &web)?;
    scale_one_by_one(&mut story.plane, &web, 0, 6)?;
    let rollouts = 3;
    for round in 1..=rollouts {
        let before = workload::pods(&story.plane, &web)?;
        let old_set = before[0].owner.clone();
        let costs: BTreeMap<String, i64> = before
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.cost.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0),
                )
            })
            .collect();
        let mut template = web.clone();
        template.replicas = 6;
        template.pod_spec["containers"] = serde_json::json!([{
            "name": "pause", "image": "registry.k8s.io/pause:3.10",
            "env": [{"name": "ROLLOUT", "value": round.to_string()}],
        }]);
        story.plane.apply(&template.manifest().to_string())?;
        let after = rollout_done(&mut story.plane, &web, old_set.as_deref(), 6)?;
        let deleted = deletion_order(&story.plane, &costs)?;
        check_cost_order(&deleted, &costs).with_context(|| format!("rollout {round}"))?;
        // However the spread placed the new pods, each zone's ranks are
        // 0..n: none held twice, none missing.
        let ranks = ranks_by_zone(&after);
        ensure!(
            ranks
                .values()
                .all(|r| r.iter().copied().eq(0..r.len() as u32))
                && ranks.values().map(Vec::len).sum::<usize>() == after.len(),
            "rollout {round}: the new set's ranks per zone: {ranks:?}"
        );
    }
    let reads = policy_server_pod_reads(&story.plane)?;
    let selectors: BTreeSet<&String> = reads.keys().map(|(_, s)| s).collect();
    eprintln!(
        "policy-server's pod reads over {rollouts} rollouts (verb, label selector → requests): {reads:?}"
    );
    ensure!(
        selectors.len() == 1,
        "one label selector for the Deployment's pods, whatever the rollouts: {reads:?}"
    );
    let watches: usize = reads
        .iter()
        .filter(|((v, _), _)| v == "watch")
        .map(|(_, n)| n)
        .sum();
    ensure!(
        watches >= 1,
        "policy-server never watched the pods: {reads:?}"
    );
    Ok(())
}

/// Waits until the rollout away from `old_set` is over: `replicas` ready
/// pods, none of them the old set's.
fn rollout_done(
    plane: &mut ControlPlane,
    web: &Deployment,
    old_set: Option<&str>,
    replicas: usize,
) -> Result<Vec<Pod>> {
    let mut last = Vec::new();
    plane
        .wait_until(
            "the rollout is over",
            std::time::Duration::from_secs(300),
            |plane| {
                last = workload::pods(plane, web)?;
                Ok(last.len() == replicas
                    && last
                        .iter()
                        .all(|p| p.ready && !p.terminating && p.owner.as_deref() != old_set))
            },
        )
        .with_context(|| format!("pods at the end: {last:?}"))?;
    Ok(last)
}

/// The pods of `costs` deleted, in the order the API server
/// received their deletion (audit log).
fn deletion_order(plane: &ControlPlane, costs: &BTreeMap<String, i64>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in plane.audit_events()? {
        if e["verb"] == "delete"
            && e["objectRef"]["resource"] == "pods"
            && e["objectRef"]["subresource"].is_null()
            && e["stage"] == "ResponseComplete"
            && e["user"]["username"] == "system:serviceaccount:kube-system:replicaset-controller"
            && let Some(name) = e["objectRef"]["name"].as_str()
            && costs.contains_key(name)
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Each deleted pod's cost is at most that of every old pod deleted after
/// it.
fn check_cost_order(deleted: &[String], costs: &BTreeMap<String, i64>) -> Result<()> {
    ensure!(
        deleted.len() == costs.len(),
        "{} old pods, {} deleted: {deleted:?}",
        costs.len(),
        deleted.len()
    );
    for (i, d) in deleted.iter().enumerate() {
        for later in &deleted[i + 1..] {
            if costs[d] > costs[later] {
                bail!(
                    "{d} (cost {}) was deleted before {later} (cost {}): order {:?}",
                    costs[d],
                    costs[later],
                    deleted.iter().map(|n| (n, costs[n])).collect::<Vec<_>>()
                );
            }
        }
    }
    Ok(())
}

fn snapshot(plane: &ControlPlane, file: &Path) -> Result<()> {
    let json = plane.kubectl_quiet(&["get", "nodes,pods", "-A", "-o", "json"])?;
    std::fs::write(file, json)?;
    Ok(())
}

fn deletion_cost(args: &[&str]) -> Result<(i32, String)> {
    let program = required_env("DELETION_COST")?;
    let out = Command::new(&program).args(args).output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), text))
}

/// policy-server down: failurePolicy Ignore lets the scheduler bind every
/// pod, without a cost; `kubectl deletion-cost audit` on the cluster's
/// snapshot finds them, its backfill lines run with the built kubectl are
/// accepted, and the audit then finds nothing.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn policy_server_down_is_found_and_backfilled() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let hybrid = hybrid_node();
    let mut story = Story::start("down", &nodes::eks(3))?;
    story.serve(example("eks-hybrid-bursting.yaml")?)?;
    if let Some(server) = story.server.as_mut() {
        server.stop();
    }
    let (key, value) = HYBRID_LABEL;
    let web = Deployment::new("web", 6).preferring(key, value);
    let pods = workload::apply(&mut story.plane, &web)?;
    ensure!(
        on_node(&pods, &hybrid).len() == 3,
        "the hybrid node should hold 3: {pods:?}"
    );
    ensure!(
        pods.iter().all(|p| p.cost.is_none()),
        "a cost with policy-server down: {pods:?}"
    );

    let dir = story.plane.dir.clone();
    let settings = repo().join("examples/eks-hybrid-bursting.yaml");
    let settings = settings
        .to_str()
        .context("a repository path that is not UTF-8")?;
    let before = dir.join("before.json");
    snapshot(&story.plane, &before)?;
    let (status, report) = deletion_cost(&[
        "audit",
        "--settings",
        settings,
        before.to_str().unwrap_or_default(),
    ])?;
    ensure!(
        status == 1,
        "audit should find the 3 hybrid pods without a cost (exit 1), got {status}:\n{report}"
    );
    for p in on_node(&pods, &hybrid) {
        ensure!(
            report.contains(&p.name),
            "audit does not name {}:\n{report}",
            p.name
        );
    }
    let (status, lines) = deletion_cost(&[
        "backfill",
        "--settings",
        settings,
        before.to_str().unwrap_or_default(),
    ])?;
    ensure!(status == 0, "backfill failed ({status}):\n{lines}");
    let script = dir.join("backfill.sh");
    std::fs::write(&script, &lines)?;
    let kube_bin = story
        .plane
        .bin
        .path(binaries::KUBECTL)
        .parent()
        .context("kubectl has no folder")?
        .to_path_buf();
    let path = format!(
        "{}:{}",
        kube_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let applied = Command::new("sh")
        .arg(&script)
        .env("PATH", path)
        .env("KUBECONFIG", &story.plane.admin_kubeconfig)
        .output()?;
    ensure!(
        applied.status.success(),
        "the backfill lines were refused: {}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );
    let after = dir.join("after.json");
    snapshot(&story.plane, &after)?;
    let (status, report) = deletion_cost(&[
        "audit",
        "--settings",
        settings,
        after.to_str().unwrap_or_default(),
    ])?;
    ensure!(
        status == 0,
        "audit after the backfill should find nothing (exit 0), got {status}:\n{report}"
    );
    let pods = workload::pods(&story.plane, &web)?;
    for p in &pods {
        let expected = (p.node.as_deref() == Some(hybrid.as_str())).then(|| "1".to_string());
        ensure!(
            p.cost == expected,
            "after the backfill {} on {:?} carries {:?}",
            p.name,
            p.node,
            p.cost
        );
    }
    Ok(())
}

/// A burst, as a real scale-up makes one: 0 → 24 in one step, the
/// scheduler binding concurrently, then 24 → 6. Every pod of the burst is
/// ranked within the burst's size, and the bindings admitted while others
/// were in flight counted those as pending siblings (the API server's audit
/// log keeps the policy's audit annotations). Pods admitted together can
/// still share a rank and a wrong guess leaves a gap, so the zones are not
/// held to at most 1 apart after the scale-down (`make bench-burst`
/// measures how far apart they are; `rebalance --apply` evens them, see
/// plugin_live.rs): this story prints them.
#[test]
#[ignore = "needs the real control plane and policy-server: make e2e-cluster"]
fn a_burst_is_ranked_and_counts_the_bindings_in_flight() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let key = "topology.kubernetes.io/zone";
    let nodes = nodes::zones(key, &["a", "b", "c"], 4);
    let zones = nodes::zone_of(&nodes, key);
    let mut story = Story::start("burst", &nodes)?;
    let mut policy = example("ack-zones-placeholders.yaml")?;
    policy.settings =
        serde_json::json!({"rules": [], "zones": {"topologyKey": key, "balance": true}});
    story.serve(policy)?;
    let web = Deployment::new("web", 0).spread_over(key);
    workload::apply(&mut story.plane, &web)?;
    let burst = workload::scale(&mut story.plane, &web, 24)?;
    let stats: BTreeMap<String, workload::RankStats> = workload::per_zone(&burst, &zones)
        .iter()
        .map(|(z, p)| (z.clone(), workload::rank_stats(p)))
        .collect();
    ensure!(
        stats.values().all(|s| s.unranked == 0),
        "a pod of the burst without a rank: {stats:?}"
    );
    let left = workload::scale(&mut story.plane, &web, 6)?;
    let counts: BTreeMap<String, usize> = workload::per_zone(&left, &zones)
        .into_iter()
        .map(|(z, p)| (z, p.len()))
        .collect();
    eprintln!(
        "burst 0 → 24 → 6: ranks after the burst {stats:?}; zones after the scale-down {counts:?}"
    );
    let ranks: Vec<u32> = burst
        .iter()
        .filter_map(|p| p.rank.as_deref().and_then(|r| r.parse().ok()))
        .collect();
    ensure!(
        ranks.len() == burst.len() && ranks.iter().all(|&r| r < 24),
        "every rank of the burst should be read back and below 24: {ranks:?}"
    );
    // Every binding of the burst went through the policy; those admitted
    // while earlier ones were in flight or not yet in policy-server's
    // cache say how many pending siblings they counted.
    let names: BTreeSet<&str> = burst.iter().map(|p| p.name.as_str()).collect();
    let key = format!("{}.kubewarden.admission/", story.policy_id()?);
    let mut annotated = 0;
    let mut with_pending = 0;
    for e in story.plane.audit_events()? {
        if e["stage"] != "ResponseComplete"
            || e["objectRef"]["subresource"] != "binding"
            || !e["objectRef"]["name"]
                .as_str()
                .is_some_and(|n| names.contains(n))
        {
            continue;
        }
        if e["annotations"][format!("{key}decision")] == "annotated" {
            annotated += 1;
        }
        if e["annotations"][format!("{key}pending-siblings")].is_string() {
            with_pending += 1;
        }
    }
    eprintln!("{with_pending} of the {annotated} bindings counted pending siblings");
    ensure!(
        annotated == 24,
        "all 24 bindings should be annotated by the policy, {annotated} were"
    );
    ensure!(
        with_pending > 0,
        "no binding of a 24-pod burst counted a pending sibling: the burst was bound one at a time, or the policy missed them"
    );
    ensure!(
        counts.values().sum::<usize>() == 6,
        "6 pods should be left: {counts:?}"
    );
    Ok(())
}
