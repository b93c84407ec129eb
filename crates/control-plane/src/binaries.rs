//! The Kubernetes programs the control plane runs: where they are, and how
//! `make kube` builds them from the Go modules pinned in `kube/` into a
//! cache outside the repository.
//!
//! Looked up in order: `KUBE_BIN_DIR` (a directory holding all six);
//! envtest's `KUBEBUILDER_ASSETS` for the programs it ships (etcd,
//! kube-apiserver, kubectl), the cache for the rest; the cache.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Go module that pins every program but kwok; its `require` of
/// `k8s.io/kubernetes` is the release the cluster runs.
const GO_MOD: &str = include_str!("../../../kube/go.mod");
/// kwok's module of its own: its newest release names newer dependencies
/// than k8s.io/kubernetes does, and it must not move them.
const KWOK_GO_MOD: &str = include_str!("../../../kube/kwok/go.mod");

/// One program, and the Go package its binary is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Program {
    pub name: &'static str,
    package: &'static str,
    /// The folder under `kube/` that holds its module.
    module: &'static str,
    /// Shipped by envtest (`KUBEBUILDER_ASSETS`).
    in_envtest: bool,
}

pub const ETCD: Program = Program {
    name: "etcd",
    package: "go.etcd.io/etcd/server/v3",
    module: ".",
    in_envtest: true,
};
pub const KUBE_APISERVER: Program = kube(
    "kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-apiserver",
    true,
);
pub const KUBE_CONTROLLER_MANAGER: Program = kube(
    "kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    false,
);
pub const KUBE_SCHEDULER: Program = kube(
    "kube-scheduler",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    false,
);
pub const KUBECTL: Program = kube("kubectl", "k8s.io/kubernetes/cmd/kubectl", true);
pub const KWOK: Program = Program {
    name: "kwok",
    package: "sigs.k8s.io/kwok/cmd/kwok",
    module: "kwok",
    in_envtest: false,
};
pub const PROGRAMS: [Program; 6] = [
    ETCD,
    KUBE_APISERVER,
    KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
    KUBECTL,
    KWOK,
];

const fn kube(name: &'static str, package: &'static str, in_envtest: bool) -> Program {
    Program {
        name,
        package,
        module: ".",
        in_envtest,
    }
}

/// The version `module` requires in `go_mod`, e.g. `v1.36.3`.
fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (name, version) = if first == "require" {
            (words.next()?, words.next()?)
        } else {
            (first, words.next()?)
        };
        (name == module && version.starts_with('v')).then(|| version.to_string())
    })
}

/// The Go version a module needs (its `go` line).
fn go_directive(go_mod: &str) -> Option<&str> {
    go_mod
        .lines()
        .find_map(|line| line.strip_prefix("go "))
        .map(str::trim)
}

/// The Kubernetes release the control plane is built from (`kube/go.mod`).
pub fn kubernetes_version() -> String {
    required_version(GO_MOD, "k8s.io/kubernetes").unwrap_or_else(|| "unknown".into())
}

fn kwok_version() -> String {
    required_version(KWOK_GO_MOD, "sigs.k8s.io/kwok").unwrap_or_else(|| "unknown".into())
}

/// `~/.cache/pod-deletion-cost/kube-<version>` (or under `XDG_CACHE_HOME`).
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("pod-deletion-cost")
        .join(format!("kube-{}", kubernetes_version()))
}

/// Where each program is.
#[derive(Debug, Clone)]
pub struct Binaries {
    paths: BTreeMap<&'static str, PathBuf>,
}

/// The programs that could not be found, and where they were looked for.
#[derive(Debug)]
pub struct Missing {
    pub programs: Vec<(Program, PathBuf)>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .programs
            .iter()
            .map(|(p, at)| format!("{} (looked for {})", p.name, at.display()))
            .collect();
        write!(
            f,
            "Kubernetes programs missing: {}; `make kube` builds them (Go {} or newer), or set KUBE_BIN_DIR to a directory that holds them",
            names.join(", "),
            go_directive(GO_MOD).unwrap_or("?")
        )
    }
}

impl std::error::Error for Missing {}

impl Binaries {
    /// Every program, or which are missing.
    pub fn locate() -> Result<Binaries, Missing> {
        let mut paths = BTreeMap::new();
        let mut missing = Vec::new();
        for program in PROGRAMS {
            let at = where_to_find(program);
            if at.is_file() {
                paths.insert(program.name, at);
            } else {
                missing.push((program, at));
            }
        }
        if missing.is_empty() {
            Ok(Binaries { paths })
        } else {
            Err(Missing { programs: missing })
        }
    }

    pub fn path(&self, program: Program) -> &Path {
        // `locate` only returns a Binaries holding all of PROGRAMS.
        &self.paths[program.name]
    }

    pub fn command(&self, program: Program) -> Command {
        Command::new(self.path(program))
    }
}

fn where_to_find(program: Program) -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBE_BIN_DIR") {
        return PathBuf::from(dir).join(program.name);
    }
    if program.in_envtest
        && let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS")
    {
        return PathBuf::from(dir).join(program.name);
    }
    cache_dir().join(program.name)
}

/// Builds into the cache every program [`Binaries::locate`] does not find,
/// printing what it does, and returns them all. `kube_dir` is the
/// repository's `kube/` folder.
pub fn build_missing(kube_dir: &Path) -> Result<Binaries> {
    let missing = match Binaries::locate() {
        Ok(found) => return Ok(found),
        Err(missing) => missing.programs,
    };
    if std::env::var_os("KUBE_BIN_DIR").is_some() {
        bail!(
            "KUBE_BIN_DIR is set but lacks {}: point it at a directory holding all of {}, or unset it to build them",
            missing
                .iter()
                .map(|(p, _)| p.name)
                .collect::<Vec<_>>()
                .join(", "),
            PROGRAMS.map(|p| p.name).join(", ")
        );
    }
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    for (program, at) in &missing {
        eprintln!(
            "building {} from {} into {}",
            program.name,
            program.package,
            cache.display()
        );
        go_build(kube_dir, *program, at)?;
    }
    Binaries::locate().map_err(anyhow::Error::from)
}

fn go_build(kube_dir: &Path, program: Program, out: &Path) -> Result<()> {
    let ldflags = if program.module == "kwok" {
        let version = kwok_version();
        format!(
            "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={}",
            version.trim_start_matches('v')
        )
    } else if program == ETCD {
        "-s -w".to_string()
    } else {
        version_ldflags(&kubernetes_version())
    };
    // Written beside the target and renamed: a build cut short never
    // leaves a file that the next run would take for a finished one.
    let partial = out.with_extension("partial");
    let status = Command::new("go")
        .current_dir(kube_dir.join(program.module))
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly")
        .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
        .arg(&partial)
        .arg(program.package)
        .status()
        .context("running `go` (Go is needed to build the Kubernetes programs)")?;
    if !status.success() {
        bail!("go build {} failed ({status})", program.package);
    }
    std::fs::rename(&partial, out).with_context(|| format!("moving the build to {}", out.display()))
}

/// What the Kubernetes release build stamps into its programs
/// (`hack/lib/version.sh`): without it they report v0.0.0-master.
fn version_ldflags(version: &str) -> String {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            flags.push(format!("-X {package}.{var}={value}"));
        }
    }
    flags.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_release_is_read_from_go_mod() {
        assert!(
            kubernetes_version().starts_with("v1.36."),
            "{}",
            kubernetes_version()
        );
        assert!(kwok_version().starts_with("v0."), "{}", kwok_version());
        assert_eq!(
            required_version(
                "module x\n\nrequire (\n\tk8s.io/kubernetes v1.2.3\n)\n",
                "k8s.io/kubernetes"
            ),
            Some("v1.2.3".into())
        );
        assert_eq!(
            required_version(
                "require k8s.io/kubernetes v1.2.3 // indirect\n",
                "k8s.io/kubernetes"
            ),
            Some("v1.2.3".into())
        );
        assert_eq!(required_version("go 1.26.0\n", "k8s.io/kubernetes"), None);
    }

    #[test]
    fn the_release_is_stamped_as_the_release_build_does() {
        let flags = version_ldflags("v1.36.3");
        assert!(flags.contains("-X k8s.io/component-base/version.gitVersion=v1.36.3"));
        assert!(flags.contains("-X k8s.io/component-base/version.gitMinor=36"));
        assert!(flags.contains("-X k8s.io/client-go/pkg/version.gitMajor=1"));
    }
}
