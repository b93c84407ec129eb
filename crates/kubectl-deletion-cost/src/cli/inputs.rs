//! What every subcommand that looks at a cluster reads: the snapshot, the
//! policy's settings, the policy module, the clock, and whether costs
//! already in the snapshot count.

use crate::policy_source::PolicySource;
use crate::{Options, PolicyConfig};
use clap::Args;
use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use std::io::Read;
use std::path::PathBuf;
use wasm_host::Policy;

/// The name a snapshot read from standard input goes by in messages.
pub const STDIN_NAME: &str = "(standard input)";

#[derive(Debug, Clone, Args)]
pub struct Inputs {
    /// kubectl output: `kubectl get nodes,pods -A -o json > cluster.json`, or
    /// two files (nodes, then pods); `-` reads standard input
    #[arg(value_name = "SNAPSHOT", required = true)]
    pub snapshots: Vec<PathBuf>,

    /// Policy settings (YAML or JSON), or a ClusterAdmissionPolicy /
    /// AdmissionPolicy manifest whose spec.settings is read [default: the
    /// policy's defaults]
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,

    /// The policy module: a .wasm file or registry://HOST/REPO:TAG
    /// [default: the module built into this command]
    #[arg(long, value_name = "SOURCE")]
    pub policy: Option<PolicySource>,

    /// Reach this registry over plain HTTP (repeatable); loopback hosts
    /// (localhost, 127.0.0.1, [::1]) always are
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,

    /// When scale-downs happen, RFC 3339 [default: now]; the ReplicaSet
    /// controller compares pod ages by power-of-two buckets of it
    #[arg(long, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<u64>,

    /// Ignore pod-deletion-cost annotations already in the snapshot (for
    /// example written by a Kyverno policy this one replaces)
    #[arg(long)]
    pub strip_costs: bool,
}

fn parse_now(text: &str) -> Result<u64, String> {
    parse_timestamp(text)
}

/// The inputs read and checked.
pub struct Loaded {
    pub snapshot: Snapshot,
    pub config: PolicyConfig,
    pub policy: Policy,
    /// The options shared by every subcommand, `now` filled in.
    pub options: Options,
}

impl Inputs {
    pub fn load(&self) -> Result<Loaded, String> {
        let snapshot = self.read_snapshot()?;
        let config = PolicyConfig::load(self.settings.as_deref())?;
        let source = self.policy.clone().unwrap_or_default();
        let module = source.fetch(&self.insecure_registry)?;
        let policy = Policy::from_bytes(&module)
            .map_err(|e| format!("{source}: not a policy module this command can run: {e:#}"))?;
        let now = self
            .now
            .unwrap_or_else(|| wall_clock().max(snapshot.latest));
        let options = Options {
            strip_costs: self.strip_costs,
            now: Some(now),
            ..Options::default()
        };
        Ok(Loaded {
            snapshot,
            config,
            policy,
            options,
        })
    }

    /// `--strip-costs` belongs to the replay: a command that reads the
    /// annotations as they are says so rather than ignoring it.
    pub fn refuse_strip_costs(&self, command: &str) -> Result<(), String> {
        if self.strip_costs {
            Err(format!(
                "--strip-costs: {command} reads the pods' annotations as they are; it only applies to simulate"
            ))
        } else {
            Ok(())
        }
    }

    /// Reads every snapshot file, `-` from standard input (once).
    fn read_snapshot(&self) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        let mut stdin_read = false;
        for path in &self.snapshots {
            let (name, text) = if path.as_os_str() == "-" {
                if std::mem::replace(&mut stdin_read, true) {
                    return Err("`-` (standard input) is given twice as a snapshot".into());
                }
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{STDIN_NAME}: cannot read: {e}"))?;
                (STDIN_NAME.to_string(), text)
            } else {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{name}: cannot read: {e}"))?;
                (name, text)
            };
            snapshot.add(&name, &text)?;
            snapshot.files.push(PathBuf::from(name));
        }
        snapshot.check()?;
        Ok(snapshot)
    }
}

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
