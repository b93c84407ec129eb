//! `simulate`: replay the snapshot's bindings through the policy and print
//! costs, ranks, deletion order and the effect of scale-downs.

use super::Inputs;
use super::progress::Progress;
use crate::ScaleTarget;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// What the policy would do: every binding of the snapshot replayed,
/// oldest first, then each ReplicaSet's deletion order
#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Scale ReplicaSet or Deployment NAME of namespace NS to N replicas and
    /// show which pods go (repeatable)
    #[arg(long, value_name = "NS/NAME=N")]
    pub scale: Vec<ScaleTarget>,

    /// Report format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Also write each evaluated binding as a case folder (request.json,
    /// settings.yml, kwctl replay session.yml, expect.json), to check the
    /// prediction under kwctl: `CASES_DIR=DIR bats e2e-tests/e2e.bats`
    #[arg(long, value_name = "DIR")]
    pub export_cases: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// One self-contained page: pods in zone columns, coloured by
    /// deletion order, zone counts before and after each --scale
    Html,
}

pub fn run(args: &SimulateArgs) -> Result<ExitCode, String> {
    let loaded = args.inputs.load()?;
    let mut options = loaded.options;
    options.scales = args.scale.clone();
    options.export_cases = args.export_cases.clone();
    let mut progress = Progress::on_stderr();
    let report = crate::simulate_with_progress(
        &loaded.policy,
        &loaded.snapshot,
        &loaded.config,
        &options,
        &mut |done, total| progress.update("replaying bindings", done, total),
    )?;
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        Output::Table => crate::render_table(&report),
        Output::Html => crate::html::render(&report),
    };
    // A closed pipe (`| head`) ends the output quietly instead of panicking.
    super::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}
