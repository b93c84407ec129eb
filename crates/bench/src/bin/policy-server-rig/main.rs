//! `make policy-server-rig`, `make load`, `make policy-server-latency`: the
//! real policy-server on 127.0.0.1 in front of a real kube-apiserver (with
//! etcd) holding the fixture cluster, from a shell: serves until standard
//! input closes, or measures what a binding costs through it
//! (`--measure N`).

use anyhow::{Context, Result, bail};
use clap::Parser;
use cluster_sim::Cluster;
use control_plane::fixture::{self as fx, ACK_NODE_K, HYBRID_NODE};
use control_plane::policy_server::{self, Standalone};
use control_plane::webhook::{self, Policy};
use control_plane::{Binaries, ControlPlane};
use kubectl_deletion_cost::PolicyConfig;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasm_host::latency::{Percentiles, ms};

const SHOP_RS: &str = "web-6d9c";

/// Starts etcd and kube-apiserver on 127.0.0.1 holding the fixture nodes
/// and a ReplicaSet shop/web of ranked pods, and the real policy-server
/// reading them as its ServiceAccount (with the RBAC of
/// examples/rbac.yaml); prints the URLs and serves until standard input
/// closes; or, with `--measure`, times bindings through it.
#[derive(Parser)]
#[command(name = "policy-server-rig")]
struct Options {
    /// The policy module (annotated).
    #[arg(long, default_value_os_t = repo().join("annotated-policy.wasm"))]
    wasm: PathBuf,
    /// A policy to serve: its id and a settings file or
    /// ClusterAdmissionPolicy manifest; repeatable [default: eks and ack
    /// from examples/].
    #[arg(long = "policy", value_name = "ID=SETTINGS", value_parser = policy_entry)]
    policies: Vec<(String, PathBuf)>,
    /// Ranked pods of the ReplicaSet shop/web.
    #[arg(long, default_value_t = 100)]
    siblings: usize,
    /// Serve this many seconds at most.
    #[arg(long = "for", value_name = "SECONDS", default_value = "3600", value_parser = seconds)]
    serve_for: Duration,
    /// Time N sequential bindings each of a hybrid node (eks) and of a
    /// balance binding (ack), then the first and second binding of
    /// `--workloads` new ReplicaSets.
    #[arg(long, value_name = "N")]
    measure: Option<usize>,
    /// A floor module, served as policies floor (settings {}), floor-balance
    /// (zones.balance on) and floor-balance-pod (the same, and the pending
    /// pod read uncached as the ack policy does); with `--measure`, timed
    /// next to the policy.
    #[arg(long, value_name = "MODULE")]
    floor: Option<PathBuf>,
    /// With `--measure`: alternating rounds.
    #[arg(long, default_value = "10")]
    rounds: NonZeroUsize,
    /// With `--measure`: new ReplicaSets whose first bindings are timed.
    #[arg(long, default_value_t = 10)]
    workloads: usize,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policy_entry(v: &str) -> Result<(String, PathBuf), String> {
    v.split_once('=')
        .map(|(id, file)| (id.to_string(), PathBuf::from(file)))
        .ok_or_else(|| format!("{v:?}: expected ID=SETTINGS"))
}

fn seconds(v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{v:?} is not a whole number of seconds"))
}

fn parse_args() -> Options {
    let mut o = Options::parse();
    if o.policies.is_empty() {
        let repo = repo();
        o.policies = vec![
            ("eks".into(), repo.join("examples/eks-hybrid-bursting.yaml")),
            (
                "ack".into(),
                repo.join("examples/ack-zones-placeholders.yaml"),
            ),
        ];
    }
    o
}

fn main() {
    if let Err(e) = run(&parse_args()) {
        eprintln!("policy-server-rig: {e:#}");
        std::process::exit(1);
    }
}

/// A policy served, by the name it is asked for on the command line.
struct Served {
    name: String,
    policy: Policy,
    module: PathBuf,
}

impl Served {
    fn new(name: &str, settings: Value, module: &Path) -> Result<Served> {
        Ok(Served {
            name: name.into(),
            policy: Policy::from_metadata(name, settings, &repo().join("metadata.yml"))?,
            module: module.into(),
        })
    }
}

/// The environment: the API server and policy-server in front of it.
struct Rig {
    plane: ControlPlane,
    server: Standalone,
    served: Vec<Served>,
}

impl Rig {
    /// The id policy-server serves `name` under.
    fn id(&self, name: &str) -> Result<String> {
        self.served
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.policy.id())
            .with_context(|| format!("no policy {name} is served"))
    }

    fn url(&self, name: &str) -> Result<String> {
        Ok(format!("{}/validate/{}", self.server.url(), self.id(name)?))
    }
}

fn run(o: &Options) -> Result<()> {
    let mut cluster = fx::model();
    let pending = fx::ranked_workload(&mut cluster, "shop", "web", SHOP_RS, o.siblings);
    let bin = Binaries::locate()?;
    let dir = std::env::temp_dir().join(format!("policy-server-rig-{}", std::process::id()));
    let plane = ControlPlane::start_api_server(bin, &dir, true)?;
    webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
    fx::create_model(&plane, &cluster)?;
    let mut served = Vec::new();
    for (name, file) in &o.policies {
        let settings = PolicyConfig::load(Some(file))
            .map_err(anyhow::Error::msg)?
            .settings;
        served.push(Served::new(name, settings, &o.wasm)?);
    }
    if let Some(floor) = &o.floor {
        served.push(Served::new("floor", json!({}), floor)?);
        // The mutating floor switches to its balance mode (a node read and
        // a pod list) on `"balance":true` in its settings.
        served.push(Served::new(
            "floor-balance",
            json!({"zones": {"balance": true}}),
            floor,
        )?);
        // ... and also reads the pending pod uncached, as the policy must
        // when balance or placeholders are set.
        served.push(Served::new(
            "floor-balance-pod",
            json!({"zones": {"balance": true}, "readPod": pending}),
            floor,
        )?);
    }
    let policies: Vec<(Policy, PathBuf)> = served
        .iter()
        .map(|s| (s.policy.clone(), s.module.clone()))
        .collect();
    let server = Standalone::start(&plane, "policy-server", &policies)?;
    let mut rig = Rig {
        plane,
        server,
        served,
    };
    match o.measure {
        Some(n) => measure(&mut rig, &mut cluster, &pending, n, o),
        None => serve(&rig, &cluster, &pending, o),
    }
}

fn serve(rig: &Rig, cluster: &Cluster, pending: &str, o: &Options) -> Result<()> {
    println!(
        "kube-apiserver: {} (export KUBECONFIG={}); ReplicaSet shop/{SHOP_RS}: {} ranked pods; pending pod {pending}",
        rig.plane.api_url,
        rig.plane.admin_kubeconfig.display(),
        o.siblings
    );
    let requests = rig.plane.dir.join("requests");
    std::fs::create_dir_all(&requests)?;
    for (file, node) in [("hybrid.json", HYBRID_NODE), ("balance.json", ACK_NODE_K)] {
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "request": cluster.binding_request("shop", pending, node)});
        std::fs::write(requests.join(file), serde_json::to_string_pretty(&review)?)?;
    }
    for s in &rig.served {
        println!("policy {}: {}", s.name, rig.url(&s.name)?);
    }
    let first = rig.served.first().map_or("eks", |s| s.name.as_str());
    println!(
        "sample AdmissionReviews: {0}/hybrid.json, {0}/balance.json\n  \
         curl -s -H 'Content-Type: application/json' --data @{0}/hybrid.json {1}",
        requests.display(),
        rig.url(first)?
    );
    println!(
        "serving until standard input closes or {}s pass",
        o.serve_for.as_secs()
    );
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    let _ = closed_rx.recv_timeout(o.serve_for);
    Ok(())
}

/// One kind of binding timed through policy-server.
struct Load {
    name: &'static str,
    policy: &'static str,
    request: Value,
    samples: Vec<Duration>,
}

/// Posts one review and checks the answer: allowed, with a patch unless it
/// is the floor's fixed accept.
fn timed_review(
    rig: &Rig,
    connection: &mut control_plane::http::Connection,
    name: &str,
    request: &Value,
) -> Result<Duration> {
    let id = rig.id(name)?;
    let started = Instant::now();
    let response = rig.server.review(connection, &id, request)?;
    let took = started.elapsed();
    let patched = response["patch"].is_string();
    if response["allowed"] != true || patched == (name == "floor") {
        bail!("{name}: policy-server's answer is not the one expected: {response}");
    }
    Ok(took)
}

fn measure(
    rig: &mut Rig,
    cluster: &mut Cluster,
    pending: &str,
    n: usize,
    o: &Options,
) -> Result<()> {
    for needed in ["eks", "ack"] {
        if !o.policies.iter().any(|(id, _)| id == needed) {
            bail!("--measure needs the policies eks and ack (the defaults)");
        }
    }
    let mut loads = Vec::new();
    if o.floor.is_some() {
        loads.push(Load {
            name: "floor (node read, fixed accept)",
            policy: "floor",
            request: cluster.binding_request("shop", pending, HYBRID_NODE),
            samples: Vec::new(),
        });
    }
    loads.push(Load {
        name: "hybrid binding (eks)",
        policy: "eks",
        request: cluster.binding_request("shop", pending, HYBRID_NODE),
        samples: Vec::new(),
    });
    loads.push(Load {
        name: "balance binding (ack)",
        policy: "ack",
        request: cluster.binding_request("shop", pending, ACK_NODE_K),
        samples: Vec::new(),
    });
    let mut connection = rig.server.connect()?;
    for load in &loads {
        for _ in 0..50 {
            timed_review(rig, &mut connection, load.policy, &load.request)?;
        }
    }
    // Rounds alternate between the kinds, so a shared machine's load
    // spreads over all of them.
    let per_round = n.div_ceil(o.rounds.get());
    for _ in 0..o.rounds.get() {
        for load in &mut loads {
            for _ in 0..per_round {
                let took = timed_review(rig, &mut connection, load.policy, &load.request)?;
                load.samples.push(took);
            }
        }
    }
    println!(
        "{}, {} ranked siblings for the balance binding, --workers 2, kube-apiserver {}",
        policy_server_version().unwrap_or_default(),
        o.siblings,
        control_plane::binaries::kubernetes_version()
    );
    println!(
        "{:<34} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "binding", "count", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50/floor"
    );
    let floor_p50 = loads
        .first()
        .filter(|l| l.policy == "floor")
        .and_then(|l| Percentiles::of(&l.samples))
        .map(|p| p.p50);
    for load in &loads {
        let Some(p) = Percentiles::of(&load.samples) else {
            continue;
        };
        let ratio = floor_p50.map_or("-".into(), |f| {
            format!("{:.2}", p.p50.as_secs_f64() / f.as_secs_f64())
        });
        println!(
            "{:<34} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}",
            load.name,
            p.count,
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max),
            ratio
        );
    }
    first_bindings(rig, cluster, o)
}

/// The first line of `policy-server --version` (the rest lists features).
fn policy_server_version() -> Option<String> {
    let output = std::process::Command::new(webhook::program()?)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next()?.trim().to_string())
}

/// The first balance binding of a new ReplicaSet waits for policy-server to
/// LIST its pods and start the WATCH that keeps its cache; the second reads
/// that cache.
fn first_bindings(rig: &mut Rig, cluster: &mut Cluster, o: &Options) -> Result<()> {
    if o.workloads == 0 {
        return Ok(());
    }
    let mut connection = rig.server.connect()?;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for w in 0..o.workloads {
        let rs = format!("fresh-{w}");
        let before = cluster.pods().len();
        let a = fx::ranked_workload(cluster, "fresh", &rs, &rs, o.siblings);
        let b = cluster.create_rs_pod("fresh", &rs, &[("app", &rs), ("pod-template-hash", &rs)]);
        let new_pods: Vec<Value> = cluster.pods()[before..]
            .iter()
            .map(|p| p.to_json())
            .collect();
        fx::create(&rig.plane, &new_pods, &BTreeSet::new())?;
        for (pod, samples) in [(&a, &mut first), (&b, &mut second)] {
            let request = cluster.binding_request("fresh", pod, ACK_NODE_K);
            samples.push(timed_review(rig, &mut connection, "ack", &request)?);
        }
    }
    rig.server.check_running()?;
    let requests = policy_server::api_requests(&rig.plane)?;
    let reads = |verb: &str| {
        requests
            .iter()
            .filter(|r| {
                r.path == "/api/v1/namespaces/fresh/pods"
                    && r.verb == verb
                    && !r.query.contains_key("continue")
            })
            .count()
    };
    println!(
        "new ReplicaSets: {} (each {} ranked pods); LISTs {}, WATCHes {}",
        o.workloads,
        o.siblings,
        reads("list"),
        reads("watch")
    );
    for (name, samples) in [
        ("first binding (LIST + WATCH set up)", &first),
        ("second binding (cache)", &second),
    ] {
        if let Some(p) = Percentiles::of(samples) {
            println!(
                "{:<34} {:>6} {:>8} {:>8} {:>8} {:>8}",
                name,
                p.count,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.max)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Options::command().debug_assert();
    }

    #[test]
    fn policies_are_id_and_settings() {
        let o = Options::try_parse_from([
            "policy-server-rig",
            "--policy",
            "eks=examples/eks-hybrid-bursting.yaml",
            "--for",
            "5",
        ])
        .map_err(|e| e.to_string());
        let o = o.as_ref().map(|o| (&o.policies, o.serve_for));
        assert_eq!(
            o,
            Ok((
                &vec![(
                    "eks".to_string(),
                    PathBuf::from("examples/eks-hybrid-bursting.yaml")
                )],
                Duration::from_secs(5)
            ))
        );
        let bad = Options::try_parse_from(["policy-server-rig", "--policy", "eks"]);
        assert!(
            bad.is_err_and(|e| e.to_string().contains("\"eks\": expected ID=SETTINGS")),
            "--policy without '=' was accepted"
        );
    }
}
