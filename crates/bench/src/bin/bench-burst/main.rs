//! `make bench-burst`: zone balance after a real scale-up burst.
//!
//! In a real control plane on loopback (three zones of four kwok nodes), a
//! Deployment spread over the zones (`maxSkew: 1`) is scaled 0 → 60 in one
//! step, the scheduler binding with its default settings, then down
//! 60 → 30 → 15 → 6 → 3, waiting for the ReplicaSet controller after each
//! step. Each system runs in turn in the same cluster, run by run:
//! this policy with `zones.balance` (its webhook registered) and Kubernetes
//! alone (the webhook configuration deleted). Per run it records each
//! zone's ranks (duplicated, missing), each zone's count after every step,
//! the pod writes per pod in the API server's audit log, and the time to
//! bind 300 pods; it prints medians and worsts and writes the raw figures
//! as JSON.

use anyhow::{Context, Result};
use chrono::DateTime;
use clap::Parser;
use control_plane::nodes;
use control_plane::webhook::{self, Policy, PolicyServer};
use control_plane::workload::{self, Deployment, Pod};
use control_plane::{Binaries, ControlPlane, binaries};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Zone balance after a real scale-up burst, with the policy and with Kubernetes alone"
)]
struct Args {
    /// Runs per system.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The burst: 0 → this many replicas in one step.
    #[arg(long, default_value_t = 60)]
    burst: u32,
    /// The scale-down steps after the burst.
    #[arg(long, value_delimiter = ',', default_value = "30,15,6,3")]
    steps: Vec<u32>,
    /// Pods bound for the throughput figure.
    #[arg(long, default_value_t = 300)]
    throughput_pods: u32,
    /// The annotated module.
    #[arg(long, default_value = "annotated-policy.wasm")]
    wasm: PathBuf,
    /// Another build of the policy (annotated) to run side by side as a
    /// third system, e.g. the module before a change to the ranking.
    #[arg(long, env = "BURST_BASELINE_WASM")]
    baseline_wasm: Option<PathBuf>,
    /// `kubectl-deletion_cost`: with it, a fourth system runs the policy
    /// and `rebalance --apply` between the burst and the scale-down.
    #[arg(long, env = "DELETION_COST")]
    deletion_cost: Option<PathBuf>,
    /// Where the raw figures go.
    #[arg(long, env = "BURST_JSON", default_value = "target/bench-burst.json")]
    json: PathBuf,
}

const ZONE_KEY: &str = "topology.kubernetes.io/zone";
const ZONES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    Policy,
    /// The policy, and `kubectl deletion-cost rebalance --apply` after the
    /// burst.
    Rebalanced,
    Baseline,
    Alone,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Policy => "policy (zones.balance)",
            System::Rebalanced => "policy + rebalance",
            System::Baseline => "baseline module",
            System::Alone => "Kubernetes alone",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            System::Policy => "policy",
            System::Rebalanced => "rebalanced",
            System::Baseline => "baseline",
            System::Alone => "alone",
        }
    }
}

/// One run of one system.
#[derive(Debug, Clone)]
struct Run {
    system: System,
    /// Per zone after the burst: pods, duplicated and missing ranks.
    ranks: BTreeMap<String, workload::RankStats>,
    /// Per step (the burst first): each zone's count.
    steps: Vec<(u32, BTreeMap<String, usize>)>,
    /// Pod write requests (create, update, patch, delete, any subresource)
    /// per pod of the burst, from the audit log.
    writes_per_pod: f64,
    /// First pod created to last pod bound, for `throughput_pods`.
    bind_seconds: f64,
    /// Pods `rebalance --apply` patched after the burst.
    rebalanced: Option<usize>,
}

fn spread(counts: &BTreeMap<String, usize>) -> usize {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let nodes = nodes::zones(ZONE_KEY, &ZONES, 4);
    let zone_of = nodes::zone_of(&nodes, ZONE_KEY);
    let dir = std::env::temp_dir().join(format!("bench-burst-{}", std::process::id()));
    eprintln!(
        "starting a control plane ({}) in {}",
        binaries::kubernetes_version(),
        dir.display()
    );
    let mut plane = ControlPlane::start(Binaries::locate()?, &dir, true)?;
    nodes::create(&mut plane, &nodes)?;
    webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
    let mut policy = Policy::from_manifest(
        &repo().join("examples/ack-zones-placeholders.yaml"),
        &repo().join("metadata.yml"),
    )?;
    policy.name = "burst".into();
    policy.settings = json!({"rules": [], "zones": {"topologyKey": ZONE_KEY, "balance": true}});
    let settings = policy.settings.clone();
    let mut baseline_policy = policy.clone();
    let server = PolicyServer::start(&mut plane, policy, &args.wasm)?;
    server.unregister(&mut plane)?;
    let baseline = match &args.baseline_wasm {
        Some(wasm) => {
            baseline_policy.name = "burst-baseline".into();
            let b = PolicyServer::start(&mut plane, baseline_policy, wasm)?;
            b.unregister(&mut plane)?;
            Some(b)
        }
        None => None,
    };
    let mut systems = vec![System::Policy];
    if args.deletion_cost.is_some() {
        systems.push(System::Rebalanced);
    }
    if baseline.is_some() {
        systems.push(System::Baseline);
    }
    systems.push(System::Alone);
    let settings_file = dir.join("burst-settings.json");
    std::fs::write(&settings_file, settings.to_string())?;

    let mut runs = Vec::new();
    // One webhook at most is registered at a time: the one of the system
    // that runs.
    let mut registered: Option<&PolicyServer> = None;
    for run in 0..args.runs {
        for &system in &systems {
            let wanted = match system {
                System::Policy | System::Rebalanced => Some(&server),
                System::Baseline => baseline.as_ref(),
                System::Alone => None,
            };
            if let Some(current) = registered.take() {
                current.unregister(&mut plane)?;
            }
            if let Some(next) = wanted {
                next.register(&mut plane)?;
                registered = Some(next);
            }
            let result = one_run(&mut plane, &args, system, run, &zone_of, &settings_file)
                .with_context(|| format!("{} run {}", system.name(), run + 1))?;
            eprintln!("{}", describe(&result));
            runs.push(result);
        }
    }
    let alone = median(
        runs.iter()
            .filter(|r| r.system == System::Alone)
            .map(|r| r.bind_seconds),
    );
    let with = median(
        runs.iter()
            .filter(|r| r.system == System::Policy)
            .map(|r| r.bind_seconds),
    );
    if let Some(b) = &baseline {
        let base = median(
            runs.iter()
                .filter(|r| r.system == System::Baseline)
                .map(|r| r.bind_seconds),
        );
        println!(
            "binding {} pods with the baseline module ({}): {base:.2} s (median)",
            args.throughput_pods, b.policy.name
        );
    }
    println!("{}", table(&args, &systems, &runs));
    println!(
        "binding {} pods: {with:.2} s with the webhook, {alone:.2} s without (median): throughput ratio {:.3}",
        args.throughput_pods,
        alone / with
    );
    println!(
        "peer controller (lablabs/pod-deletion-cost-controller): not measured: the Go module proxy refuses the module (403 \"This module version is not available\" for its version list, @latest and every version asked)"
    );
    write_json(&args, &settings, &runs, alone / with)?;
    println!("raw figures: {}", args.json.display());
    Ok(())
}

fn one_run(
    plane: &mut ControlPlane,
    args: &Args,
    system: System,
    run: usize,
    zone_of: &BTreeMap<String, String>,
    settings_file: &std::path::Path,
) -> Result<Run> {
    let tag = system.tag();
    let web = Deployment::new(&format!("burst-{tag}-{run}"), 0).spread_over(ZONE_KEY);
    workload::apply(plane, &web)?;
    let events_before = plane.audit_events()?.len();
    let pods = workload::scale(plane, &web, args.burst)?;
    let writes = pod_writes(plane, events_before, &pods)?;
    let zones = workload::per_zone(&pods, zone_of);
    let ranks = zones
        .iter()
        .map(|(z, p)| (z.clone(), workload::rank_stats(p)))
        .collect();
    let mut steps = vec![(args.burst, counts(&pods, zone_of))];
    let mut rebalanced = None;
    if let (System::Rebalanced, Some(tool)) = (system, &args.deletion_cost) {
        rebalanced = Some(rebalance(plane, tool, settings_file)?);
    }
    for &n in &args.steps {
        let left = workload::scale(plane, &web, n)?;
        steps.push((n, counts(&left, zone_of)));
    }
    workload::delete(plane, &web)?;

    let tp = Deployment::new(&format!("throughput-{tag}-{run}"), 0);
    workload::apply(plane, &tp)?;
    let before = plane.audit_events()?.len();
    workload::scale(plane, &tp, args.throughput_pods)?;
    let bind_seconds = bind_span(plane, before, &tp.name)?;
    workload::delete(plane, &tp)?;
    Ok(Run {
        system,
        ranks,
        steps,
        // rebalance's patches are pod writes too.
        writes_per_pod: (writes + rebalanced.unwrap_or(0)) as f64 / pods.len().max(1) as f64,
        bind_seconds,
        rebalanced,
    })
}

/// `kubectl deletion-cost rebalance --apply` on the whole cluster as the
/// administrator; the number of pods it patched.
fn rebalance(
    plane: &ControlPlane,
    tool: &std::path::Path,
    settings: &std::path::Path,
) -> Result<usize> {
    let out = std::process::Command::new(tool)
        .args(["rebalance", "--apply", "--settings"])
        .arg(settings)
        .env("KUBECONFIG", &plane.admin_kubeconfig)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "rebalance --apply failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary line: "N pods patched, M refused" ("1 pod patched").
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            (rest.starts_with("pod patched") || rest.starts_with("pods patched"))
                .then(|| n.parse().ok())
                .flatten()
        })
        .with_context(|| format!("no summary line in rebalance's output: {stdout}"))
}

fn counts(pods: &[Pod], zone_of: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = ZONES.iter().map(|z| (z.to_string(), 0)).collect();
    for (zone, p) in workload::per_zone(pods, zone_of) {
        out.insert(zone, p.len());
    }
    out
}

/// Write requests on `pods` (any subresource) after the first `skip`
/// audit events.
fn pod_writes(plane: &ControlPlane, skip: usize, pods: &[Pod]) -> Result<usize> {
    let names: std::collections::BTreeSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    Ok(plane
        .audit_events()?
        .iter()
        .skip(skip)
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["objectRef"]["resource"] == "pods"
                && matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
                && e["objectRef"]["name"]
                    .as_str()
                    .is_some_and(|n| names.contains(n))
        })
        .count())
}

/// Seconds from the first pod of `deployment` created to its last pod
/// bound, by the audit log's timestamps.
fn bind_span(plane: &ControlPlane, skip: usize, deployment: &str) -> Result<f64> {
    let prefix = format!("{deployment}-");
    let mut first_create = None;
    let mut last_bind = None;
    for e in plane.audit_events()?.iter().skip(skip) {
        if e["stage"] != "ResponseComplete"
            || e["objectRef"]["resource"] != "pods"
            || e["verb"] != "create"
        {
            continue;
        }
        let at = DateTime::parse_from_rfc3339(e["stageTimestamp"].as_str().unwrap_or_default())
            .context("an audit event without a stageTimestamp")?;
        let at = at.timestamp_micros();
        match e["objectRef"]["subresource"].as_str() {
            Some("binding")
                if e["objectRef"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix)) =>
            {
                last_bind = last_bind.max(Some(at));
            }
            // The ReplicaSet controller creates pods by generateName: the
            // audit's objectRef has no name, only the namespace.
            None if e["user"]["username"]
                == "system:serviceaccount:kube-system:replicaset-controller" =>
            {
                first_create = Some(first_create.map_or(at, |f: i64| f.min(at)));
            }
            _ => {}
        }
    }
    let (Some(first), Some(last)) = (first_create, last_bind) else {
        anyhow::bail!("no pod creation or binding of {deployment} in the audit log");
    };
    Ok((last - first) as f64 / 1e6)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn describe(r: &Run) -> String {
    let dup: usize = r.ranks.values().map(|s| s.duplicated).sum();
    let missing: usize = r.ranks.values().map(|s| s.missing).sum();
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|(n, c)| {
            format!(
                "{n}: {:?} (max−min {})",
                c.values().collect::<Vec<_>>(),
                spread(c)
            )
        })
        .collect();
    let rebalanced = r
        .rebalanced
        .map(|n| format!("; rebalance --apply patched {n} pods"))
        .unwrap_or_default();
    format!(
        "{}: {dup} duplicated and {missing} missing ranks{rebalanced}; {}; {:.2} pod writes per pod; {:.2} s to bind",
        r.system.name(),
        steps.join(", "),
        r.writes_per_pod,
        r.bind_seconds
    )
}

fn table(args: &Args, systems: &[System], runs: &[Run]) -> String {
    let mut steps = vec![args.burst];
    steps.extend(&args.steps);
    let mut out = format!(
        "zone max−min after each step, median (worst) of {} runs; ranks after the burst\n{:<24}",
        args.runs, "system"
    );
    for s in &steps {
        out += &format!(" {:>9}", format!("{s}"));
    }
    out += &format!(
        " {:>12} {:>12} {:>11}\n",
        "dup ranks", "missing", "writes/pod"
    );
    for &system in systems {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.system == system).collect();
        out += &format!("{:<24}", system.name());
        for (i, _) in steps.iter().enumerate() {
            let spreads: Vec<usize> = mine.iter().map(|r| spread(&r.steps[i].1)).collect();
            let worst = spreads.iter().max().copied().unwrap_or(0);
            let med = median(spreads.iter().map(|&s| s as f64));
            out += &format!(" {:>9}", format!("{med} ({worst})"));
        }
        let dup = |r: &&Run| r.ranks.values().map(|s| s.duplicated).sum::<usize>() as f64;
        let missing = |r: &&Run| r.ranks.values().map(|s| s.missing).sum::<usize>() as f64;
        let worst_dup = mine.iter().map(dup).fold(0.0, f64::max);
        let worst_missing = mine.iter().map(missing).fold(0.0, f64::max);
        out += &format!(
            " {:>12} {:>12} {:>11.2}\n",
            format!("{} ({worst_dup})", median(mine.iter().map(dup))),
            format!("{} ({worst_missing})", median(mine.iter().map(missing))),
            median(mine.iter().map(|r| r.writes_per_pod))
        );
    }
    out
}

fn write_json(args: &Args, settings: &Value, runs: &[Run], throughput_ratio: f64) -> Result<()> {
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "system": r.system.name(),
                "ranks": r.ranks.iter().map(|(z, s)| (z.clone(), json!({"pods": s.pods, "duplicated": s.duplicated, "missing": s.missing, "unranked": s.unranked}))).collect::<serde_json::Map<_, _>>(),
                "steps": r.steps.iter().map(|(n, c)| json!({"replicas": n, "zones": c, "maxMinusMin": spread(c)})).collect::<Vec<_>>(),
                "writesPerPod": r.writes_per_pod,
                // The cost is in the Binding itself: the API server writes
                // it with spec.nodeName, so no time passes between the two.
                "bindingToCostSeconds": if r.system == System::Alone { Value::Null } else { json!(0.0) },
                "bindSeconds": r.bind_seconds,
                "rebalancePatched": r.rebalanced,
            })
        })
        .collect();
    let doc = json!({
        "kubernetes": binaries::kubernetes_version(),
        "burst": args.burst,
        "steps": args.steps,
        "throughputPods": args.throughput_pods,
        "settings": settings,
        "runs": runs,
        "throughputRatio": throughput_ratio,
        "peer": {"measured": false, "why": "the Go module proxy refuses github.com/lablabs/pod-deletion-cost-controller (403 for its version list, @latest and every version asked)"},
    });
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.json.display()))
}
