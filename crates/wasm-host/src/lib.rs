//! Loads `policy.wasm` and calls it through waPC in wasmtime, with the same
//! crates and WASI setup as Kubewarden's policy-evaluator.

pub mod latency;
pub mod rehydrate;
pub mod replay;
pub mod timing;

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use timing::{CallTimes, Stopwatch};
use wapc::WapcHost;
use wasmtime_provider::{WasmtimeEngineProvider, WasmtimeEngineProviderBuilder};

/// Answers the policy's `kubewarden`/`kubernetes` host calls: a replay
/// session, a simulated cluster, a benchmark's canned answers.
pub trait HostResponder: Any + Send {
    fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// A responder for evaluations that must make no host call.
pub struct NoHostCalls;

impl HostResponder for NoHostCalls {
    fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!(
            "unexpected host call kubernetes/{operation}: {}",
            String::from_utf8_lossy(payload)
        ))
    }
}

/// The policy's answer to `validate`, as policy-server reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationResponse {
    pub accepted: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub mutated_object: Option<Value>,
    #[serde(default)]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingsValidation {
    pub valid: bool,
    #[serde(default)]
    pub message: Option<String>,
}

type Slot = Arc<Mutex<Option<Box<dyn HostResponder>>>>;

pub struct Policy {
    host: WapcHost,
    responder: Slot,
    logs: Arc<Mutex<Vec<Value>>>,
    times: Arc<Mutex<CallTimes>>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self> {
        let wasm = std::fs::read(path).with_context(|| {
            format!(
                "cannot read {} (build it with `make policy.wasm`)",
                path.display()
            )
        })?;
        Self::from_bytes(&wasm).with_context(|| format!("cannot load {}", path.display()))
    }

    pub fn from_bytes(wasm: &[u8]) -> Result<Self> {
        Self::build(WasmtimeEngineProviderBuilder::new().module_bytes(wasm))
    }

    /// Loads the module on a caller-made wasmtime engine (for instance one
    /// whose linear memories report their size).
    pub fn from_bytes_with_engine(wasm: &[u8], engine: wasmtime::Engine) -> Result<Self> {
        Self::build(
            WasmtimeEngineProviderBuilder::new()
                .module_bytes(wasm)
                .engine(engine),
        )
    }

    fn build(builder: WasmtimeEngineProviderBuilder) -> Result<Self> {
        let engine = builder.build().map_err(|e| anyhow!("wasmtime: {e}"))?;
        Self::from_provider(engine)
    }

    /// Wraps an engine provider (a fresh one from a prepared module, say)
    /// with the host calls answered: this runs `wapc_init`.
    pub fn from_provider(engine: WasmtimeEngineProvider) -> Result<Self> {
        let responder: Slot = Arc::new(Mutex::new(None));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let times = Arc::new(Mutex::new(CallTimes::default()));
        let (slot, log_sink, host_times) = (responder.clone(), logs.clone(), times.clone());
        let callback = move |_id: u64,
                             binding: &str,
                             namespace: &str,
                             operation: &str,
                             payload: &[u8]|
              -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
            match (binding, namespace) {
                // policy-evaluator turns these into tracing events.
                ("kubewarden", "tracing") => {
                    let event = serde_json::from_slice(payload)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into()));
                    log_sink.lock().map_err(|e| e.to_string())?.push(event);
                    Ok(Vec::new())
                }
                ("kubewarden", "kubernetes") => {
                    let mut guard = slot.lock().map_err(|e| e.to_string())?;
                    let responder = guard
                        .as_mut()
                        .ok_or("no host responder set for this evaluation")?;
                    let watch = Stopwatch::start();
                    let answer = responder.call(operation, payload);
                    let (wall, cpu) = watch.read();
                    if let Ok(mut t) = host_times.lock() {
                        t.host_calls += 1;
                        t.in_host_calls += wall;
                        t.cpu_in_host_calls += cpu;
                    }
                    // policy-evaluator words a failed callback this way
                    // before the guest sees it.
                    answer.map_err(|e| format!("Callback evaluation failure: {e}").into())
                }
                _ => {
                    Err(format!("unknown host capability {binding}/{namespace}/{operation}").into())
                }
            }
        };
        let host = WapcHost::new(Box::new(engine), Some(Box::new(callback)))
            .map_err(|e| anyhow!("waPC: {e}"))?;
        Ok(Policy {
            host,
            responder,
            logs,
            times,
        })
    }

    /// Calls a guest function with a raw payload.
    pub fn call_raw(&self, function: &str, payload: &[u8]) -> Result<Vec<u8>> {
        let watch = Stopwatch::start();
        let result = self.host.call(function, payload);
        let (wall, cpu) = watch.read();
        if let Ok(mut t) = self.times.lock() {
            t.guest_calls += 1;
            t.in_guest_calls += wall;
            t.cpu_in_guest_calls += cpu;
        }
        result.map_err(|e| anyhow!("guest call {function} failed: {e}"))
    }

    /// Time spent in guest calls and in their host calls since the module
    /// was loaded.
    pub fn call_times(&self) -> CallTimes {
        self.times.lock().map(|t| *t).unwrap_or_default()
    }

    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidation> {
        let out = self.call_raw("validate_settings", &serde_json::to_vec(settings)?)?;
        serde_json::from_slice(&out).with_context(|| {
            format!(
                "validate_settings answered {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// Evaluates one AdmissionRequest as policy-server does, with host calls
    /// answered by `responder`, which is handed back afterwards.
    pub fn validate<R: HostResponder>(
        &self,
        request: &Value,
        settings: &Value,
        responder: R,
    ) -> Result<(ValidationResponse, R)> {
        let payload =
            serde_json::to_vec(&serde_json::json!({"request": request, "settings": settings}))?;
        let (raw, responder) = self.validate_raw(&payload, responder)?;
        let response = serde_json::from_slice(&raw)
            .with_context(|| format!("validate answered {}", String::from_utf8_lossy(&raw)))?;
        Ok((response, responder))
    }

    /// `validate` on a prepared payload, returning the guest's bytes: what a
    /// benchmark measures.
    pub fn validate_raw<R: HostResponder>(
        &self,
        payload: &[u8],
        responder: R,
    ) -> Result<(Vec<u8>, R)> {
        *self.responder.lock().map_err(|e| anyhow!("{e}"))? = Some(Box::new(responder));
        let result = self.call_raw("validate", payload);
        let boxed = self
            .responder
            .lock()
            .map_err(|e| anyhow!("{e}"))?
            .take()
            .ok_or_else(|| anyhow!("host responder vanished"))?;
        let any: Box<dyn Any> = boxed;
        let responder = *any
            .downcast::<R>()
            .map_err(|_| anyhow!("host responder changed type"))?;
        Ok((result?, responder))
    }

    /// Log events the guest sent since the last call.
    pub fn take_logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// The JSON patch policy-server derives from the mutated object.
pub fn patch(original: &Value, mutated: &Value) -> Value {
    serde_json::to_value(json_patch::diff(original, mutated)).unwrap_or(Value::Null)
}

/// The AdmissionRequest inside an AdmissionReview file, or the file itself
/// when it is a bare AdmissionRequest.
pub fn admission_request(document: Value) -> Value {
    match document {
        Value::Object(mut map) if map.contains_key("request") => {
            map.remove("request").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// The policy module this checkout builds (`make policy.wasm`); the
/// `POLICY_WASM` environment variable names another.
pub fn default_policy_wasm() -> std::path::PathBuf {
    std::env::var_os("POLICY_WASM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policy.wasm")
        })
}
