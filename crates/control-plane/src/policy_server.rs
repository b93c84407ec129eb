//! policy-server started against a control plane: its kube client is
//! ServiceAccount `kubewarden/policy-server` with a token from the
//! TokenRequest API (and only the RBAC [`crate::webhook::install_service_account`]
//! gave it). [`crate::webhook::PolicyServer`] serves over TLS and registers
//! itself as the cluster's webhook; [`Standalone`] serves plain HTTP and is
//! called by the tests and load tools directly, as the API server would call
//! it, with any number of policies.

use crate::cluster::{ControlPlane, Credential};
use crate::http::Connection;
use crate::pki::CertFiles;
use crate::process::{Process, free_ports};
use crate::webhook::{NAMESPACE, POLICY_SERVER, Policy, SERVICE_ACCOUNT, program};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// policy-server compiles every module with Cranelift before it is ready;
/// on a loaded two-core machine that has taken tens of seconds.
const READY_WITHIN: Duration = Duration::from_secs(240);
/// How long a posted review may take: far above any answer measured, so
/// that only a hang fails, and says where it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of policy-server's log and of its API requests a failed
/// review quotes.
const LAST_LINES: usize = 40;

/// policy-server started in `dir` with `policies` (each with its module),
/// TLS with `serving` when given: the process, once ready, and its port.
pub(crate) fn spawn(
    plane: &ControlPlane,
    dir: &Path,
    policies: &[(Policy, PathBuf)],
    serving: Option<&CertFiles>,
) -> Result<(Process, u16)> {
    let program = program().with_context(|| {
        format!("{POLICY_SERVER} is not on PATH (or POLICY_SERVER): install Kubewarden's policy-server 1.36")
    })?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let token = plane
        .kubectl_quiet(&[
            "create",
            "token",
            SERVICE_ACCOUNT,
            "-n",
            NAMESPACE,
            "--duration=24h",
        ])?
        .trim()
        .to_string();
    let kubeconfig = dir.join("kubeconfig");
    plane.write_kubeconfig(&kubeconfig, &Credential::Token(&token))?;
    let mut document = serde_json::Map::new();
    for (policy, module) in policies {
        let module = std::fs::canonicalize(module)
            .with_context(|| format!("policy module {}", module.display()))?;
        document.insert(policy.id(), policy.policies_yml_entry(&module));
    }
    let policies_yml = dir.join("policies.yml");
    // JSON is YAML: policy-server reads it as it is.
    std::fs::write(&policies_yml, serde_json::to_string_pretty(&document)?)?;
    let [port, readiness_port] = free_ports()?;
    let mut command = std::process::Command::new(&program);
    command
        .arg(format!("--policies={}", policies_yml.display()))
        .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
        .args(["--readiness-probe-port", &readiness_port.to_string()])
        .args(["--workers", "2"])
        .arg(format!("--policies-download-dir={}", dir.display()))
        .arg(format!(
            "--sigstore-cache-dir={}",
            dir.join("sigstore").display()
        ))
        .env("KUBECONFIG", &kubeconfig)
        .current_dir(dir);
    if let Some(serving) = serving {
        command
            .arg(format!("--cert-file={}", serving.cert.display()))
            .arg(format!("--key-file={}", serving.key.display()));
    }
    let mut process = Process::spawn("policy-server", command, dir)?;
    process.wait_ready(READY_WITHIN, "ready", || readiness(readiness_port))?;
    Ok((process, port))
}

/// policy-server's readiness probe: plain HTTP on its own port, whatever
/// the admission port serves. Only the status line is read.
fn readiness(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /readiness HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    probe().unwrap_or(false)
}

/// policy-server serving plain HTTP on 127.0.0.1, not registered with the
/// API server: AdmissionReviews are posted to it directly.
pub struct Standalone {
    process: Process,
    pub port: u16,
    pub dir: PathBuf,
    audit_log: PathBuf,
}

impl Standalone {
    /// Starts policy-server with `policies` in `plane.dir/<name>` and waits
    /// until it is ready. If it exits first (for example because a policy
    /// refused its settings), the error quotes the end of what it printed.
    pub fn start(
        plane: &ControlPlane,
        name: &str,
        policies: &[(Policy, PathBuf)],
    ) -> Result<Standalone> {
        let dir = plane.dir.join(name);
        let (process, port) = spawn(plane, &dir, policies, None)?;
        Ok(Standalone {
            process,
            port,
            dir,
            audit_log: plane.audit_log.clone(),
        })
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

    /// [`review`], a failure carrying what policy-server printed last and
    /// its last requests to the API server (from the audit log): a test
    /// that fails on a loaded CI machine must say where policy-server was.
    pub fn review(&self, connection: &mut Connection, id: &str, request: &Value) -> Result<Value> {
        review(connection, id, request).with_context(|| {
            format!(
                "policy `{id}`: policy-server's last lines:\n{}\nits last requests to the API server:\n{}",
                self.process.last_lines(LAST_LINES),
                self.last_api_requests(LAST_LINES)
            )
        })
    }

    fn last_api_requests(&self, n: usize) -> String {
        let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == user.as_str())
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["stageTimestamp"].as_str().unwrap_or("?"),
                    e["verb"].as_str().unwrap_or("?"),
                    e["requestURI"].as_str().unwrap_or("?"),
                    e["responseStatus"]["code"]
                )
            })
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn last_lines(&self, n: usize) -> String {
        self.process.last_lines(n)
    }

    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }
}

/// Posts `request` (an AdmissionRequest) to policy `id` as an
/// AdmissionReview and returns the AdmissionResponse.
pub fn review(connection: &mut Connection, id: &str, request: &Value) -> Result<Value> {
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
    let mut review: Value =
        serde_json::from_str(&text).with_context(|| format!("answer is not JSON: {text}"))?;
    match review.get_mut("response").map(Value::take) {
        Some(response) if response.is_object() => Ok(response),
        _ => bail!("an AdmissionReview without a response: {text}"),
    }
}

/// One request policy-server's account made of the API server, read from
/// the audit log.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// `get`, `list` or `watch`.
    pub verb: String,
    pub path: String,
    /// Percent-decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The HTTP status answered.
    pub code: Option<u64>,
}

impl ApiRequest {
    /// A list or a watch of the collection at `path` with `labelSelector`
    /// `selector`.
    pub fn is_collection_read(&self, path: &str, selector: &str) -> bool {
        self.path == path
            && matches!(self.verb.as_str(), "list" | "watch")
            && self.query.get("labelSelector").map(String::as_str) == Some(selector)
    }
}

/// Every request policy-server's account made so far, once each: a watch
/// is audited when its response starts and again when it ends, any other
/// request once it is answered.
pub fn api_requests(plane: &ControlPlane) -> Result<Vec<ApiRequest>> {
    let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
    let mut out = Vec::new();
    for e in plane.audit_events()? {
        let verb = e["verb"].as_str().unwrap_or_default();
        let counted_stage = if verb == "watch" {
            "ResponseStarted"
        } else {
            "ResponseComplete"
        };
        if e["user"]["username"] != user.as_str() || e["stage"] != counted_stage {
            continue;
        }
        let uri = e["requestURI"].as_str().unwrap_or_default();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        out.push(ApiRequest {
            verb: verb.to_string(),
            path: path.to_string(),
            query: parse_query(query),
            code: e["responseStatus"]["code"].as_u64(),
        });
    }
    Ok(out)
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` escapes and `+` for space, as in form-encoded query strings; an
/// escape that is not two hex digits is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query(
            "labelSelector=app%3Dweb%2Cpod-template-hash%3Dabc&watch=true&x=a+b&bad=%zz",
        );
        assert_eq!(q["labelSelector"], "app=web,pod-template-hash=abc");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["bad"], "%zz");
    }
}
