//! policy-server as the policy's webhook, installed the way a cluster runs
//! it: its kube client is ServiceAccount `kubewarden/policy-server` with a
//! token from the TokenRequest API and only the RBAC of
//! `examples/rbac.yaml`; it serves over TLS with a certificate of the
//! cluster's CA; and a MutatingWebhookConfiguration written as the
//! Kubewarden controller writes one for a ClusterAdmissionPolicy (policy id
//! `clusterwide-<name>`, the module's `metadata.yml` rules, the manifest's
//! `failurePolicy`, `timeoutSeconds`, `namespaceSelector` and
//! `objectSelector`) points the API server at it.

use crate::cluster::ControlPlane;
use crate::process::Process;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The program started; `POLICY_SERVER` names another one.
pub const POLICY_SERVER: &str = "policy-server";
pub const NAMESPACE: &str = "kubewarden";
pub const SERVICE_ACCOUNT: &str = "policy-server";

/// A ClusterAdmissionPolicy as the controller reads it: what goes into
/// policy-server's `policies.yml` and into the webhook configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub settings: Value,
    pub mutating: bool,
    pub context_aware_resources: Value,
    pub failure_policy: Value,
    pub timeout_seconds: Value,
    pub namespace_selector: Value,
    pub object_selector: Value,
    /// From the module's `metadata.yml`.
    pub rules: Value,
    pub host_capabilities: Value,
}

impl Policy {
    /// The first ClusterAdmissionPolicy of `manifest` (other documents,
    /// such as RBAC, are skipped), with the rules and host capabilities of
    /// the module's `metadata`.
    pub fn from_manifest(manifest: &Path, metadata: &Path) -> Result<Policy> {
        let documents = yaml_documents(manifest)?;
        let policy = documents
            .iter()
            .find(|d| d["kind"] == "ClusterAdmissionPolicy")
            .with_context(|| format!("{}: no ClusterAdmissionPolicy", manifest.display()))?;
        let metadata = yaml_documents(metadata)?
            .into_iter()
            .next()
            .with_context(|| format!("{}: empty", metadata.display()))?;
        let spec = &policy["spec"];
        let name = policy["metadata"]["name"]
            .as_str()
            .with_context(|| format!("{}: the policy has no metadata.name", manifest.display()))?;
        Ok(Policy {
            name: name.to_string(),
            settings: spec.get("settings").cloned().unwrap_or_else(|| json!({})),
            mutating: spec["mutating"].as_bool().unwrap_or(false),
            context_aware_resources: spec
                .get("contextAwareResources")
                .cloned()
                .unwrap_or_else(|| json!([])),
            // The CRD's defaults.
            failure_policy: spec
                .get("failurePolicy")
                .cloned()
                .unwrap_or_else(|| json!("Fail")),
            timeout_seconds: spec
                .get("timeoutSeconds")
                .cloned()
                .unwrap_or_else(|| json!(10)),
            namespace_selector: spec
                .get("namespaceSelector")
                .cloned()
                .unwrap_or(Value::Null),
            object_selector: spec.get("objectSelector").cloned().unwrap_or(Value::Null),
            rules: metadata["rules"].clone(),
            host_capabilities: metadata["hostCapabilities"].clone(),
        })
    }

    /// A policy named `name` with `settings`, everything else as the
    /// module's `metadata` declares it (mutating, the resources it may
    /// read, its rules and host calls) and the CRD's defaults: what
    /// policy-server is given when the tests post to it directly.
    pub fn from_metadata(name: &str, settings: Value, metadata: &Path) -> Result<Policy> {
        let metadata = yaml_documents(metadata)?
            .into_iter()
            .next()
            .with_context(|| format!("{}: empty", metadata.display()))?;
        Ok(Policy {
            name: name.to_string(),
            settings,
            mutating: metadata["mutating"].as_bool().unwrap_or(false),
            context_aware_resources: metadata
                .get("contextAwareResources")
                .cloned()
                .unwrap_or_else(|| json!([])),
            failure_policy: json!("Fail"),
            timeout_seconds: json!(10),
            namespace_selector: Value::Null,
            object_selector: Value::Null,
            rules: metadata["rules"].clone(),
            host_capabilities: metadata["hostCapabilities"].clone(),
        })
    }

    /// The id policy-server serves it under: `/validate/<id>`.
    pub fn id(&self) -> String {
        format!("clusterwide-{}", self.name)
    }

    /// Its entry in policy-server's `policies.yml`, `module` being absolute.
    pub(crate) fn policies_yml_entry(&self, module: &Path) -> Value {
        json!({
            "module": format!("file://{}", module.display()),
            "settings": self.settings,
            "allowedToMutate": self.mutating,
            "contextAwareResources": self.context_aware_resources,
            "hostCapabilities": self.host_capabilities,
        })
    }

    /// The MutatingWebhookConfiguration that sends the policy's requests
    /// to policy-server at `url`, trusting `ca_pem`.
    pub fn webhook_configuration(&self, url: &str, ca_pem: &str) -> Value {
        let rules: Vec<Value> = self
            .rules
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut r = r.clone();
                r["scope"] = json!("*");
                r
            })
            .collect();
        let mut webhook = json!({
            "name": format!("{}.kubewarden.admission", self.id()),
            "clientConfig": {
                "url": format!("{url}/validate/{}", self.id()),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "rules": rules,
            "failurePolicy": self.failure_policy,
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": self.timeout_seconds,
            "admissionReviewVersions": ["v1"],
            "reinvocationPolicy": "Never",
        });
        for (key, selector) in [
            ("namespaceSelector", &self.namespace_selector),
            ("objectSelector", &self.object_selector),
        ] {
            if !selector.is_null() {
                webhook[key] = selector.clone();
            }
        }
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": self.id(), "labels": {"kubewarden": "true"}},
            "webhooks": [webhook],
        })
    }
}

fn yaml_documents(path: &Path) -> Result<Vec<Value>> {
    use serde::Deserialize as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("{}: not valid YAML", path.display()))?;
        let value = serde_json::to_value(value)
            .with_context(|| format!("{}: not a JSON-shaped document", path.display()))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Where `policy-server` is: `$POLICY_SERVER`, or the first on PATH.
pub fn program() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("POLICY_SERVER") {
        return Some(PathBuf::from(explicit));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(POLICY_SERVER))
        .find(|candidate| candidate.is_file())
}

/// The account policy-server runs as and the RBAC it holds: created once
/// per cluster, before the first policy-server starts.
pub fn install_service_account(plane: &ControlPlane, rbac: &Path) -> Result<()> {
    plane.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {SERVICE_ACCOUNT}\n  namespace: {NAMESPACE}\n"
    ))?;
    let manifest =
        std::fs::read_to_string(rbac).with_context(|| format!("reading {}", rbac.display()))?;
    plane.apply(&manifest)?;
    Ok(())
}

/// policy-server running one policy, registered as the cluster's webhook.
pub struct PolicyServer {
    process: Process,
    pub url: String,
    pub policy: Policy,
    pub log: PathBuf,
}

impl PolicyServer {
    /// Starts policy-server with `policy` (module `annotated_wasm`) as the
    /// service account, over TLS with a certificate of the cluster's CA,
    /// waits until it is ready, registers the webhook and waits until the
    /// API server calls it.
    pub fn start(plane: &mut ControlPlane, policy: Policy, annotated_wasm: &Path) -> Result<Self> {
        let dir = plane.dir.join(format!("policy-server-{}", policy.id()));
        let serving = plane.ca.serving("policy-server")?;
        let (process, port) = crate::policy_server::spawn(
            plane,
            &dir,
            &[(policy.clone(), annotated_wasm.to_path_buf())],
            Some(&serving),
        )?;
        let url = format!("https://127.0.0.1:{port}");
        let log = process.log.clone();
        let server = PolicyServer {
            process,
            url,
            policy,
            log,
        };
        server.register(plane)?;
        Ok(server)
    }

    /// Writes the webhook configuration and waits until the API server
    /// calls policy-server.
    pub fn register(&self, plane: &mut ControlPlane) -> Result<()> {
        let ca_pem = std::fs::read_to_string(&plane.ca.cert)?;
        let configuration = self.policy.webhook_configuration(&self.url, &ca_pem);
        plane.apply(&configuration.to_string())?;
        self.wait_for_calls(plane, true)
    }

    /// Deletes the webhook configuration and waits until the API server no
    /// longer calls policy-server: Kubernetes alone, in the same cluster.
    pub fn unregister(&self, plane: &mut ControlPlane) -> Result<()> {
        plane.kubectl_quiet(&["delete", "mutatingwebhookconfiguration", &self.policy.id()])?;
        self.wait_for_calls(plane, false)
    }

    /// The API server picks a webhook configuration up (or drops it) a
    /// moment after it is written: bind throwaway pods to a node that does
    /// not exist until policy-server's warning about that node comes back
    /// (or stops coming).
    fn wait_for_calls(&self, plane: &mut ControlPlane, called: bool) -> Result<()> {
        let started = Instant::now();
        for attempt in 0.. {
            let answer = canary_binding(plane, attempt)?;
            if answer.contains(CANARY_NODE) == called {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the API server {} policy-server 60 s after the webhook configuration changed; the last binding answered: {answer}; policy-server's last lines:\n{}",
                    if called {
                        "did not call"
                    } else {
                        "still called"
                    },
                    self.process.last_lines(20)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }

    /// Stops policy-server; its webhook configuration stays, so the API
    /// server's calls fail and `failurePolicy` decides.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn last_lines(&self, n: usize) -> String {
        self.process.last_lines(n)
    }
}

const CANARY_NODE: &str = "webhook-canary-node";

/// Binds a throwaway pod (that no scheduler takes) to a node that does not
/// exist, and returns what kubectl printed, warnings included.
fn canary_binding(plane: &ControlPlane, attempt: usize) -> Result<String> {
    let pod = format!("webhook-canary-{}-{attempt}", std::process::id());
    plane.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: {NAMESPACE}\nspec:\n  schedulerName: nobody\n  containers:\n  - name: pause\n    image: registry.k8s.io/pause:3.10\n"
    ))?;
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": NAMESPACE},
        "target": {"apiVersion": "v1", "kind": "Node", "name": CANARY_NODE},
    });
    let answer = crate::cluster::run_with_stderr(
        plane.kubectl().args([
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/binding"),
            "-f",
            "-",
        ]),
        Some(&binding.to_string()),
    )?;
    plane.kubectl_quiet(&[
        "delete",
        "pod",
        &pod,
        "-n",
        NAMESPACE,
        "--grace-period=0",
        "--force",
    ])?;
    Ok(answer)
}
