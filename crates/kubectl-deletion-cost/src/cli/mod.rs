//! The command line: one subcommand per file of this module, the options
//! every snapshot-reading subcommand shares in `inputs`.

mod audit;
mod backfill;
mod changes;
mod completion;
mod inputs;
mod progress;
mod rebalance;
mod simulate;

pub use inputs::{Inputs, Loaded, STDIN_NAME};
pub use progress::Progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The name krew's convention gives the binary: `kubectl deletion-cost`
/// runs `kubectl-deletion_cost` found on PATH.
pub const BIN_NAME: &str = "kubectl-deletion_cost";

/// Exit status when the command could not do its work: bad arguments, an
/// unreadable or invalid snapshot, settings or policy module, a cluster
/// that cannot be reached or refuses a permission.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = BIN_NAME,
    bin_name = "kubectl deletion-cost",
    version,
    about = "What the pod-deletion-cost policy would do to a cluster: the live cluster of the kubeconfig context, or a kubectl snapshot",
    after_help = "Without a SNAPSHOT the cluster of the current kubeconfig context is read (--kubeconfig, --context, -n, -A). Snapshot: kubectl get nodes,pods -A -o json > cluster.json (or `-` for standard input)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Simulate(simulate::SimulateArgs),
    Audit(audit::AuditArgs),
    Backfill(backfill::BackfillArgs),
    Rebalance(rebalance::RebalanceArgs),
    Completion(completion::CompletionArgs),
}

/// Parses the process arguments, runs the subcommand and turns its outcome
/// into an exit status; clap prints help and usage errors itself (status
/// 2 for a usage error, 0 for --help and --version).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { 0 };
            // Nothing useful can be done when the terminal is gone.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Runs one subcommand. `Err` is a message naming what was wrong (file,
/// item, field); a subcommand that reports findings chooses its own status.
pub fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Backfill(args) => backfill::run(&args),
        Command::Rebalance(args) => rebalance::run(&args),
        Command::Completion(args) => completion::run(&args),
    }
}

/// Writes a report to standard output. A reader that stops early (`| head`)
/// is not an error: the rest is simply not wanted.
pub fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("standard output: {e}"))
        }
        _ => Ok(()),
    }
}
