//! `backfill`: the annotations the policy would have written on the pods
//! it never saw, as `kubectl annotate` commands, or written with `--apply`.

use super::Inputs;
use super::changes::{ChangeOutput, print_or_apply};
use clap::Args;
use std::process::ExitCode;

/// What the policy would have written on the ReplicaSet pods it never saw
/// (bound before it was installed, or while policy-server was down), as
/// `kubectl annotate --overwrite --resource-version=RV` commands that
/// kubectl refuses for a pod changed since the snapshot; with --apply,
/// written to the cluster read. Exit status 0: done; 1: --apply refused
/// for some pods (changed since they were read); 2: bad input, no access
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Also correct pods that already carry a cost: a cost that differs
    /// from what the policy would write, a rank that is duplicated,
    /// unreadable or beyond the zone's size
    #[arg(long)]
    pub include_existing: bool,

    /// Patch the pods of the cluster read (no SNAPSHOT), each on the
    /// condition that it has not changed since it was read
    #[arg(long)]
    pub apply: bool,

    /// Output format: shell commands, or JSON
    #[arg(long, short = 'o', value_enum, default_value_t = ChangeOutput::Commands)]
    pub output: ChangeOutput,
}

pub fn run(args: &BackfillArgs) -> Result<ExitCode, String> {
    args.inputs.refuse_strip_costs("backfill")?;
    args.inputs.refuse_apply_to_snapshot(args.apply)?;
    let loaded = args.inputs.load()?;
    let settings = crate::check_settings(&loaded.policy, &loaded.config)?;
    let views =
        crate::expected::evaluate(&loaded.policy, &loaded.snapshot, &loaded.config, &settings)?;
    let patches = crate::backfill::plan(&views, args.include_existing);
    print_or_apply(&loaded, &patches, args.apply, args.output)
}
