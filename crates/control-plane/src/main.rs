//! `control-plane kube`: builds the Kubernetes programs (`make kube`).
//! `control-plane up`: a cluster with policy-server and the policy, until
//! Ctrl-C or `control-plane down` (`make cluster`, `make cluster-down`).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use control_plane::webhook::{self, Policy, PolicyServer};
use control_plane::{ControlPlane, binaries, nodes};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "A real Kubernetes control plane on loopback with the policy as its webhook")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Builds into the cache the Kubernetes programs not found, and prints
    /// the directory that holds them.
    Kube,
    /// Starts a cluster with policy-server and the policy, and keeps it up
    /// until Ctrl-C (or `down`).
    Up {
        /// A ClusterAdmissionPolicy manifest: its settings, failurePolicy,
        /// timeoutSeconds and selectors.
        #[arg(long, default_value = "examples/eks-hybrid-bursting.yaml")]
        settings: PathBuf,
        /// The annotated module (`make annotated-policy.wasm`).
        #[arg(long, default_value = "annotated-policy.wasm")]
        wasm: PathBuf,
        /// The cluster's folder: certificates, kubeconfigs, logs, etcd's
        /// data; removed when the cluster stops.
        #[arg(long, default_value = "target/cluster")]
        dir: PathBuf,
    },
    /// Stops the cluster `up` started in DIR.
    Down {
        #[arg(long, default_value = "target/cluster")]
        dir: PathBuf,
    },
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Kube => {
            let bin = binaries::build_missing(&repo().join("kube"))?;
            let dir = bin.path(binaries::KUBECTL).parent().map(Path::to_path_buf);
            println!("{}", dir.unwrap_or_default().display());
        }
        Cmd::Up {
            settings,
            wasm,
            dir,
        } => up(&settings, &wasm, &dir)?,
        Cmd::Down { dir } => down(&dir)?,
    }
    Ok(())
}

const PID_FILE: &str = "control-plane.pid";

fn up(settings: &Path, wasm: &Path, dir: &Path) -> Result<()> {
    if dir.join(PID_FILE).exists() {
        bail!(
            "{} holds a running cluster (or one that did not clean up): `make cluster-down`, or remove the folder",
            dir.display()
        );
    }
    let policy = Policy::from_manifest(settings, &repo().join("metadata.yml"))?;
    let bin = control_plane::Binaries::locate()?;
    if webhook::program().is_none() {
        bail!(
            "policy-server is not on PATH (or POLICY_SERVER): install Kubewarden's policy-server 1.36"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    eprintln!(
        "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok in {}",
        dir.display()
    );
    let mut plane = ControlPlane::start(bin, dir, true)?;
    std::fs::write(plane.dir.join(PID_FILE), std::process::id().to_string())?;
    let node_set = match policy.settings["zones"]["topologyKey"].as_str() {
        Some(key) => nodes::zones(key, &["i", "k", "h"], 2),
        None if policy.settings.get("zones").is_some() => {
            nodes::zones("topology.kubernetes.io/zone", &["i", "k", "h"], 2)
        }
        None => nodes::eks(3),
    };
    nodes::create(&mut plane, &node_set)?;
    webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
    eprintln!(
        "starting policy-server with {} (compiling the module takes a while)",
        settings.display()
    );
    let mut server = PolicyServer::start(&mut plane, policy, wasm)?;
    let kubectl = plane.bin.path(binaries::KUBECTL);
    println!(
        "\nA cluster ({}) with policy `{}` in front of every pod binding.\n\n  export KUBECONFIG={}\n  export PATH={}:$PATH   # its kubectl\n  kubectl get nodes -L {}\n  kubectl create deployment web --image=registry.k8s.io/pause:3.10 --replicas=6\n  kubectl get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,COST:'.metadata.annotations.controller\\.kubernetes\\.io/pod-deletion-cost'{}\n  kubectl scale deployment web --replicas=2\n\nLogs: {}\nCtrl-C (or `make cluster-down`) stops it and removes {}.",
        binaries::kubernetes_version(),
        server.policy.name,
        plane.admin_kubeconfig.display(),
        kubectl
            .parent()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        node_set
            .first()
            .and_then(|n| n.labels.first())
            .map(|(k, _)| k.as_str())
            .unwrap_or("kubernetes.io/hostname"),
        // With balance, the zone and rank the policy wrote beside the cost.
        if server.policy.settings["zones"]["balance"] == true {
            ",ZONE:'.metadata.annotations.pod-deletion-cost\\.kubewarden\\.io/zone',RANK:'.metadata.annotations.pod-deletion-cost\\.kubewarden\\.io/rank'"
        } else {
            ""
        },
        plane.dir.display(),
        plane.dir.display(),
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if let Err(e) = plane.check_running().and_then(|()| server.check_running()) {
            eprintln!("{e:#}");
            break;
        }
    }
    eprintln!("stopping the cluster");
    server.stop();
    drop(plane);
    Ok(())
}

fn down(dir: &Path) -> Result<()> {
    let pid_file = dir.join(PID_FILE);
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        eprintln!("no cluster running in {}", dir.display());
        return Ok(());
    };
    let status = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!(
            "no process {} (a cluster that did not clean up): remove {}",
            pid.trim(),
            dir.display()
        );
    }
    for _ in 0..100 {
        if !pid_file.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the cluster in {} did not stop within 10 s", dir.display())
}
