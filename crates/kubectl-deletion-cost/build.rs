//! Embeds the policy module of this version in the command, so that an
//! installed binary needs nothing of the repository.
//!
//! `DELETION_COST_POLICY_WASM` names an already-built module (the Makefile
//! sets it to its policy.wasm for every cargo call, so nothing is built
//! twice); without it the policy crate at the workspace root is built for
//! wasm32-wasip1 by a nested cargo into a target directory of its own
//! (the outer build holds the lock on the usual one).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip1";
const MODULE_VAR: &str = "DELETION_COST_POLICY_WASM";

fn main() {
    println!("cargo::rerun-if-env-changed={MODULE_VAR}");
    let module = match env::var_os(MODULE_VAR) {
        Some(path) => given_module(PathBuf::from(path)),
        None => built_module(),
    };
    match module {
        Ok(path) => println!(
            "cargo::rustc-env=DELETION_COST_EMBEDDED_POLICY={}",
            path.display()
        ),
        Err(message) => {
            // Each line of the message shows in cargo's error output.
            for line in message.lines() {
                println!("cargo::error={line}");
            }
        }
    }
}

fn given_module(path: PathBuf) -> Result<PathBuf, String> {
    let path = std::path::absolute(&path).unwrap_or(path);
    println!("cargo::rerun-if-changed={}", path.display());
    if !path.is_file() {
        return Err(format!(
            "{MODULE_VAR}={}: no such file (build it with `make policy.wasm`, or unset {MODULE_VAR} to build the module here)",
            path.display()
        ));
    }
    Ok(path)
}

fn built_module() -> Result<PathBuf, String> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?);
    let root = manifest_dir.join("../..");
    for watched in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    check_wasm_target()?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?);
    let target_dir = out_dir.join("policy-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
        .args(["-p", "pod-deletion-cost-policy", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags are for this machine, not for wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .map_err(|e| format!("cannot run cargo to build the policy module: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the policy module for {WASM_TARGET} failed ({status}); its errors are above.\nOr build it once with `make policy.wasm` and set {MODULE_VAR}=<path to policy.wasm>"
        ));
    }
    Ok(target_dir
        .join(WASM_TARGET)
        .join("release/pod_deletion_cost_policy.wasm"))
}

/// A missing target shows as an obscure "can't find crate for `core`":
/// say what to do instead.
fn check_wasm_target() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc --print sysroot: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET);
    if target_lib.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the Rust target {WASM_TARGET} is not installed, and this command embeds the policy module built for it.\nInstall it with `rustup target add {WASM_TARGET}`, or set {MODULE_VAR}=<path to a built policy.wasm>"
    ))
}
