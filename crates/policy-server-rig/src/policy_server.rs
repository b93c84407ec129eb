//! The real `policy-server` on loopback, in front of the Kubernetes API
//! stand-in: writes its `policies.yml` and kubeconfig, starts it, waits
//! (bounded) for readiness, posts AdmissionReviews, and stops both on drop.
//!
//! ```no_run
//! # use policy_server_rig::{kube_api::{KubeApi, Store}, policy_server::{PolicyEntry, Rig}};
//! # fn main() -> anyhow::Result<()> {
//! let api = KubeApi::start(Store::default())?;
//! let entry = PolicyEntry::pod_deletion_cost("eks", "policy.wasm".as_ref(), serde_json::json!({}));
//! let rig = Rig::start(&[entry], api)?;
//! let mut connection = rig.connect()?;
//! # Ok(()) }
//! ```

use crate::kube_api::KubeApi;
use crate::kube_api::http::Connection;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The program started; `POLICY_SERVER` names another one.
pub const PROGRAM: &str = "policy-server";
/// policy-server compiles every module with Cranelift before it is ready;
/// on a loaded two-core machine that has taken tens of seconds.
const READY_WITHIN: Duration = Duration::from_secs(180);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The host calls the policy makes (README, "Host calls").
pub const POLICY_HOST_CAPABILITIES: &[&str] = &[
    "kubernetes/get_resource",
    "kubernetes/list_resources_by_namespace",
];

/// One entry of `policies.yml`.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    /// The policy's id: requests go to `/validate/<id>`.
    pub id: String,
    pub module: PathBuf,
    pub settings: Value,
    pub allowed_to_mutate: bool,
    /// `(apiVersion, kind)` pairs the policy may read.
    pub context_aware_resources: Vec<(String, String)>,
    pub host_capabilities: Vec<String>,
}

impl PolicyEntry {
    /// This project's policy with what it needs granted: mutation, v1/Node
    /// and v1/Pod, and its two host calls.
    pub fn pod_deletion_cost(id: &str, module: &Path, settings: Value) -> PolicyEntry {
        PolicyEntry {
            id: id.into(),
            module: module.into(),
            settings,
            allowed_to_mutate: true,
            context_aware_resources: vec![
                ("v1".into(), "Node".into()),
                ("v1".into(), "Pod".into()),
            ],
            host_capabilities: POLICY_HOST_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
        }
    }

    fn to_policies_yml_entry(&self) -> Result<Value> {
        let module = fs::canonicalize(&self.module)
            .with_context(|| format!("policy module {}", self.module.display()))?;
        let resources: Vec<Value> = self
            .context_aware_resources
            .iter()
            .map(|(api_version, kind)| json!({"apiVersion": api_version, "kind": kind}))
            .collect();
        Ok(json!({
            "module": format!("file://{}", module.display()),
            "settings": self.settings,
            "allowedToMutate": self.allowed_to_mutate,
            "contextAwareResources": resources,
            "hostCapabilities": self.host_capabilities,
        }))
    }
}

/// Whether `policy-server` (or `$POLICY_SERVER`) can be started.
pub fn program() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("POLICY_SERVER") {
        return Some(PathBuf::from(explicit));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(PROGRAM))
        .find(|candidate| candidate.is_file())
}

/// The first line of `policy-server --version` (the rest lists features).
pub fn version() -> Option<String> {
    let output = Command::new(program()?).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or_default().trim().to_string())
}

/// policy-server and the API stand-in it reads, both on 127.0.0.1.
pub struct Rig {
    pub api: KubeApi,
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Rig {
    /// Starts policy-server with `policies` against `api` and waits until
    /// it is ready. If it exits first (for example because a policy refused
    /// its settings), the error carries everything it printed.
    pub fn start(policies: &[PolicyEntry], api: KubeApi) -> Result<Rig> {
        let program = program().with_context(|| format!("{PROGRAM} is not on PATH"))?;
        let dir = scratch_dir()?;
        let mut document = serde_json::Map::new();
        for p in policies {
            document.insert(p.id.clone(), p.to_policies_yml_entry()?);
        }
        // JSON is YAML: policy-server reads it as it is.
        fs::write(
            dir.join("policies.yml"),
            serde_json::to_string_pretty(&document)?,
        )?;
        fs::write(dir.join("kubeconfig"), api.kubeconfig())?;
        let [port, readiness_port] = free_ports()?;
        let output = fs::File::create(dir.join("policy-server.log"))?;
        let child = Command::new(&program)
            .arg("--policies")
            .arg(dir.join("policies.yml"))
            .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
            .args(["--readiness-probe-port", &readiness_port.to_string()])
            .args(["--workers", "2"])
            .arg("--policies-download-dir")
            .arg(&dir)
            .arg("--sigstore-cache-dir")
            .arg(dir.join("sigstore"))
            .env("KUBECONFIG", dir.join("kubeconfig"))
            // Host errors would carry backtraces into the policy's warnings.
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .current_dir(&dir)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut rig = Rig {
            api,
            child,
            port,
            dir,
        };
        rig.wait_ready(readiness_port)?;
        Ok(rig)
    }

    fn wait_ready(&mut self, readiness_port: u16) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{PROGRAM} exited ({status}) before it was ready; it printed:\n{}",
                    self.log()
                );
            }
            let ready = Connection::open(
                &format!("127.0.0.1:{readiness_port}"),
                Duration::from_secs(2),
            )
            .and_then(|mut c| c.request("GET", "/readiness", b""))
            .is_ok_and(|r| r.status == 200);
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{PROGRAM} was not ready within {READY_WITHIN:?}; it printed:\n{}",
            self.log()
        )
    }

    /// The admission endpoint's base, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kept-alive connection to the admission endpoint.
    pub fn connect(&self) -> Result<Connection> {
        Ok(Connection::open(
            &format!("127.0.0.1:{}", self.port),
            REQUEST_TIMEOUT,
        )?)
    }

    /// Everything policy-server printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("policy-server.log")).unwrap_or_default()
    }

    /// [`review`], a failure carrying what policy-server printed last, the
    /// last requests it made of the API stand-in and the stand-in's failed
    /// connections: a test that fails on a loaded CI machine must say where
    /// policy-server was.
    pub fn review(&self, connection: &mut Connection, id: &str, request: &Value) -> Result<Reply> {
        review(connection, id, request).with_context(|| {
            let served: Vec<String> = self.api.served().iter().map(ToString::to_string).collect();
            let failures = self.api.failures();
            format!(
                "policy `{id}`: policy-server's last lines:\n{}\nits last requests to the API stand-in:\n{}\nthe stand-in's failed connections: {}",
                last_lines(&self.log(), LAST_LINES),
                served[served.len().saturating_sub(LAST_LINES)..].join("\n"),
                if failures.is_empty() { "none".to_string() } else { failures.join("\n") }
            )
        })
    }
}

/// How much of policy-server's log and of the API requests a failed
/// review quotes.
const LAST_LINES: usize = 40;

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Posts `request` (an AdmissionRequest) to policy `id` as an
/// AdmissionReview and returns the AdmissionResponse.
pub fn review(connection: &mut Connection, id: &str, request: &Value) -> Result<Reply> {
    let body =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let response = connection.request(
        "POST",
        &format!("/validate/{id}"),
        body.to_string().as_bytes(),
    )?;
    let text = String::from_utf8_lossy(&response.body);
    if response.status != 200 {
        bail!("policy-server answered {}: {text}", response.status);
    }
    let review: Value =
        serde_json::from_str(&text).with_context(|| format!("answer is not JSON: {text}"))?;
    Reply::from_response(review.get("response").cloned().unwrap_or(Value::Null))
}

/// An AdmissionResponse, its patch decoded.
#[derive(Debug, Clone)]
pub struct Reply {
    pub response: Value,
    pub allowed: bool,
    pub warnings: Vec<String>,
    /// The JSONPatch, base64-decoded; `None` when there is none.
    pub patch: Option<Value>,
}

impl Reply {
    pub fn from_response(response: Value) -> Result<Reply> {
        let allowed = response
            .get("allowed")
            .and_then(Value::as_bool)
            .context("no `allowed` in the response")?;
        let warnings = response
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let patch = match response.get("patch").and_then(Value::as_str) {
            None => None,
            Some(encoded) => {
                if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                    bail!("a patch whose patchType is not JSONPatch: {response}");
                }
                let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
                Some(serde_json::from_slice(&bytes).context("the decoded patch is not JSON")?)
            }
        };
        Ok(Reply {
            response,
            allowed,
            warnings,
            patch,
        })
    }

    /// The answer in the policy's own terms, the mutated object being
    /// `binding` with the patch applied, so the case table's checks apply.
    pub fn to_validation_response(&self, binding: &Value) -> Result<wasm_host::ValidationResponse> {
        let status = self.response.get("status");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
        Ok(wasm_host::ValidationResponse {
            accepted: self.allowed,
            message: text(status.and_then(|s| s.get("message"))),
            code: status
                .and_then(|s| s.get("code"))
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok()),
            mutated_object: match self.patch {
                Some(_) => Some(self.patched(binding)?),
                None => None,
            },
            audit_annotations: match self.response.get("auditAnnotations") {
                Some(a) if !a.is_null() => Some(serde_json::from_value(a.clone())?),
                _ => None,
            },
            warnings: Some(self.warnings.clone()).filter(|w| !w.is_empty()),
        })
    }

    /// `binding` with the patch applied (unchanged without a patch).
    pub fn patched(&self, binding: &Value) -> Result<Value> {
        let mut out = binding.clone();
        if let Some(patch) = &self.patch {
            let patch: json_patch::Patch = serde_json::from_value(patch.clone())?;
            json_patch::patch(&mut out, &patch)?;
        }
        Ok(out)
    }
}

fn scratch_dir() -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "policy-server-rig-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Ports free at the moment (policy-server binds them itself), all held
/// until every one is picked: a port let go at once can be handed out
/// again by the next bind, and policy-server would then be given the same
/// port for its API and its readiness probe.
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_server_gets_two_different_ports() {
        for _ in 0..200 {
            let [api, readiness] = free_ports::<2>().unwrap();
            assert_ne!(api, readiness);
        }
    }

    #[test]
    fn a_failure_quotes_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
