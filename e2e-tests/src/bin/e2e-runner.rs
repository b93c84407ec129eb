//! Runs the end-to-end case table, single evaluations, or the demo, through
//! the compiled policy in wasmtime.

use anyhow::{Context, Result, bail};
use e2e_tests::cases::{self, Case};
use serde_json::Value;
use std::path::{Path, PathBuf};
use wasm_host::replay::{self, Replay};
use wasm_host::{self as engine, Policy, ValidationResponse};

const USAGE: &str = "usage:
  e2e-runner cases [--wasm policy.wasm] [--dir e2e-tests/cases] [--filter TEXT]
  e2e-runner eval  [--wasm policy.wasm] --request R.json [--settings S.yml] [--session X.yml]
  e2e-runner demo  [--wasm policy.wasm] [--dir e2e-tests/cases]
  e2e-runner kwctl-run <kwctl run arguments>   (stand-in used to check e2e.bats itself)";

struct Args {
    wasm: PathBuf,
    dir: PathBuf,
    filter: String,
    request: Option<PathBuf>,
    settings: Option<PathBuf>,
    session: Option<PathBuf>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        wasm: wasm_host::default_policy_wasm(),
        dir: cases::default_dir(),
        filter: String::new(),
        request: None,
        settings: None,
        session: None,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--wasm" => a.wasm = value.into(),
            "--dir" => a.dir = value.into(),
            "--filter" => a.filter = value,
            "--request" => a.request = Some(value.into()),
            "--settings" => a.settings = Some(value.into()),
            "--session" => a.session = Some(value.into()),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    if command == "kwctl-run" {
        return kwctl_run(args.collect());
    }
    let a = parse(args)?;
    match command.as_str() {
        "cases" => run_cases(&a),
        "eval" => eval(&a),
        "demo" => demo(&a),
        _ => bail!("{USAGE}"),
    }
}

fn run_cases(a: &Args) -> Result<()> {
    let policy = Policy::load(&a.wasm)?;
    let all = cases::load_all(&a.dir)?;
    let (mut passed, mut failed) = (0, 0);
    for case in all.iter().filter(|c| c.name.contains(&a.filter)) {
        let failures = case.run(&policy)?;
        if failures.is_empty() {
            passed += 1;
            println!("ok   {}", case.name);
        } else {
            failed += 1;
            println!("FAIL {} — {}", case.name, case.expect.description);
            for f in failures {
                for line in f.lines() {
                    println!("       {line}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} end-to-end case(s) failed");
    }
    Ok(())
}

fn print_outcome(node: &str, object: &Value, r: &ValidationResponse) {
    println!("  node:     {node}");
    println!(
        "  verdict:  {}",
        if r.accepted { "allowed" } else { "REJECTED" }
    );
    if let Some(m) = &r.message {
        println!("  message:  {m}");
    }
    match &r.mutated_object {
        Some(m) => {
            let p = engine::patch(object, m);
            let text = serde_json::to_string_pretty(&p).unwrap_or_default();
            println!("  patch:");
            for line in text.lines() {
                println!("    {line}");
            }
        }
        None => println!("  patch:    none"),
    }
    for w in r.warnings.iter().flatten() {
        println!("  warning:  {w}");
    }
    if let Some(audit) = &r.audit_annotations {
        let pairs: Vec<String> = audit.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  audit:    {}", pairs.join(", "));
    }
}

fn node_of(request: &Value) -> &str {
    request["object"]["target"]["name"].as_str().unwrap_or("-")
}

fn eval(a: &Args) -> Result<()> {
    let policy = Policy::load(&a.wasm)?;
    let request_path = a
        .request
        .as_ref()
        .with_context(|| format!("--request is required\n{USAGE}"))?;
    let text = std::fs::read_to_string(request_path)
        .with_context(|| format!("reading {}", request_path.display()))?;
    let request = engine::admission_request(
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", request_path.display()))?,
    );
    let settings = match &a.settings {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::to_value(
                serde_yaml::from_str::<serde_yaml::Value>(&text)
                    .with_context(|| format!("{}: not YAML", p.display()))?,
            )?
        }
        None => Value::Object(Default::default()),
    };
    let check = policy.validate_settings(&settings)?;
    if !check.valid {
        bail!(
            "settings are not valid: {}",
            check.message.unwrap_or_default()
        );
    }
    let session = match &a.session {
        Some(p) => replay::load_session(p)?,
        None => Vec::new(),
    };
    let (r, replay) = policy.validate(&request, &settings, Replay::new(session))?;
    print_outcome(node_of(&request), &request["object"], &r);
    let problems = replay.problems();
    if !problems.is_empty() {
        bail!("the replay session did not match:\n{}", problems.join("\n"));
    }
    Ok(())
}

const DEMO_CASES: &[&str] = &[
    "hybrid-node-default-settings",
    "ec2-node-default-settings",
    "pod-create-not-a-binding",
];

fn demo(a: &Args) -> Result<()> {
    let policy = Policy::load(&a.wasm)?;
    println!("policy.wasm evaluated in wasmtime through waPC (kwctl not found on PATH)\n");
    for name in DEMO_CASES {
        let case = Case::load(&a.dir.join(name))?;
        let (r, replay) = policy.validate(
            &case.request,
            &case.settings,
            Replay::new(case.session.clone()),
        )?;
        println!("{} — {}", case.name, case.expect.description);
        println!(
            "  request:  {} {} {}",
            case.request["kind"]["kind"].as_str().unwrap_or("?"),
            case.request["operation"].as_str().unwrap_or("?"),
            Path::new(&case.request["name"].as_str().unwrap_or("?")).display()
        );
        print_outcome(node_of(&case.request), &case.request["object"], &r);
        let problems = replay.problems();
        if !problems.is_empty() {
            bail!(
                "{}: the replay session did not match:\n{}",
                case.name,
                problems.join("\n")
            );
        }
        println!();
    }
    Ok(())
}

/// Answers `kwctl run` the way kwctl prints it (an AdmissionResponse on
/// stdout; invalid settings as an error), so that `e2e.bats` can be checked
/// on machines without kwctl. It is a stand-in for the suite's plumbing, not
/// for kwctl: the suite still has to pass under the real one.
fn kwctl_run(args: Vec<String>) -> Result<()> {
    let mut request = None;
    let mut settings = None;
    let mut session = None;
    let mut module = None;
    let mut capabilities_seen = false;
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--request-path" | "-r" => request = it.next(),
            "--settings-path" | "-s" => settings = it.next(),
            "--replay-host-capabilities-interactions" => session = it.next(),
            // As kwctl 1.36 parses it: several values after one flag, and
            // the flag itself at most once.
            "--allowed-host-capabilities" => {
                if capabilities_seen {
                    bail!(
                        "the argument '--allowed-host-capabilities [<allowed-host-capabilities>...]' cannot be used multiple times"
                    );
                }
                capabilities_seen = true;
                while it.next_if(|a| !a.starts_with('-')).is_some() {}
            }
            "--allow-context-aware" => {}
            other if other.starts_with('-') => bail!("unsupported kwctl flag {other}"),
            other => module = Some(other.to_string()),
        }
    }
    let policy = Policy::load(Path::new(&module.context("no module given")?))?;
    let text = std::fs::read_to_string(request.context("--request-path is required")?)?;
    let request = engine::admission_request(serde_json::from_str(&text)?);
    let settings = match settings {
        Some(p) => serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(
            &std::fs::read_to_string(p)?,
        )?)?,
        None => Value::Null,
    };
    let check = policy.validate_settings(&settings)?;
    if !check.valid {
        bail!(
            "Provided settings are not valid: {:?}",
            check.message.unwrap_or_default()
        );
    }
    let recorded = match session {
        Some(p) => replay::load_session(Path::new(&p))?,
        None => Vec::new(),
    };
    let (r, _) = policy.validate(&request, &settings, Replay::new(recorded))?;
    let mut out = serde_json::json!({"uid": request["uid"], "allowed": r.accepted});
    if let Some(m) = &r.mutated_object {
        use base64::Engine as _;
        let patch = engine::patch(&request["object"], m);
        out["patchType"] = "JSONPatch".into();
        out["patch"] = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&patch)?)
            .into();
    }
    if !r.accepted {
        out["status"] = serde_json::json!({"message": r.message, "code": r.code});
    }
    if let Some(a) = &r.audit_annotations {
        out["auditAnnotations"] = serde_json::to_value(a)?;
    }
    if let Some(w) = &r.warnings {
        out["warnings"] = serde_json::to_value(w)?;
    }
    println!("{out}");
    Ok(())
}
