//! The live cluster of a kubeconfig context, through kube-rs: what
//! `simulate`, `audit`, `backfill` and `rebalance` read when no snapshot
//! file is given, the ClusterAdmissionPolicy `--from-policy` names, and the
//! pod patches of `--apply`.
//!
//! Nodes and pods are read into the same [`Snapshot`] a kubectl export
//! gives, page by page, through the snapshot reader itself: what a report
//! says of a live cluster is what it would say of `kubectl get nodes,pods
//! -o json` taken at that moment. Every failure names the context, and an
//! API error the verb and the resource it was refused.

use crate::PolicyConfig;
use crate::backfill::Patch;
use cluster_sim::snapshot::Snapshot;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch as KubePatch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;

/// Items per LIST request, as kubectl asks (`--chunk-size`): large lists
/// come in pages the API server can serve without holding them whole.
pub const PAGE: u32 = 500;

/// The Kubewarden policy kind `--from-policy` reads.
const POLICY_GROUP: &str = "policies.kubewarden.io";
const POLICY_VERSION: &str = "v1";
const POLICY_KIND: &str = "ClusterAdmissionPolicy";
const POLICY_PLURAL: &str = "clusteradmissionpolicies";

/// Which cluster and namespaces, as kubectl's own flags say it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--kubeconfig`; else `KUBECONFIG` (its files merged), else
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`; else the kubeconfig's current context.
    pub context: Option<String>,
    /// `-n`; else the context's namespace, else `default`.
    pub namespace: Option<String>,
    /// `-A`: every namespace.
    pub all_namespaces: bool,
}

/// A connection to one context's API server.
pub struct Live {
    runtime: tokio::runtime::Runtime,
    client: Client,
    /// The context's name, in every message.
    pub context: String,
    pub server: String,
    /// The namespace read; `None`: all of them.
    pub namespace: Option<String>,
}

/// A patch the API server did not take, and why; the pod is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 409: the pod changed since it was read.
    Conflict(String),
    /// 404: the pod was deleted since it was read.
    Gone(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Conflict(m) => write!(f, "changed since it was read (409 Conflict: {m})"),
            Refusal::Gone(m) => write!(f, "deleted since it was read (404 Not Found: {m})"),
        }
    }
}

/// What is being asked of the API server, for messages: `cannot list pods
/// in namespace shop`.
struct Access<'a> {
    verb: &'a str,
    resource: &'a str,
    namespace: Option<&'a str>,
}

impl std::fmt::Display for Access<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        match self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None if self.resource == "pods" => write!(f, " in all namespaces"),
            None => Ok(()),
        }
    }
}

impl Live {
    /// Reads the kubeconfig and makes a client for the context; nothing is
    /// sent to the API server yet.
    pub fn connect(target: &Target) -> Result<Live, String> {
        let kubeconfig = match &target.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {}", path.display(), chain(&e)))?,
            None => Kubeconfig::read().map_err(|e| {
                format!(
                    "no cluster to read: give a snapshot file, or a kubeconfig (KUBECONFIG, --kubeconfig, ~/.kube/config): {}",
                    chain(&e)
                )
            })?,
        };
        let context = match (&target.context, &kubeconfig.current_context) {
            (Some(c), _) | (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(
                    "the kubeconfig has no current context: name one with --context".into(),
                );
            }
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(format!(
                "context {context}: not in the kubeconfig (its contexts: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        // Err only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the network runtime: {e}"))?;
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = runtime
            .block_on(Config::from_custom_kubeconfig(kubeconfig, &options))
            .map_err(|e| format!("context {context}: {}", chain(&e)))?;
        let namespace = if target.all_namespaces {
            None
        } else {
            Some(
                target
                    .namespace
                    .clone()
                    .unwrap_or_else(|| config.default_namespace.clone()),
            )
        };
        let server = config.cluster_url.to_string();
        let client = {
            // The client's connection pool is made on the runtime.
            let _guard = runtime.enter();
            Client::try_from(config).map_err(|e| format!("context {context}: {}", chain(&e)))?
        };
        Ok(Live {
            runtime,
            client,
            context,
            server,
            namespace,
        })
    }

    /// Where the snapshot came from, for reports: `context NAME (namespace
    /// NS)`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("context {} (namespace {ns})", self.context),
            None => format!("context {} (all namespaces)", self.context),
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Why a request failed, naming the context, the verb and the resource.
    fn error(&self, access: &Access, e: &kube::Error) -> String {
        match e {
            kube::Error::Api(status) if status.code == 401 => format!(
                "context {}: cannot {access}: the API server at {} does not accept the context's credentials (401 Unauthorized: {})",
                self.context, self.server, status.message
            ),
            kube::Error::Api(status) if status.code == 403 => format!(
                "context {}: cannot {access}: forbidden: {}",
                self.context, status.message
            ),
            kube::Error::Api(status) => format!(
                "context {}: cannot {access}: {} ({} {})",
                self.context, status.message, status.code, status.reason
            ),
            other => format!(
                "context {}: cannot {access}: the API server at {} cannot be reached: {}",
                self.context,
                self.server,
                chain(other)
            ),
        }
    }

    /// The nodes (their metadata: the policy reads only their labels) and
    /// the pods of the target's namespaces, listed in pages of [`PAGE`];
    /// `progress(what, read, total)` after each page.
    pub fn read_snapshot(
        &self,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let access = Access {
            verb: "list",
            resource: "nodes",
            namespace: None,
        };
        let mut read = 0;
        self.pages(&access, progress, |params| {
            let list = self
                .block_on(nodes.list_metadata(params))
                .map_err(|e| self.error(&access, &e))?;
            read += list.items.len();
            let items: Vec<Value> = list
                .items
                .iter()
                .map(|n| json!({"kind": "Node", "metadata": n.metadata}))
                .collect();
            self.add_page(&mut snapshot, "nodes", items)?;
            Ok((list.metadata, read))
        })?;
        let pods: Api<Pod> = match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let access = Access {
            verb: "list",
            resource: "pods",
            namespace: self.namespace.as_deref(),
        };
        let mut read = 0;
        self.pages(&access, progress, |params| {
            let list = self
                .block_on(pods.list(params))
                .map_err(|e| self.error(&access, &e))?;
            read += list.items.len();
            let items = list
                .items
                .iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).map_err(|e| e.to_string())?;
                    // A list's items carry no kind; the snapshot reader
                    // wants one on each.
                    v["kind"] = json!("Pod");
                    Ok(v)
                })
                .collect::<Result<Vec<_>, String>>()?;
            self.add_page(&mut snapshot, "pods", items)?;
            Ok((list.metadata, read))
        })?;
        snapshot.files.push(PathBuf::from(self.describe()));
        snapshot
            .check()
            .map_err(|e| format!("{}: {e}", self.describe()))?;
        Ok(snapshot)
    }

    /// Runs `page` with each continue token until the list is over.
    /// `page` returns the list's metadata and the items read so far.
    fn pages(
        &self,
        access: &Access,
        progress: &mut dyn FnMut(&str, usize, usize),
        mut page: impl FnMut(&ListParams) -> Result<(kube::core::ListMeta, usize), String>,
    ) -> Result<(), String> {
        let what = format!("{} {}", access.verb, access.resource);
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let (meta, read) = page(&params)?;
            let remaining = meta
                .remaining_item_count
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            match meta.continue_.filter(|t| !t.is_empty()) {
                Some(token) => {
                    progress(&what, read, read + remaining.max(1));
                    params = params.continue_token(&token);
                }
                None => {
                    progress(&what, read, read);
                    return Ok(());
                }
            }
        }
    }

    fn add_page(
        &self,
        snapshot: &mut Snapshot,
        what: &str,
        items: Vec<Value>,
    ) -> Result<(), String> {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        snapshot.add(&format!("{} {what}", self.describe()), &list.to_string())
    }

    /// The settings of ClusterAdmissionPolicy `name` (and which bindings it
    /// is sent), as a manifest file holding it would give them.
    pub fn cluster_policy(&self, name: &str) -> Result<PolicyConfig, String> {
        let gvk = GroupVersionKind::gvk(POLICY_GROUP, POLICY_VERSION, POLICY_KIND);
        let resource = ApiResource::from_gvk_with_plural(&gvk, POLICY_PLURAL);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let access = Access {
            verb: "get",
            resource: &format!("{POLICY_PLURAL}.{POLICY_GROUP} {name}"),
            namespace: None,
        };
        let policy = match self.block_on(api.get(name)) {
            Ok(p) => p,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(format!(
                    "context {}: --from-policy {name}: no {POLICY_KIND} {name} ({POLICY_GROUP}/{POLICY_VERSION}) in the cluster: {} (kubectl get {POLICY_PLURAL} lists them; without Kubewarden installed there are none)",
                    self.context, status.message
                ));
            }
            Err(e) => return Err(self.error(&access, &e)),
        };
        let mut manifest = serde_json::to_value(&policy).map_err(|e| e.to_string())?;
        manifest["apiVersion"] = json!(format!("{POLICY_GROUP}/{POLICY_VERSION}"));
        manifest["kind"] = json!(POLICY_KIND);
        PolicyConfig::from_manifest(&format!("context {}", self.context), &manifest)
    }

    /// Checks, before any change, that the context may patch pods in each
    /// of `namespaces` (a SelfSubjectAccessReview, which every
    /// authenticated user may ask): a missing permission is one message
    /// naming it, not a patch refused halfway through.
    pub fn check_can_patch_pods(&self, namespaces: &BTreeSet<String>) -> Result<(), String> {
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        for ns in namespaces {
            let access = Access {
                verb: "patch",
                resource: "pods",
                namespace: Some(ns),
            };
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.clone()),
                        verb: Some("patch".into()),
                        resource: Some("pods".into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = self
                .block_on(reviews.create(&PostParams::default(), &review))
                .map_err(|e| {
                    self.error(
                        &Access {
                            verb: "create",
                            resource: "selfsubjectaccessreviews.authorization.k8s.io (to check that pods may be patched)",
                            namespace: None,
                        },
                        &e,
                    )
                })?;
            let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
            if !allowed {
                let reason = answer
                    .status
                    .and_then(|s| s.reason)
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                return Err(format!(
                    "context {}: cannot {access}: forbidden for {}{reason}; --apply needs patch on pods (examples/plugin-rbac.yaml); nothing was changed",
                    self.context,
                    self.user()
                ));
            }
        }
        Ok(())
    }

    /// Who the context authenticates as (a SelfSubjectReview), for
    /// messages; a cluster that does not say is "the context's user".
    fn user(&self) -> String {
        let reviews: Api<SelfSubjectReview> = Api::all(self.client.clone());
        self.block_on(reviews.create(&PostParams::default(), &SelfSubjectReview::default()))
            .ok()
            .and_then(|r| r.status?.user_info?.username)
            .map_or_else(|| "the context's user".to_string(), |u| format!("user {u}"))
    }

    /// Writes the patch's annotations on its pod, on the condition that
    /// the pod is still at the resourceVersion it was read at (a merge
    /// patch carrying `metadata.resourceVersion` is refused with 409 when
    /// it is not). `Ok(Err(_))`: refused, the pod left alone; `Err`: the
    /// request itself failed (no access, no cluster).
    pub fn patch_pod(&self, patch: &Patch) -> Result<Result<(), Refusal>, String> {
        let Some(version) = &patch.resource_version else {
            return Err(format!(
                "{}/{}: no resourceVersion was read: refusing to write without the check",
                patch.namespace, patch.pod
            ));
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &patch.namespace);
        let body = json!({"metadata": {
            "resourceVersion": version,
            "annotations": patch.annotations,
        }});
        let access = Access {
            verb: "patch",
            resource: "pods",
            namespace: Some(&patch.namespace),
        };
        match self.block_on(pods.patch(
            &patch.pod,
            &PatchParams::default(),
            &KubePatch::Merge(&body),
        )) {
            Ok(_) => Ok(Ok(())),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(Err(Refusal::Conflict(s.message.clone())))
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Err(Refusal::Gone(s.message.clone()))),
            Err(e) => Err(self.error(&access, &e)),
        }
    }
}

/// An error with its causes, as one line: kube-rs wraps the cause that
/// says what happened (connection refused, file not found) in errors that
/// only say where.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
