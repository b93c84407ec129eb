//! The command as installed: run from a directory holding nothing of the
//! repository, with the built-in policy module, the snapshot on standard
//! input; its report must be the library's for the same input.

mod common;

use common::{NOW, root};

use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use kubectl_deletion_cost::cli::STDIN_NAME;
use kubectl_deletion_cost::{Options, PolicyConfig, ScaleTarget};
use rstest::rstest;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use wasm_host::Policy;

/// The report the library gives: files as given, `-` read as the command
/// reads standard input.
fn library_report(
    files: &[PathBuf],
    stdin: &Path,
    settings: &Path,
    scale: &str,
    json: bool,
) -> String {
    let mut snapshot = Snapshot::default();
    for file in files {
        snapshot
            .add(
                &file.display().to_string(),
                &std::fs::read_to_string(file).unwrap(),
            )
            .unwrap();
        snapshot.files.push(file.clone());
    }
    snapshot
        .add(STDIN_NAME, &std::fs::read_to_string(stdin).unwrap())
        .unwrap();
    snapshot.files.push(PathBuf::from(STDIN_NAME));
    snapshot.check().unwrap();
    let config = PolicyConfig::load(Some(settings)).unwrap();
    let policy = Policy::load(&wasm_host::default_policy_wasm()).unwrap();
    let options = Options {
        now: Some(parse_timestamp(NOW).unwrap()),
        scales: vec![scale.parse::<ScaleTarget>().unwrap()],
        ..Options::default()
    };
    let report = kubectl_deletion_cost::simulate(&policy, &snapshot, &config, &options).unwrap();
    if json {
        format!("{}\n", serde_json::to_string_pretty(&report).unwrap())
    } else {
        kubectl_deletion_cost::render_table(&report)
    }
}

#[rstest]
#[case::eks_hybrid_table(&[], "eks-hybrid/cluster.json", "eks-hybrid-bursting.yaml", "shop/web=3", "table")]
#[case::eks_hybrid_json(&[], "eks-hybrid/cluster.json", "eks-hybrid-bursting.yaml", "shop/web=3", "json")]
#[case::ack_zones_pods_on_stdin(&["ack-zones/nodes.json"], "ack-zones/pods.json", "ack-zones-placeholders.yaml", "shop/web=4", "table")]
fn from_an_empty_directory_the_report_is_the_librarys(
    #[case] files: &[&str],
    #[case] stdin: &str,
    #[case] settings: &str,
    #[case] scale: &str,
    #[case] output: &str,
) {
    let snapshots = root().join("crates/kubectl-deletion-cost/snapshots");
    let files: Vec<PathBuf> = files.iter().map(|f| snapshots.join(f)).collect();
    let stdin = snapshots.join(stdin);
    let settings = root().join("examples").join(settings);
    let empty = std::env::temp_dir().join(format!(
        "deletion-cost-empty-{}-{output}-{}",
        std::process::id(),
        scale.replace('/', "-")
    ));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-deletion_cost"))
        .current_dir(&empty)
        // Nothing of the checkout may be found through the environment.
        .env_remove("POLICY_WASM")
        .args([
            "simulate", "--now", NOW, "--scale", scale, "--output", output,
        ])
        .arg("--settings")
        .arg(&settings)
        .args(&files)
        .arg("-")
        .stdin(Stdio::from(std::fs::File::open(&stdin).unwrap()))
        .output()
        .expect("the command runs");
    let left = std::fs::read_dir(&empty).unwrap().count();
    std::fs::remove_dir(&empty).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(left, 0, "the command wrote into its working directory");
    let want = library_report(&files, &stdin, &settings, scale, output == "json");
    assert!(want.contains("(standard input)"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[rstest]
#[case::bash("bash", "complete -F")]
#[case::zsh("zsh", "#compdef kubectl-deletion_cost")]
#[case::fish("fish", "complete -c kubectl-deletion_cost")]
fn completion_scripts_name_the_subcommands(#[case] shell: &str, #[case] marker: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-deletion_cost"))
        .args(["completion", shell])
        .output()
        .expect("the command runs");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains(marker), "{script}");
    for word in ["simulate", "policy", "strip-costs", "insecure-registry"] {
        assert!(script.contains(word), "{shell} script lacks {word}");
    }
}

#[rstest]
#[case::unknown_subcommand(&["explain"], "error: unrecognized subcommand 'explain'")]
#[case::unknown_output(&["simulate", "-o", "yaml", "x.json"], "error: invalid value 'yaml' for '--output <OUTPUT>'")]
#[case::bad_now(&["simulate", "--now", "yesterday", "x.json"], "error: invalid value 'yesterday' for '--now <TIME>'")]
#[case::registry_without_host(&["simulate", "--policy", "registry://policies/x:v1", "x.json"], "error: invalid value 'registry://policies/x:v1' for '--policy <SOURCE>': registry://policies/x:v1: name the registry host")]
#[case::policy_file_missing(&["simulate", "--policy", "/nonexistent/policy.wasm", "SNAPSHOT"], "error: /nonexistent/policy.wasm: cannot read: ")]
#[case::stdin_twice(&["simulate", "-", "-"], "error: `-` (standard input) is given twice as a snapshot")]
fn bad_arguments_exit_2_naming_what_was_wrong(#[case] args: &[&str], #[case] says: &str) {
    let snapshot = root().join("crates/kubectl-deletion-cost/snapshots/eks-hybrid/cluster.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-deletion_cost"))
        .args(args.iter().map(|a| {
            if *a == "SNAPSHOT" {
                snapshot.as_os_str()
            } else {
                a.as_ref()
            }
        }))
        .stdin(Stdio::from(std::fs::File::open(&snapshot).unwrap()))
        .output()
        .expect("the command runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(says), "{stderr}");
}
