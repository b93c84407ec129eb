//! What every subcommand that looks at a cluster reads: the snapshot (files,
//! or the live cluster of a kubeconfig context), the policy's settings, the
//! policy module, the clock, and whether costs already in the snapshot
//! count.

use super::progress::Progress;
use crate::live::{Live, Target};
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
    /// two files (nodes, then pods); `-` reads standard input [default: the
    /// live cluster of the kubeconfig context]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Policy settings (YAML or JSON), or a ClusterAdmissionPolicy /
    /// AdmissionPolicy manifest whose spec.settings is read [default: the
    /// policy's defaults]
    #[arg(long, value_name = "FILE", conflicts_with = "from_policy")]
    pub settings: Option<PathBuf>,

    /// Read the settings of this ClusterAdmissionPolicy
    /// (policies.kubewarden.io/v1) in the context's cluster
    #[arg(long, value_name = "NAME")]
    pub from_policy: Option<String>,

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

/// The cluster to read, with kubectl's own flags.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file [default: KUBECONFIG, else ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context [default: its current context]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Read the pods of this namespace [default: the context's namespace]
    #[arg(
        long,
        short = 'n',
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,

    /// Read the pods of every namespace
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
}

impl ClusterArgs {
    fn target(&self) -> Target {
        Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
        }
    }
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
    /// The cluster read, when the snapshot or the settings came from one.
    pub live: Option<Live>,
}

impl Inputs {
    pub fn load(&self) -> Result<Loaded, String> {
        let live = if self.snapshots.is_empty() || self.from_policy.is_some() {
            Some(Live::connect(&self.cluster.target())?)
        } else {
            None
        };
        let snapshot = match (&live, self.snapshots.is_empty()) {
            (Some(live), true) => {
                let mut progress = Progress::on_stderr();
                live.read_snapshot(&mut |what, done, total| progress.update(what, done, total))?
            }
            _ => {
                self.refuse_cluster_flags()?;
                self.read_snapshot()?
            }
        };
        let config = match (&self.from_policy, &live) {
            (Some(name), Some(live)) => live.cluster_policy(name)?,
            _ => PolicyConfig::load(self.settings.as_deref())?,
        };
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
            live: live.filter(|_| self.snapshots.is_empty()),
        })
    }

    /// `-n` and `-A` choose what is read from a cluster, and a snapshot
    /// file is read whole; `--kubeconfig` and `--context` name a cluster
    /// that, with a snapshot and no `--from-policy`, nothing is read from.
    /// Ignoring them silently would report other pods than asked.
    fn refuse_cluster_flags(&self) -> Result<(), String> {
        let c = &self.cluster;
        if c.namespace.is_some() || c.all_namespaces {
            return Err(
                "-n/--namespace and -A/--all-namespaces choose what is read from the cluster; a snapshot file is read whole (export one namespace with kubectl get -n NS instead)".into(),
            );
        }
        if self.from_policy.is_none() && (c.kubeconfig.is_some() || c.context.is_some()) {
            return Err(
                "--kubeconfig/--context: a snapshot file is given, so nothing is read from a cluster; leave the file out to read the cluster".into(),
            );
        }
        Ok(())
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
