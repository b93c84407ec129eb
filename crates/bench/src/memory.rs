//! A wasmtime engine whose linear memories report their size, so that a
//! benchmark can tell whether the guest's memory grows across calls.
//! policy-server keeps one instance per module and worker for its lifetime:
//! growth per call would end in an out-of-memory trap.

use anyhow::{Result, anyhow};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::{Config, Engine, LinearMemory, MemoryCreator, MemoryType};

/// Shared view of the current size of every memory created by the engine.
#[derive(Clone, Default)]
pub struct TrackedMemory(Arc<AtomicUsize>);

impl TrackedMemory {
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct VecMemory {
    data: Vec<u8>,
    maximum: Option<usize>,
    total: Arc<AtomicUsize>,
}

// SAFETY: the engine is configured with no reservation and no guard pages,
// so wasmtime bounds-checks every access against `byte_size` and re-reads
// `as_ptr` after a grow; a Vec may therefore move when it grows.
unsafe impl LinearMemory for VecMemory {
    fn byte_size(&self) -> usize {
        self.data.len()
    }
    /// Growth within the Vec's capacity never moves it; wasmtime checks.
    fn byte_capacity(&self) -> usize {
        self.data.capacity()
    }
    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if self.maximum.is_some_and(|m| new_size > m) {
            return Err(wasmtime::Error::msg("memory maximum exceeded"));
        }
        let old = self.data.len();
        self.data.resize(new_size, 0);
        self.total.fetch_add(new_size - old, Ordering::SeqCst);
        Ok(())
    }
    fn as_ptr(&self) -> *mut u8 {
        self.data.as_ptr() as *mut u8
    }
}

impl Drop for VecMemory {
    fn drop(&mut self) {
        self.total.fetch_sub(self.data.len(), Ordering::SeqCst);
    }
}

struct Creator(TrackedMemory);

// SAFETY: memories are plain heap allocations owned by the returned object.
unsafe impl MemoryCreator for Creator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        _reserved: Option<usize>,
        _guard: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        self.0.0.fetch_add(minimum, Ordering::SeqCst);
        Ok(Box::new(VecMemory {
            data: vec![0; minimum],
            maximum,
            total: self.0.0.clone(),
        }))
    }
}

/// An engine for measuring memory only: bounds checks make it slower than
/// the default one, so time nothing on it.
pub fn tracking_engine(tracked: &TrackedMemory) -> Result<Engine> {
    let mut config = Config::new();
    config.memory_reservation(0);
    config.memory_guard_size(0);
    config.memory_reservation_for_growth(0);
    // Copy-on-write images need mmap-backed memories, which these are not.
    config.memory_init_cow(false);
    config.with_host_memory(Arc::new(Creator(tracked.clone())));
    Engine::new(&config).map_err(|e| anyhow!("wasmtime: {e}"))
}
