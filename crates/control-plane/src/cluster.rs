//! The control plane itself, started the way a cluster runs: etcd;
//! kube-apiserver with RBAC, service-account keys made here, the default
//! admission chain (so MutatingAdmissionWebhook) and an audit log;
//! kube-controller-manager and kube-scheduler each with its own identity;
//! kwok keeping the nodes alive and Ready and playing their kubelets.

use crate::binaries::{
    Binaries, ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KUBECTL, KWOK, Program,
};
use crate::pki::{Ca, CertFiles, Identity, ServiceAccountKey};
use crate::process::{Process, free_ports};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// kwok's stages (`kube/kwok/stages.yaml`), written into the cluster's
/// folder so the programs work from any directory.
const KWOK_STAGES: &str = include_str!("../../../kube/kwok/stages.yaml");
/// The API server's audit policy: every request at Metadata level (who,
/// verb, resource, the webhooks' audit annotations), but node heartbeats
/// and events, which would drown the rest.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
      - group: ""
        resources: [events]
      - group: events.k8s.io
        resources: [events]
  - level: Metadata
"#;
/// The annotation kwok's `--manage-nodes-with-annotation-selector` takes:
/// nodes carrying it are the ones kwok plays the kubelet of.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
const READY_WITHIN: Duration = Duration::from_secs(120);

pub struct ControlPlane {
    /// Certificates, kubeconfigs, logs, etcd's data and the audit log.
    pub dir: PathBuf,
    pub bin: Binaries,
    pub ca: Ca,
    pub api_url: String,
    /// A cluster administrator's kubeconfig (group system:masters).
    pub admin_kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    /// In start order; stopped in reverse.
    processes: Vec<Process>,
    remove_dir: bool,
    /// Whether the controller-manager, the scheduler and kwok run too.
    controllers: bool,
}

impl ControlPlane {
    /// Starts a cluster whose files live in `dir` (created; removed on drop
    /// when `remove_dir`), and waits until every component is up.
    pub fn start(bin: Binaries, dir: &Path, remove_dir: bool) -> Result<ControlPlane> {
        let (mut plane, sa_key) = Self::start_api(bin, dir, remove_dir)?;
        plane.controllers = true;
        plane.start_controller_manager(&sa_key)?;
        plane.start_scheduler()?;
        plane.start_kwok()?;
        plane.wait_for_default_service_account()?;
        Ok(plane)
    }

    /// etcd and kube-apiserver alone, started as in [`ControlPlane::start`]:
    /// enough where the tests are the API server's only clients besides
    /// policy-server (no scheduler binds, no controller makes pods, no
    /// kubelet runs them). Namespaces made with
    /// [`ControlPlane::create_namespace`] get the `default` service
    /// account the controller-manager would have made.
    pub fn start_api_server(bin: Binaries, dir: &Path, remove_dir: bool) -> Result<ControlPlane> {
        Ok(Self::start_api(bin, dir, remove_dir)?.0)
    }

    fn start_api(
        bin: Binaries,
        dir: &Path,
        remove_dir: bool,
    ) -> Result<(ControlPlane, ServiceAccountKey)> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = fs::canonicalize(dir)?;
        let pki = dir.join("pki");
        fs::create_dir_all(&pki)?;
        let ca = Ca::create(&pki)?;
        let sa_key = ServiceAccountKey::create(&pki)?;
        let serving = ca.serving("kube-apiserver")?;
        let [etcd_port, peer_port, api_port] = free_ports()?;
        let api_url = format!("https://127.0.0.1:{api_port}");
        let audit_log = dir.join("audit.log");
        let mut plane = ControlPlane {
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            bin,
            ca,
            api_url,
            audit_log,
            processes: Vec::new(),
            remove_dir,
            controllers: false,
        };
        let admin = plane.ca.client(
            "admin",
            &Identity {
                user: "kubernetes-admin",
                group: Some("system:masters"),
            },
        )?;
        plane.write_kubeconfig(&plane.admin_kubeconfig, &Credential::Cert(&admin))?;
        plane.start_etcd(etcd_port, peer_port)?;
        plane.start_apiserver(api_port, etcd_port, &serving, &sa_key)?;
        Ok((plane, sa_key))
    }

    /// Creates namespace `name` (nothing when it exists) and, in a plane
    /// without the controller-manager, its `default` service account, which
    /// the ServiceAccount admission plugin requires of every pod.
    pub fn create_namespace(&self, name: &str) -> Result<()> {
        let mut manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
        if !self.controllers {
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {name}\n"
            ));
        }
        self.apply(&manifest).map(drop)
    }

    fn start_etcd(&mut self, port: u16, peer_port: u16) -> Result<()> {
        let peer = format!("http://127.0.0.1:{peer_port}");
        let client = format!("http://127.0.0.1:{port}");
        let mut etcd = self.bin.command(ETCD);
        etcd.arg("--name=loopback")
            .arg(format!("--data-dir={}", self.dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=loopback={peer}"))
            // A throwaway cluster: durability would only cost each write
            // an fsync on a shared disk.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        self.processes
            .push(Process::spawn("etcd", etcd, &self.dir)?);
        Ok(())
    }

    fn start_apiserver(
        &mut self,
        port: u16,
        etcd_port: u16,
        serving: &CertFiles,
        sa_key: &ServiceAccountKey,
    ) -> Result<()> {
        let audit_policy = self.dir.join("audit-policy.yaml");
        fs::write(&audit_policy, AUDIT_POLICY)?;
        let mut api = self.bin.command(KUBE_APISERVER);
        api.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--tls-cert-file={}", serving.cert.display()))
            .arg(format!("--tls-private-key-file={}", serving.key.display()))
            .arg(format!("--client-ca-file={}", self.ca.cert.display()))
            .arg("--authorization-mode=Node,RBAC")
            .arg(format!(
                "--service-account-key-file={}",
                sa_key.public.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key.private.display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            // The `kubernetes` Service's endpoint would be 127.0.0.1, which
            // Endpoints validation refuses; nothing here reaches it.
            .arg("--endpoint-reconciler-type=none")
            .arg("--allow-privileged=true")
            .arg(format!("--audit-policy-file={}", audit_policy.display()))
            .arg(format!("--audit-log-path={}", self.audit_log.display()))
            .arg("--audit-log-format=json")
            .arg("--profiling=false");
        let process = Process::spawn("kube-apiserver", api, &self.dir)?;
        self.processes.push(process);
        let kubeconfig = self.admin_kubeconfig.clone();
        let kubectl = self.bin.path(KUBECTL).to_path_buf();
        self.last().wait_ready(READY_WITHIN, "ready", || {
            Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["get", "--raw", "/readyz"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    fn start_controller_manager(&mut self, sa_key: &ServiceAccountKey) -> Result<()> {
        let kubeconfig = self.component_kubeconfig("kube-controller-manager")?;
        let mut cm = self.component_command(KUBE_CONTROLLER_MANAGER, &kubeconfig);
        cm
            // Each controller acts as a service account of its own, as in
            // kubeadm's clusters: the ReplicaSet controller is
            // system:serviceaccount:kube-system:replicaset-controller.
            .arg("--use-service-account-credentials=true")
            .arg(format!(
                "--service-account-private-key-file={}",
                sa_key.private.display()
            ))
            .arg(format!("--root-ca-file={}", self.ca.cert.display()));
        self.processes
            .push(Process::spawn("kube-controller-manager", cm, &self.dir)?);
        Ok(())
    }

    /// A control-plane component acting as the identity of `kubeconfig`,
    /// serving nothing (`--secure-port=0`) and alone (no leader election).
    fn component_command(&self, program: Program, kubeconfig: &Path) -> Command {
        let mut command = self.bin.command(program);
        command
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg("--secure-port=0")
            .arg("--leader-elect=false");
        command
    }

    fn start_scheduler(&mut self) -> Result<()> {
        let kubeconfig = self.component_kubeconfig("kube-scheduler")?;
        let scheduler = self.component_command(KUBE_SCHEDULER, &kubeconfig);
        self.processes
            .push(Process::spawn("kube-scheduler", scheduler, &self.dir)?);
        Ok(())
    }

    fn start_kwok(&mut self) -> Result<()> {
        // kwok plays every node's kubelet, so it holds the administrator's
        // group rather than one system:node identity per node.
        let cert = self.ca.client(
            "kwok",
            &Identity {
                user: "kwok-controller",
                group: Some("system:masters"),
            },
        )?;
        let kubeconfig = self.dir.join("kwok.kubeconfig");
        self.write_kubeconfig(&kubeconfig, &Credential::Cert(&cert))?;
        let stages = self.dir.join("kwok-stages.yaml");
        fs::write(&stages, KWOK_STAGES)?;
        let (key, value) = KWOK_NODE_ANNOTATION;
        let mut kwok = self.bin.command(KWOK);
        kwok.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--config={}", stages.display()))
            .arg("--manage-all-nodes=false")
            .arg(format!(
                "--manage-nodes-with-annotation-selector={key}={value}"
            ))
            // Renews each node's Lease, so the node lifecycle controller
            // never marks a node unreachable.
            .arg("--node-lease-duration-seconds=40");
        self.processes
            .push(Process::spawn("kwok", kwok, &self.dir)?);
        Ok(())
    }

    /// Pods can be created once the controller-manager has made the
    /// namespace's default service account (the ServiceAccount admission
    /// plugin refuses them before).
    fn wait_for_default_service_account(&mut self) -> Result<()> {
        self.wait_until(
            "the default service account exists",
            READY_WITHIN,
            |plane| {
                Ok(plane
                    .kubectl_quiet(&["get", "serviceaccount", "default", "-n", "default"])
                    .is_ok())
            },
        )
    }

    fn component_kubeconfig(&self, component: &str) -> Result<PathBuf> {
        let cert = self.ca.client(
            component,
            &Identity {
                user: &format!("system:{component}"),
                group: None,
            },
        )?;
        let path = self.dir.join(format!("{component}.kubeconfig"));
        self.write_kubeconfig(&path, &Credential::Cert(&cert))?;
        Ok(path)
    }

    /// Writes a kubeconfig for this cluster with `credential`.
    pub fn write_kubeconfig(&self, path: &Path, credential: &Credential) -> Result<()> {
        let user = match credential {
            Credential::Cert(files) => format!(
                "    client-certificate: {}\n    client-key: {}\n",
                files.cert.display(),
                files.key.display()
            ),
            Credential::Token(token) => format!("    token: {token}\n"),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: loopback\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: loopback\n  context:\n    cluster: loopback\n    user: user\ncurrent-context: loopback\nusers:\n- name: user\n  user:\n{user}",
            self.api_url,
            self.ca.cert.display()
        );
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    fn last(&mut self) -> &mut Process {
        // Only called right after a push.
        let n = self.processes.len() - 1;
        &mut self.processes[n]
    }

    /// Fails, quoting its log, when a component has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for p in &mut self.processes {
            p.check_running()?;
        }
        Ok(())
    }

    /// `kubectl` as the cluster administrator.
    pub fn kubectl(&self) -> Command {
        let mut c = self.bin.command(KUBECTL);
        c.arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()));
        c
    }

    /// Runs `kubectl args` as the administrator; its stdout, or an error
    /// quoting its stderr.
    pub fn kubectl_quiet(&self, args: &[&str]) -> Result<String> {
        run(self.kubectl().args(args), None)
    }

    /// `kubectl args` with `stdin` as its input.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Result<String> {
        run(self.kubectl().args(args), Some(stdin))
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        self.kubectl_with_input(&["apply", "-f", "-"], manifest)
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "json"]);
        let text = self.kubectl_quiet(&all)?;
        serde_json::from_str(&text).with_context(|| format!("kubectl get {args:?}: not JSON"))
    }

    /// Polls `done` every 200 ms until it holds, for at most `within`;
    /// fails early when a component has exited.
    pub fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&Self) -> Result<bool>,
    ) -> Result<()> {
        let started = Instant::now();
        let mut last_error = None;
        loop {
            self.check_running()?;
            match done(self) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_error = Some(e),
            }
            if started.elapsed() > within {
                match last_error {
                    Some(e) => bail!("{what}: not within {within:?}; last error: {e:#}"),
                    None => bail!("{what}: not within {within:?}"),
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The API server's audit events so far, one JSON object each.
    pub fn audit_events(&self) -> Result<Vec<Value>> {
        let text = fs::read_to_string(&self.audit_log)
            .with_context(|| format!("reading {}", self.audit_log.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("an audit event that is not JSON"))
            .collect()
    }

    /// The components' log files, for messages.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.processes
            .iter()
            .map(|p| (p.name.clone(), p.log.clone()))
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(mut p) = self.processes.pop() {
            p.stop();
        }
        // A failed test keeps the logs and the audit log to read.
        if std::thread::panicking() {
            eprintln!("the cluster's files are kept in {}", self.dir.display());
        } else if self.remove_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a kubeconfig's user authenticates.
pub enum Credential<'a> {
    Cert(&'a CertFiles),
    /// A bearer token, such as the TokenRequest API issues.
    Token(&'a str),
}

/// Runs `command` with `stdin`; stdout, or an error with stderr.
pub fn run(command: &mut Command, stdin: Option<&str>) -> Result<String> {
    let (stdout, _) = run_capturing(command, stdin)?;
    Ok(stdout)
}

/// Runs `command` with `stdin`; stdout followed by stderr (where kubectl
/// prints the warnings of admission webhooks), or an error with stderr.
pub fn run_with_stderr(command: &mut Command, stdin: Option<&str>) -> Result<String> {
    let (stdout, stderr) = run_capturing(command, stdin)?;
    Ok(stdout + &stderr)
}

fn run_capturing(command: &mut Command, stdin: Option<&str>) -> Result<(String, String)> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| !a.starts_with("--kubeconfig"))
            .collect();
        bail!(
            "{} {} failed ({}): {}",
            Path::new(command.get_program())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args.join(" "),
            output.status,
            stderr.trim()
        );
    }
    let stdout = String::from_utf8(output.stdout)
        .context("a program printed something that is not UTF-8")?;
    Ok((stdout, stderr))
}
