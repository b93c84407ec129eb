//! Runs the end-to-end case table, single evaluations, or the demo, through
//! the compiled policy in wasmtime.

use anyhow::{Context, Result, bail};
use clap::Parser;
use e2e_tests::cases::{self, Case};
use serde_json::Value;
use std::path::{Path, PathBuf};
use wasm_host::replay::{self, Replay};
use wasm_host::{self as engine, Policy, ValidationResponse};

/// Runs the end-to-end case table, single evaluations, or the demo,
/// through the compiled policy in wasmtime.
#[derive(Parser)]
#[command(name = "e2e-runner")]
enum Command {
    /// Every case of the table whose name contains --filter.
    Cases {
        #[command(flatten)]
        module: Module,
        #[command(flatten)]
        table: Table,
        /// Only the cases whose name contains this.
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// One request, printed with its verdict and patch.
    Eval(Eval),
    /// The sample bindings, each with its verdict and patch.
    Demo {
        #[command(flatten)]
        module: Module,
        #[command(flatten)]
        table: Table,
    },
    /// `kwctl run` answered the way kwctl prints it: a stand-in that checks
    /// e2e.bats itself on machines without kwctl.
    KwctlRun(KwctlRun),
}

#[derive(clap::Args)]
struct Module {
    /// The policy module.
    #[arg(long, default_value_os_t = wasm_host::default_policy_wasm())]
    wasm: PathBuf,
}

#[derive(clap::Args)]
struct Table {
    /// The case table's directory.
    #[arg(long, default_value_os_t = cases::default_dir())]
    dir: PathBuf,
}

#[derive(clap::Args)]
struct Eval {
    #[command(flatten)]
    module: Module,
    /// An AdmissionReview or AdmissionRequest (JSON).
    #[arg(long)]
    request: PathBuf,
    /// The policy's settings (YAML or JSON) [default: none].
    #[arg(long)]
    settings: Option<PathBuf>,
    /// A kwctl replay session answering the policy's host calls.
    #[arg(long)]
    session: Option<PathBuf>,
}

/// The `kwctl run` arguments e2e.bats passes, parsed as kwctl 1.36 parses
/// them.
#[derive(clap::Args)]
struct KwctlRun {
    #[arg(short = 'r', long)]
    request_path: PathBuf,
    #[arg(short = 's', long)]
    settings_path: Option<PathBuf>,
    #[arg(long)]
    replay_host_capabilities_interactions: Option<PathBuf>,
    /// Accepted and not enforced: the stand-in answers every host call
    /// from the session. Several values after the flag, and the flag at
    /// most once, as kwctl 1.36 takes it.
    #[arg(long, num_args = 0.., action = clap::ArgAction::Set, value_name = "allowed-host-capabilities")]
    allowed_host_capabilities: Option<Vec<String>>,
    #[arg(long)]
    allow_context_aware: bool,
    module: PathBuf,
}

fn main() {
    let outcome = match Command::parse() {
        Command::Cases {
            module,
            table,
            filter,
        } => run_cases(&module.wasm, &table.dir, &filter),
        Command::Eval(a) => eval(&a),
        Command::Demo { module, table } => demo(&module.wasm, &table.dir),
        Command::KwctlRun(a) => kwctl_run(&a),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run_cases(wasm: &Path, dir: &Path, filter: &str) -> Result<()> {
    let policy = Policy::load(wasm)?;
    let all = cases::load_all(dir)?;
    let (mut passed, mut failed) = (0, 0);
    for case in all.iter().filter(|c| c.name.contains(filter)) {
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

fn eval(a: &Eval) -> Result<()> {
    let policy = Policy::load(&a.module.wasm)?;
    let request_path = &a.request;
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

fn demo(wasm: &Path, dir: &Path) -> Result<()> {
    let policy = Policy::load(wasm)?;
    println!("policy.wasm evaluated in wasmtime through waPC (kwctl not found on PATH)\n");
    for name in DEMO_CASES {
        let case = Case::load(&dir.join(name))?;
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
fn kwctl_run(a: &KwctlRun) -> Result<()> {
    let policy = Policy::load(&a.module)?;
    let text = std::fs::read_to_string(&a.request_path)?;
    let request = engine::admission_request(serde_json::from_str(&text)?);
    let settings = match &a.settings_path {
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
    let recorded = match &a.replay_host_capabilities_interactions {
        Some(p) => replay::load_session(p)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Command::command().debug_assert();
    }

    /// As e2e.bats calls kwctl: the capabilities list ends at the next flag.
    #[test]
    fn kwctl_run_takes_the_suites_arguments() {
        let parsed = Command::try_parse_from([
            "e2e-runner",
            "kwctl-run",
            "--allow-context-aware",
            "--allowed-host-capabilities",
            "kubernetes/get_resource",
            "kubernetes/list_resources_by_namespace",
            "--replay-host-capabilities-interactions",
            "session.yml",
            "--request-path",
            "request.json",
            "-s",
            "settings.yml",
            "policy.wasm",
        ]);
        let Ok(Command::KwctlRun(a)) = parsed else {
            panic!("not parsed as kwctl-run");
        };
        assert_eq!(a.module, Path::new("policy.wasm"));
        assert_eq!(a.request_path, Path::new("request.json"));
        assert_eq!(a.settings_path.as_deref(), Some(Path::new("settings.yml")));
        assert_eq!(
            a.allowed_host_capabilities.unwrap_or_default(),
            [
                "kubernetes/get_resource",
                "kubernetes/list_resources_by_namespace"
            ]
        );
    }

    #[test]
    fn kwctl_run_refuses_the_capabilities_flag_twice_in_kwctls_words() {
        let Err(e) = Command::try_parse_from([
            "e2e-runner",
            "kwctl-run",
            "--allowed-host-capabilities",
            "a",
            "--allowed-host-capabilities",
            "b",
            "-r",
            "request.json",
            "policy.wasm",
        ]) else {
            panic!("a repeated --allowed-host-capabilities was accepted");
        };
        assert!(
            e.to_string().contains(
                "the argument '--allowed-host-capabilities [<allowed-host-capabilities>...]' cannot be used multiple times"
            ),
            "{e}"
        );
    }
}
