//! The engines this crate makes: the settings the build precompiled with
//! ([`engine_config`](crate::engine_config)), a pool when asked for, and the
//! epoch ticking.

use crate::engine_config::engine_config;
use crate::epoch::start_epoch_ticker;
use crate::limits::Pooling;
use wasmtime::{Engine, InstanceAllocationStrategy, Result};

/// An engine with the settings this crate needs (epoch interruption; the
/// pooling allocator when `pooling` is given), whose epoch advances every
/// [`EPOCH_TICK`](crate::EPOCH_TICK) until it is dropped.
pub fn engine(pooling: Option<&Pooling>) -> Result<Engine> {
    let mut config = engine_config();
    if let Some(pooling) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling.slots()?));
    }
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// An engine like [`engine`]'s that loads precompiled code and cannot
/// compile: it skips making Cranelift, most of an engine's making. Its epoch
/// is not ticked yet; the caller starts the ticker once it keeps the engine.
pub(crate) fn loading_engine() -> Result<Engine> {
    let mut config = engine_config();
    // What the build precompiled with (`engine_config`) stays as it was: the
    // compiler is not one of the settings a precompiled artifact must match.
    config.enable_compiler(false);
    Engine::new(&config)
}
