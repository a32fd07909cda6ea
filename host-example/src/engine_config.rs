//! The engine settings, shared by the build script (which precompiles the
//! shipped component) and the library (which loads it): wasmtime refuses a
//! precompiled component whose engine settings differ from the loader's.
//!
//! Every setting that shapes the code Cranelift emits is set here the same
//! way with and without a pool, so the build's one artifact loads into both.

/// Address space reserved for each linear memory, and what a pooled memory
/// slot holds. wasmtime's 4 GiB default spares bounds checks, but a pool for
/// 10,000 stores of 4 memories each would then reserve 160 TiB, more than
/// the 128 TiB a process has; at 64 MiB it is 2.5 TiB. 64 MiB is the default
/// store memory bound, so under the default bounds no memory outgrows its
/// reservation (which would move it) and a slot holds all a store may have.
/// The cost is a bounds check per guest memory access, in a component whose
/// time goes to socket calls.
pub const MEMORY_RESERVATION: u64 = 64 << 20;

/// Inaccessible bytes after each memory: an access whose constant offset is
/// below this needs no check beyond its index's.
pub const MEMORY_GUARD: u64 = 2 << 20;

/// The fiber stack of an async call, wasmtime's default, named because a
/// pool maps one per store up front.
pub const ASYNC_STACK: usize = 2 << 20;

/// The settings every engine of this crate starts from. A pool, when one is
/// asked for, is added by the library (`pooling.rs`): the allocation
/// strategy is not a setting a precompiled component must match.
pub fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Lets a call's deadline interrupt, or the async API's yield pause, a
    // guest stuck in a loop.
    config.epoch_interruption(true);
    config
        .memory_reservation(MEMORY_RESERVATION)
        .memory_guard_size(MEMORY_GUARD)
        // Copying the component's few KiB of data into a fresh memory costs
        // less than mapping its image, and each mapping is one of the
        // process's vm.max_map_count (65,530 by default): with the image, a
        // live store took 7 mappings and 10,000 stores did not fit.
        .memory_init_cow(false)
        .async_stack_size(ASYNC_STACK);
    config
}
