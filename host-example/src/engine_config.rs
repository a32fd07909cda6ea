//! The engine settings, shared by the build script (which precompiles the
//! embedded component) and the library (which loads it): wasmtime refuses a
//! precompiled component whose engine settings differ from the loader's.

/// With `pool = Some((instances, memory_bytes))`, memories and instances
/// come from slots mapped once, up front, instead of an mmap/munmap pair per
/// store: what a host that makes a store per request wants. Pooling decides
/// where memory comes from, not the code Cranelift emits, so one precompiled
/// artifact loads into either engine.
pub fn engine_config(pool: Option<(u32, usize)>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Lets a call's deadline interrupt a guest stuck in a loop.
    config.epoch_interruption(true);
    if let Some((instances, memory_bytes)) = pool {
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        // A component is a few core instances (ours: the module and two
        // wit-component shims), each with at most one memory and table.
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances)
            .total_tables(instances * 4)
            .max_memory_size(memory_bytes)
            // Reset the low memory a guest touches by memset rather than
            // madvise: a returned slot is then reused without page faults.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}
