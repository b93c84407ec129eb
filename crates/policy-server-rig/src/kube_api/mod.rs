//! A Kubernetes API server stand-in for tests: serves a fixture cluster's
//! nodes and pods on 127.0.0.1 to the kube-rs client inside policy-server
//! (discovery, GET, LIST, WATCH), and logs every request it serves so tests
//! can count the LISTs and WATCHes a policy causes.
//!
//! kube-apiserver cannot run here; this speaks the part of its protocol
//! that kube-rs's `Api::get_opt` and `runtime::watcher` use, over plain
//! HTTP/1.1 with one thread per connection.

pub mod http;
mod routes;
pub mod selector;
pub mod store;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
pub use store::Store;

/// How often an idle watch that allows bookmarks gets one (the API server
/// sends them about every minute; tests should not wait that long).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// One request the stand-in served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

impl Served {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }

    /// A LIST or WATCH of `path` with this label selector.
    pub fn is_collection_read(&self, path: &str, label_selector: &str) -> bool {
        self.path == path
            && self.query.get("labelSelector").map_or("", String::as_str) == label_selector
    }
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

pub(crate) struct Shared {
    addr: SocketAddr,
    store: Mutex<Store>,
    changed: Condvar,
    served: Mutex<Vec<Served>>,
    /// Connections that ended on an error, while the stand-in was running.
    failures: Mutex<Vec<String>>,
    connections: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    echo: AtomicBool,
    bookmark_interval: Duration,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not hide the cluster from the others.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait_for_change<'a>(
        &self,
        guard: MutexGuard<'a, Store>,
        wait: Duration,
    ) -> MutexGuard<'a, Store> {
        match self.changed.wait_timeout(guard, wait) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn record(&self, request: &http::Request) {
        let served = Served {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
        };
        if self.echo.load(Ordering::Relaxed) {
            eprintln!("kube-api: {served}");
        }
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(served);
    }
}

/// The running stand-in; stops (and ends every open watch) when dropped.
pub struct KubeApi {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl KubeApi {
    /// Serves `store` on 127.0.0.1 at a port the system picks.
    pub fn start(store: Store) -> io::Result<KubeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            store: Mutex::new(store),
            changed: Condvar::new(),
            served: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            echo: AtomicBool::new(false),
            bookmark_interval: BOOKMARK_INTERVAL,
        });
        let for_acceptor = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept(listener, for_acceptor));
        Ok(KubeApi {
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Prints each request on stderr as it is served.
    pub fn echo_requests(&self, on: bool) {
        self.shared.echo.store(on, Ordering::Relaxed);
    }

    /// Every request served so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.shared
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How the connections that ended on an error ended (a peer that
    /// hangs up between requests is not one): what a test quotes when
    /// policy-server does not answer.
    pub fn failures(&self) -> Vec<String> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the cluster; open watches see the writes.
    pub fn update<T>(&self, change: impl FnOnce(&mut Store) -> T) -> T {
        let result = change(&mut self.shared.store());
        self.shared.changed.notify_all();
        result
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(resource, namespace, name).cloned()
    }

    /// A kubeconfig for a client of this stand-in (no credentials: it
    /// checks none).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\n\
             users:\n- name: stand-in\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: stand-in\n\
             current-context: stand-in\n",
            self.url()
        )
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wakes the acceptor blocked in accept().
        let _ = TcpStream::connect(self.shared.addr);
        for connection in self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = connection.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            return;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            shared
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(clone);
        }
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let peer = stream.peer_addr();
            if let Err(e) = serve_connection(stream, &shared)
                && !shared.stopping()
            {
                let peer = peer.map_or_else(|_| "?".to_string(), |p| p.to_string());
                shared
                    .failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("connection from {peer}: {e}"));
            }
        });
    }
}

/// Requests on one kept-alive connection, until the client closes it or
/// the stand-in stops.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    while !shared.stopping() {
        let Some(request) = http::read_request(&mut reader)? else {
            return Ok(());
        };
        shared.record(&request);
        routes::serve(shared, &request, &mut writer)?;
        if request.wants_close() {
            return Ok(());
        }
    }
    Ok(())
}
