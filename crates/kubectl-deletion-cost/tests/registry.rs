//! `--policy registry://…` against a real registry on loopback: Debian's
//! `docker-registry` (the CNCF distribution), started here on a free port
//! with its storage in a temporary directory. The module is put there with
//! the real `kwctl push` when kwctl is on PATH, else with the OCI client;
//! the report made with the pulled module must equal the built-in one's.

mod common;

use common::{NOW, root};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const REGISTRY_BIN: &str = "docker-registry";
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The registry process, stopped and its storage removed when dropped.
struct Registry {
    child: Child,
    dir: PathBuf,
    host: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

fn start_registry(bin: &Path) -> Registry {
    let dir = std::env::temp_dir().join(format!("deletion-cost-registry-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
        dir.join("storage").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let registry = Registry { child, dir, host };
    wait_until_serving(&registry.host);
    registry
}

/// Bounded: 100 tries, 100 ms apart.
fn wait_until_serving(host: &str) {
    for _ in 0..100 {
        if let Ok(mut stream) = TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not answer on {host} within 10 s");
}

fn push_with_kwctl(kwctl: &Path, dir: &Path, module: &Path, uri: &str, host: &str) {
    let sources = dir.join("sources.yml");
    std::fs::write(&sources, format!("insecure_sources:\n  - \"{host}\"\n")).unwrap();
    let out = Command::new(kwctl)
        .arg("push")
        .arg("--sources-path")
        .arg(&sources)
        .args(["--force", "true"])
        .arg(module)
        .arg(uri)
        .output()
        .expect("kwctl runs");
    assert!(
        out.status.success(),
        "kwctl push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn push_with_oci_client(module: &Path, reference: &str, host: &str) {
    let reference: Reference = reference.parse().unwrap();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![host.to_string()]),
        ..ClientConfig::default()
    });
    let layer = ImageLayer::new(
        std::fs::read(module).unwrap(),
        WASM_LAYER_MEDIA_TYPE.to_string(),
        None,
    );
    let config = Config::new(b"{}".to_vec(), WASM_CONFIG_MEDIA_TYPE.to_string(), None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(client.push(&reference, &[layer], config, &RegistryAuth::Anonymous, None))
        .expect("the module is pushed");
}

fn simulate(policy: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-deletion_cost"));
    command.arg("simulate");
    if let Some(policy) = policy {
        command.args(["--policy", policy]);
    }
    command
        .args(["--now", NOW, "--output", "json", "--scale", "shop/web=3"])
        .arg("--settings")
        .arg(root().join("examples/eks-hybrid-bursting.yaml"))
        .arg(root().join("crates/kubectl-deletion-cost/snapshots/eks-hybrid/cluster.json"))
        .output()
        .expect("the command runs")
}

#[test]
fn a_module_pulled_from_a_loopback_registry_gives_the_built_in_report() {
    let Some(bin) = on_path(REGISTRY_BIN) else {
        eprintln!(
            "SKIPPED: {REGISTRY_BIN} not found (Debian package docker-registry): --policy registry:// was not tested against a registry"
        );
        return;
    };
    let registry = start_registry(&bin);
    let reference = format!("{}/policies/pod-deletion-cost:v0.1.0", registry.host);
    let uri = format!("registry://{reference}");
    let module = wasm_host::default_policy_wasm();
    match on_path("kwctl") {
        Some(kwctl) => push_with_kwctl(&kwctl, &registry.dir, &module, &uri, &registry.host),
        None => push_with_oci_client(&module, &reference, &registry.host),
    }
    let pulled = simulate(Some(&uri));
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let built_in = simulate(None);
    assert!(built_in.status.success());
    assert!(!pulled.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&built_in.stdout)
    );

    let missing = format!("registry://{}/policies/pod-deletion-cost:v9", registry.host);
    let out = simulate(Some(&missing));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {missing}: cannot pull: "))
            && stderr.contains("manifest unknown"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_registry_is_named_in_the_error() {
    let uri = format!("registry://127.0.0.1:{}/policies/x:v1", free_port());
    let out = simulate(Some(&uri));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {uri}: cannot pull: ")),
        "{stderr}"
    );
}
