//! What would the policy do to this cluster? Replays a kubectl snapshot's
//! bindings through policy.wasm and prints costs, deletion order and the
//! effect of scale-downs.

use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use kubectl_deletion_cost::{self as whatif, Options, PolicyConfig, ScaleTarget};
use std::path::PathBuf;
use wasm_host::Policy;

const USAGE: &str = "usage: simulate [options] SNAPSHOT [SNAPSHOT]

  SNAPSHOT            kubectl get nodes,pods -A -o json > cluster.json
                      (or two files: kubectl get nodes -o json; kubectl get pods -A -o json)
options:
  --settings FILE     policy settings (YAML or JSON), or a ClusterAdmissionPolicy /
                      AdmissionPolicy manifest whose spec.settings is read;
                      default: the policy's defaults
  --scale NS/NAME=N   scale ReplicaSet or Deployment NAME of namespace NS to N replicas
                      and show which pods go (repeatable)
  --output FORMAT     table (default) or json
  --now TIME          when the scale-down happens, RFC 3339 (default: now); the
                      ReplicaSet controller compares pod ages by power-of-two buckets of it
  --strip-costs       ignore pod-deletion-cost annotations already in the snapshot
                      (for example written by the Kyverno policy this one replaces)
  --export-cases DIR  also write each evaluated binding as a case folder (request.json,
                      settings.yml, kwctl replay session.yml, expect.json) to check the
                      prediction under kwctl: bats e2e-tests/e2e.bats with CASES_DIR=DIR
  --wasm FILE         the policy module (default: policy.wasm of this project)";

struct Args {
    snapshots: Vec<PathBuf>,
    settings: Option<PathBuf>,
    json: bool,
    wasm: PathBuf,
    options: Options,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        snapshots: Vec::new(),
        settings: None,
        json: false,
        wasm: wasm_host::default_policy_wasm(),
        options: Options::default(),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--settings" => a.settings = Some(value("--settings")?.into()),
            "--scale" => a
                .options
                .scales
                .push(value("--scale")?.parse::<ScaleTarget>()?),
            "--output" | "-o" => {
                a.json = match value("--output")?.as_str() {
                    "json" => true,
                    "table" => false,
                    other => return Err(format!("--output {other:?}: expected table or json")),
                }
            }
            "--now" => {
                let t = value("--now")?;
                a.options.now = Some(parse_timestamp(&t).map_err(|e| format!("--now: {e}"))?);
            }
            "--strip-costs" => a.options.strip_costs = true,
            "--export-cases" => a.options.export_cases = Some(value("--export-cases")?.into()),
            "--wasm" => a.wasm = value("--wasm")?.into(),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"));
            }
            file => a.snapshots.push(file.into()),
        }
    }
    if a.snapshots.is_empty() {
        return Err("no snapshot file given".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let snapshot = Snapshot::load(&args.snapshots)?;
    let config = PolicyConfig::load(args.settings.as_deref())?;
    let policy = Policy::load(&args.wasm).map_err(|e| format!("{e:#}"))?;
    let mut options = args.options.clone();
    if options.now.is_none() {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        options.now = Some(wall.max(snapshot.latest));
    }
    let report = whatif::simulate(&policy, &snapshot, &config, &options)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", whatif::render_table(&report));
    }
    Ok(())
}
