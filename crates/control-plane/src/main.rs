//! `control-plane kube`: builds the Kubernetes programs (make kube);
//! `control-plane up`: a cluster with the policy until Ctrl-C (make cluster).

use anyhow::Result;
use clap::{Parser, Subcommand};
use control_plane::{ControlPlane, binaries};
use std::path::PathBuf;

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
    /// Starts a cluster and keeps it up until Ctrl-C.
    Up {
        #[arg(long, default_value = "target/cluster")]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Kube => {
            let kube_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../kube");
            let bin = binaries::build_missing(&kube_dir)?;
            println!(
                "{}",
                bin.path(binaries::KUBECTL)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        Cmd::Up { dir } => {
            let bin = control_plane::Binaries::locate()?;
            let plane = ControlPlane::start(bin, &dir, false)?;
            println!("export KUBECONFIG={}", plane.admin_kubeconfig.display());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    Ok(())
}
