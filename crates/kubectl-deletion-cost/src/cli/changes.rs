//! What `backfill` and `rebalance` do with their patches: print them as
//! `kubectl annotate` commands or JSON, or write them with `--apply`.

use super::{Inputs, Loaded};
use crate::backfill::Patch;
use clap::ValueEnum;
use std::process::ExitCode;

/// Exit status when `--apply` was refused for some pods.
pub const EXIT_REFUSED: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangeOutput {
    Commands,
    Json,
}

impl Inputs {
    /// `--apply` writes to the cluster it read, at the versions it read: a
    /// snapshot's pods may be from another cluster, or long changed.
    pub fn refuse_apply_to_snapshot(&self, apply: bool) -> Result<(), String> {
        if apply && !self.snapshots.is_empty() {
            return Err(
                "--apply patches the cluster it reads: leave out the snapshot file to read the current context (or --context, --kubeconfig)".into(),
            );
        }
        Ok(())
    }
}

pub fn print_or_apply(
    loaded: &Loaded,
    patches: &[Patch],
    apply: bool,
    output: ChangeOutput,
) -> Result<ExitCode, String> {
    let live = match (apply, &loaded.live) {
        (false, _) => None,
        (true, Some(live)) => Some(live),
        (true, None) => return Err("--apply: no cluster was read".into()),
    };
    let Some(live) = live else {
        let text = match output {
            ChangeOutput::Json => {
                serde_json::to_string_pretty(&patches).map_err(|e| e.to_string())? + "\n"
            }
            ChangeOutput::Commands => crate::backfill::render_commands(patches),
        };
        super::print_out(&text)?;
        return Ok(ExitCode::SUCCESS);
    };
    let applied = crate::apply::apply(live, patches)?;
    let text = match output {
        ChangeOutput::Json => {
            serde_json::to_string_pretty(&applied).map_err(|e| e.to_string())? + "\n"
        }
        ChangeOutput::Commands => crate::apply::render(&applied),
    };
    super::print_out(&text)?;
    Ok(if applied.refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    })
}
