//! `backfill`: the annotations the policy would have written on the pods
//! it never saw, as `kubectl annotate` commands.

use super::Inputs;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

/// What the policy would have written on the ReplicaSet pods it never saw
/// (bound before it was installed, or while policy-server was down), as
/// `kubectl annotate --overwrite --resource-version=RV` commands that
/// kubectl refuses for a pod changed since the snapshot
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Also correct pods that already carry a cost: a cost that differs
    /// from what the policy would write, a rank that is duplicated,
    /// unreadable or beyond the zone's size
    #[arg(long)]
    pub include_existing: bool,

    /// Output format: shell commands, or JSON
    #[arg(long, short = 'o', value_enum, default_value_t = BackfillOutput::Commands)]
    pub output: BackfillOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackfillOutput {
    Commands,
    Json,
}

pub fn run(args: &BackfillArgs) -> Result<ExitCode, String> {
    args.inputs.refuse_strip_costs("backfill")?;
    let loaded = args.inputs.load()?;
    let settings = crate::check_settings(&loaded.policy, &loaded.config)?;
    let views =
        crate::expected::evaluate(&loaded.policy, &loaded.snapshot, &loaded.config, &settings)?;
    let patches = crate::backfill::plan(&views, args.include_existing);
    match args.output {
        BackfillOutput::Json => {
            let text = serde_json::to_string_pretty(&patches).map_err(|e| e.to_string())?;
            super::print_out(&(text + "\n"))?;
        }
        BackfillOutput::Commands => super::print_out(&crate::backfill::render_commands(&patches))?,
    }
    Ok(ExitCode::SUCCESS)
}
