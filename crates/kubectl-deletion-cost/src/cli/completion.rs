//! `completion SHELL`: the shell's completion script on standard output.

use super::{BIN_NAME, Cli};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::process::ExitCode;

/// Print a shell completion script, e.g.
/// `kubectl-deletion_cost completion bash > /etc/bash_completion.d/kubectl-deletion_cost`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionArgs) -> Result<ExitCode, String> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, BIN_NAME, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
