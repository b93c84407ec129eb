//! A module prepared once and instantiated afresh for every request, the
//! way policy-server evaluates policies: `WasmtimeEngineProviderPre` built
//! once per module, `rehydrate` per request, the instance dropped after it.
//! Work a warm instance would have cached (first-touch page faults of
//! linear memory, `wapc_init`, anything the guest keeps between calls) is
//! paid on every request here.

use crate::Policy;
use anyhow::{Result, anyhow};
use wasmtime::{Config, Engine};
use wasmtime_provider::{EpochDeadlines, WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

/// Epoch ticks a policy-server evaluation may take: it ticks once a second
/// and the Helm chart sets a policy timeout, so the deadline is checked but
/// never reached here.
const DEADLINE_TICKS: u64 = 10;

/// An engine configured as policy-server configures its own: wasmtime's
/// defaults, function references on, and epoch interruption because a
/// policy timeout is set.
pub fn policy_server_engine() -> Result<Engine> {
    let mut config = Config::default();
    config.wasm_function_references(true);
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|e| anyhow!("wasmtime: {e}"))
}

/// A compiled and linked module, ready to be instantiated per request.
pub struct Prepared {
    pre: WasmtimeEngineProviderPre,
}

impl Prepared {
    pub fn new(engine: &Engine, wasm: &[u8]) -> Result<Self> {
        let pre = WasmtimeEngineProviderBuilder::new()
            .engine(engine.clone())
            .module_bytes(wasm)
            .build_pre()
            .map_err(|e| anyhow!("wasmtime: {e}"))?;
        Ok(Prepared { pre })
    }

    /// A fresh instance, its `wapc_init` run: what a request starts with.
    pub fn instantiate(&self) -> Result<Policy> {
        let provider = self
            .pre
            .rehydrate(Some(EpochDeadlines {
                wapc_init: DEADLINE_TICKS,
                wapc_func: DEADLINE_TICKS,
            }))
            .map_err(|e| anyhow!("wasmtime: {e}"))?;
        Policy::from_provider(provider)
    }
}
