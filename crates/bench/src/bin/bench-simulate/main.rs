//! What the what-if replay costs on a large snapshot: a generated
//! `kubectl get nodes,pods -A -o json` export (90 nodes over three zones,
//! one 3,000-replica Deployment and 70 of 100) is replayed through
//! `policy.wasm` with zone balance on, as `simulate` does, in fresh
//! processes one round after another. Each round reports its wall time per
//! phase, CPU time and peak RSS; the floor is the time the policy itself
//! spent in the same run (inside guest calls, host calls excluded), so the
//! host side shows as what is left over.
//!
//!   bench-simulate [--divide N] [--rounds R] [--wasm policy.wasm] [--dir DIR]
//!
//! `--divide 10` divides every replica count by ten (a 1,000-pod run).

mod large_snapshot;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use cluster_sim::snapshot::Snapshot;
use kubectl_deletion_cost::{Options, PolicyConfig, ScaleTarget};
use large_snapshot::Shape;
use serde_json::{Value, json};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasm_host::Policy;

/// What the what-if replay costs on a large generated snapshot, in fresh
/// processes round after round.
#[derive(Parser)]
#[command(name = "bench-simulate", args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    step: Option<Step>,
    /// Divide every replica count by this (10: a 1,000-pod run).
    #[arg(long, default_value = "1")]
    divide: NonZeroUsize,
    /// Replay rounds, each in a fresh process.
    #[arg(long, default_value = "3")]
    rounds: NonZeroUsize,
    /// The module replayed.
    #[arg(long, default_value_os_t = wasm_host::default_policy_wasm())]
    wasm: PathBuf,
    /// Where the snapshot and settings are written.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-simulate"))]
    dir: PathBuf,
}

/// The steps run in processes of their own.
#[derive(Subcommand)]
enum Step {
    /// One replay round.
    #[command(hide = true)]
    Replay {
        wasm: PathBuf,
        snapshot: PathBuf,
        settings: PathBuf,
        scale: String,
    },
    /// Writes the snapshot.
    #[command(hide = true)]
    Generate { divide: NonZeroUsize, file: PathBuf },
}

fn main() -> Result<()> {
    let a = Args::parse();
    match &a.step {
        Some(Step::Replay {
            wasm,
            snapshot,
            settings,
            scale,
        }) => return replay_round(wasm, snapshot, settings, scale),
        Some(Step::Generate { divide, file }) => {
            large_snapshot::write(&Shape::large(divide.get()), file)?;
            return Ok(());
        }
        None => {}
    }
    let shape = Shape::large(a.divide.get());
    std::fs::create_dir_all(&a.dir).with_context(|| a.dir.display().to_string())?;
    let snapshot = a.dir.join(format!("cluster-{}.json", shape.pods()));
    let settings = a.dir.join("balance-settings.json");
    std::fs::write(&settings, large_snapshot::balance_settings().to_string())?;
    // Written afresh every time (about a second): a file left from an
    // older generator would measure something else. In a process of its
    // own: a round forked from a process that held the whole snapshot
    // would count that process's memory in its peak RSS.
    let start = Instant::now();
    run_self(&[
        "generate".as_ref(),
        a.divide.to_string().as_ref(),
        snapshot.as_os_str(),
    ])?;
    let size = std::fs::metadata(&snapshot)?.len();
    println!(
        "snapshot: {} nodes, {} pods, {:.1} MB of kubectl JSON ({}, written in {:.1} s); settings: {}",
        shape.nodes,
        shape.pods(),
        size as f64 / 1e6,
        snapshot.display(),
        start.elapsed().as_secs_f64(),
        large_snapshot::balance_settings()
    );
    let web = &shape.deployments[0];
    let scale = format!("{}/{}={}", web.0, web.1, web.2 / 2);
    let mut rounds = Vec::new();
    for round in 1..=a.rounds.get() {
        let out = run_self(&[
            "replay".as_ref(),
            a.wasm.as_os_str(),
            snapshot.as_os_str(),
            settings.as_os_str(),
            scale.as_ref(),
        ])
        .with_context(|| format!("replay round {round}"))?;
        let line = String::from_utf8_lossy(&out);
        let m: Value = serde_json::from_str(line.trim())
            .with_context(|| format!("round {round} printed {line}"))?;
        println!("round {round}: {}", describe(&m));
        rounds.push(m);
    }
    summary(&rounds);
    Ok(())
}

/// Runs this program with `args` in a child process; its standard output.
fn run_self(args: &[&std::ffi::OsStr]) -> Result<Vec<u8>> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .output()
        .context("starting bench-simulate")?;
    if !out.status.success() {
        bail!("failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// `generate DIVIDE FILE`: writes the snapshot.
fn secs(m: &Value, key: &str) -> f64 {
    m[key].as_f64().unwrap_or(f64::NAN)
}

fn describe(m: &Value) -> String {
    format!(
        "wall {:.2} s (read {:.2}, compile {:.2}, replay {:.2}, report {:.2}), CPU {:.2} s, peak RSS {:.0} MB; replay wall: policy {:.2} s, host calls {:.2} s ({} calls), rest of host {:.2} s; replay CPU: {:.2} s, policy {:.2} s, host calls {:.2} s, rest of host {:.2} s; report digest {}",
        secs(m, "wall"),
        secs(m, "read"),
        secs(m, "compile"),
        secs(m, "replay"),
        secs(m, "render"),
        secs(m, "cpu"),
        secs(m, "maxRssMB"),
        secs(m, "policy"),
        secs(m, "hostCalls"),
        m["hostCallCount"],
        secs(m, "replay") - secs(m, "policy") - secs(m, "hostCalls"),
        secs(m, "replayCpu"),
        secs(m, "policyCpu"),
        secs(m, "hostCallsCpu"),
        secs(m, "replayCpu") - secs(m, "policyCpu") - secs(m, "hostCallsCpu"),
        m["digest"].as_str().unwrap_or("?"),
    )
}

fn summary(rounds: &[Value]) {
    let range = |key: &str| {
        let v: Vec<f64> = rounds.iter().map(|m| secs(m, key)).collect();
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}–{hi:.2}")
    };
    let ratio: Vec<f64> = rounds
        .iter()
        .map(|m| secs(m, "wall") / secs(m, "policy"))
        .collect();
    let lo = ratio.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = ratio.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "over {} rounds: wall {} s, CPU {} s, peak RSS {} MB; policy {} s wall, {} s CPU; host calls {} s wall, {} s CPU; wall / policy {lo:.2}–{hi:.2}",
        rounds.len(),
        range("wall"),
        range("cpu"),
        range("maxRssMB"),
        range("policy"),
        range("policyCpu"),
        range("hostCalls"),
        range("hostCallsCpu"),
    );
    let digests: std::collections::BTreeSet<&str> =
        rounds.iter().filter_map(|m| m["digest"].as_str()).collect();
    if digests.len() > 1 {
        println!("warning: the rounds' reports differ ({digests:?})");
    }
}

/// One measured round, in this process from its start: read the snapshot,
/// compile the module, replay, render the table; print the measures as one
/// JSON line.
fn replay_round(wasm: &Path, snapshot: &Path, settings: &Path, scale: &str) -> Result<()> {
    let start = Instant::now();
    let snapshot = Snapshot::load(&[snapshot.to_path_buf()]).map_err(anyhow::Error::msg)?;
    let config = PolicyConfig::load(Some(settings)).map_err(anyhow::Error::msg)?;
    let read = start.elapsed();
    let policy = Policy::load(wasm)?;
    let compile = start.elapsed() - read;
    let options = Options {
        now: Some(snapshot.latest),
        scales: vec![scale.parse::<ScaleTarget>().map_err(anyhow::Error::msg)?],
        ..Default::default()
    };
    let cpu_before_replay = own_usage().0;
    let report = kubectl_deletion_cost::simulate(&policy, &snapshot, &config, &options)
        .map_err(anyhow::Error::msg)?;
    let replay = start.elapsed() - read - compile;
    let replay_cpu = own_usage().0 - cpu_before_replay;
    let table = kubectl_deletion_cost::render_table(&report);
    let render = start.elapsed() - read - compile - replay;
    let times = policy.call_times();
    let (cpu, max_rss_kb) = own_usage();
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "{}",
        json!({
            "wall": s(start.elapsed()), "read": s(read), "compile": s(compile),
            "replay": s(replay), "render": s(render),
            "policy": s(times.policy()), "hostCalls": s(times.in_host_calls),
            "replayCpu": replay_cpu, "policyCpu": s(times.policy_cpu()),
            "hostCallsCpu": s(times.cpu_in_host_calls),
            "hostCallCount": times.host_calls, "guestCallCount": times.guest_calls,
            "cpu": cpu, "maxRssMB": max_rss_kb as f64 / 1024.0,
            "evaluated": report.snapshot.evaluated,
            "digest": format!("{:016x}-{}", fnv1a(table.as_bytes()), table.lines().count()),
        })
    );
    Ok(())
}

/// CPU seconds (user + system) and peak resident set in KiB of this
/// process so far.
fn own_usage() -> (f64, i64) {
    // SAFETY: getrusage fills the struct it is given and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (f64::NAN, 0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(u.ru_utime) + t(u.ru_stime), u.ru_maxrss)
}

/// FNV-1a: tells two rounds' (or two builds') reports apart without
/// keeping them.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Args::command().debug_assert();
    }
}
