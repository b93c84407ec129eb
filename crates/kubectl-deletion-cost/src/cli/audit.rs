//! `audit`: what is wrong in a cluster where the policy runs.

use super::Inputs;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

/// Exit status when the audit found something.
pub const EXIT_FOUND: u8 = 1;

/// What is wrong in a cluster where the policy runs: pods without the cost
/// it would give, costs that differ from what it would give now, ranks
/// duplicated or missing within a zone, balanced ReplicaSets whose zones
/// drift apart when scaled down by half. Exit status 0: nothing found; 1:
/// something found; 2: bad input
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Report format
    #[arg(long, short = 'o', value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    Table,
    Json,
}

pub fn run(args: &AuditArgs) -> Result<ExitCode, String> {
    args.inputs.refuse_strip_costs("audit")?;
    let loaded = args.inputs.load()?;
    let now = loaded.options.now.unwrap_or(loaded.snapshot.latest);
    let report = crate::audit::audit(&loaded.policy, &loaded.snapshot, &loaded.config, now)?;
    match args.output {
        AuditOutput::Json => {
            let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            super::print_out(&(text + "\n"))?;
        }
        AuditOutput::Table => super::print_out(&crate::audit::render_table(&report))?,
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FOUND)
    })
}
