//! The engine settings, shared by the build script (which precompiles the
//! embedded component) and the library (which loads it): wasmtime refuses a
//! precompiled component whose engine settings differ from the loader's.

/// Pooling-allocator slots: `stores` stores at once, each with the per-store
/// caps of `Limits`, so that a slot never promises more than the limiter allows.
pub struct Pool {
    pub stores: u32,
    pub memory_bytes: usize,
    pub instances: u32,
    pub memories: u32,
    pub tables: u32,
    pub table_elements: usize,
}

/// With a `pool`, memories and instances come from slots mapped once, up
/// front, instead of an mmap/munmap pair per store: what a host that makes a
/// store per request wants. Pooling decides where memory comes from, not the
/// code Cranelift emits, so one precompiled artifact loads into either engine.
pub fn engine_config(pool: Option<Pool>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Lets a call's deadline interrupt, or the async API's yield pause, a
    // guest stuck in a loop.
    config.epoch_interruption(true);
    if let Some(pool) = pool {
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling
            .total_component_instances(pool.stores)
            .total_core_instances(pool.stores * pool.instances)
            .total_memories(pool.stores * pool.memories)
            .total_tables(pool.stores * pool.tables)
            .max_core_instances_per_component(pool.instances)
            .max_memories_per_component(pool.memories)
            .max_tables_per_component(pool.tables)
            .table_elements(pool.table_elements)
            .max_memory_size(pool.memory_bytes)
            // Reset the low memory a guest touches by memset rather than
            // madvise: a returned slot is then reused without page faults.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}
