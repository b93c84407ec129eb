//! `rebalance`: each zone of a balanced ReplicaSet ranked 0..n-1 again.

use super::Inputs;
use super::changes::{ChangeOutput, print_or_apply};
use clap::Args;
use std::process::ExitCode;

/// Ranks each zone of every balanced ReplicaSet whose ranks are duplicated
/// or missing (bursts, deletions) 0..n-1 again, in the order its pods hold
/// them, with the matching costs: as `kubectl annotate` commands, or
/// written with --apply. Exit status 0: done; 1: --apply refused for some
/// pods (changed since they were read); 2: bad input, no access
#[derive(Debug, Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Patch the pods of the cluster read (no SNAPSHOT), each on the
    /// condition that it has not changed since it was read
    #[arg(long)]
    pub apply: bool,

    /// Output format: shell commands, or JSON
    #[arg(long, short = 'o', value_enum, default_value_t = ChangeOutput::Commands)]
    pub output: ChangeOutput,
}

pub fn run(args: &RebalanceArgs) -> Result<ExitCode, String> {
    args.inputs.refuse_strip_costs("rebalance")?;
    args.inputs.refuse_apply_to_snapshot(args.apply)?;
    let loaded = args.inputs.load()?;
    let settings = crate::check_settings(&loaded.policy, &loaded.config)?;
    if !settings.balance() {
        return Err(format!(
            "{}: zones.balance is off: the policy gives no ranks, so there is nothing to rebalance",
            loaded.config.source
        ));
    }
    let views =
        crate::expected::evaluate(&loaded.policy, &loaded.snapshot, &loaded.config, &settings)?;
    let patches = crate::rebalance::plan(&views);
    print_or_apply(&loaded, &patches, args.apply, args.output)
}
