//! The engine settings, shared by the build script (which precompiles the
//! shipped component) and the library (which loads it): wasmtime refuses a
//! precompiled component whose engine settings differ from the loader's.
//!
//! Every setting that shapes the code Cranelift emits is set here the same
//! way with and without a pool, so the build's one artifact loads into both.

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig, Result, bail, format_err};

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
const ASYNC_STACK: usize = 2 << 20;

/// The user address space a pool may plan on: 47 bits on x86-64 and
/// AArch64 Linux with 4-level page tables, where mmap places nothing higher
/// unless asked.
const ADDRESS_SPACE: u64 = 1 << 47;

/// Pooling-allocator slots: `stores` stores at once, each with one store's
/// bounds, so that a slot never promises more than the limiter allows and no
/// store can take a slot another store is owed.
pub struct Pool {
    pub stores: u32,
    pub memory_bytes: usize,
    pub instances: u32,
    pub memories: u32,
    pub tables: u32,
    pub table_elements: usize,
}

/// With a `pool`, memories, tables and async stacks come from slots mapped
/// once, up front, instead of mmap/munmap calls per store: what a host that
/// makes a store per request, or keeps thousands alive, wants.
///
/// A pool whose slot counts or bytes do not fit (a `u32` count, the address
/// space) is refused with the product that does not fit named, never sized
/// by arithmetic that wrapped.
pub fn engine_config(pool: Option<Pool>) -> Result<wasmtime::Config> {
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
    if let Some(pool) = pool {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool.slots()?));
    }
    Ok(config)
}

impl Pool {
    fn slots(&self) -> Result<PoolingAllocationConfig> {
        if self.stores == 0 {
            bail!("a pool of zero stores can run none");
        }
        if self.memory_bytes as u64 > MEMORY_RESERVATION {
            bail!(
                "a pooled memory slot holds at most {} MiB (the reservation the component is \
                 compiled for), less than the store memory bound of {} MiB; lower that bound \
                 or leave the pool out",
                MEMORY_RESERVATION >> 20,
                self.memory_bytes >> 20
            );
        }
        let total = |per_store: u32, what: &str| {
            self.stores.checked_mul(per_store).ok_or_else(|| {
                format_err!(
                    "a pool of {} stores with {per_store} {what} each needs more than {} {what}",
                    self.stores,
                    u32::MAX
                )
            })
        };
        let core_instances = total(self.instances, "core instances")?;
        let memories = total(self.memories, "memories")?;
        let tables = total(self.tables, "tables")?;

        // What the pool maps when the engine is made: each memory slot its
        // reservation and guard, each table slot `table_elements` pointers,
        // each stack its size and a guard page.
        let page = 4 << 10;
        let table_slot = (self.table_elements as u64)
            .checked_mul(std::mem::size_of::<usize>() as u64)
            .ok_or_else(|| format_err!("{} table elements overflow", self.table_elements))?;
        let slabs = [
            ("memory", memories, MEMORY_RESERVATION + MEMORY_GUARD),
            ("table", tables, table_slot),
            ("async stack", self.stores, ASYNC_STACK as u64 + page),
        ];
        let reserved = slabs.iter().try_fold(0u64, |sum, &(_, slots, each)| {
            u64::from(slots)
                .checked_mul(each)
                .and_then(|bytes| sum.checked_add(bytes))
        });
        if reserved.is_none_or(|bytes| bytes >= ADDRESS_SPACE) {
            let slabs: Vec<_> = slabs
                .iter()
                .map(|&(what, slots, each)| format!("{slots} {what} slots of {} KiB", each >> 10))
                .collect();
            bail!(
                "a pool of {} stores would reserve {}: more than the {} TiB of address space \
                 a process has; pool fewer stores or lower the per-store bounds",
                self.stores,
                slabs.join(", "),
                ADDRESS_SPACE >> 40
            );
        }

        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(self.stores)
            .total_core_instances(core_instances)
            .total_memories(memories)
            .total_tables(tables)
            // An idle async store keeps the fiber stack of its last call, so
            // every live store may hold one (wasmtime's default is 1,000).
            .total_stacks(self.stores)
            .max_core_instances_per_component(self.instances)
            .max_memories_per_component(self.memories)
            .max_tables_per_component(self.tables)
            .table_elements(self.table_elements)
            .max_memory_size(self.memory_bytes)
            // Reset the low memory a guest touches by memset rather than
            // madvise: a returned slot is then reused without page faults.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10);
        Ok(pooling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool sized by the default store bounds.
    fn pool(stores: u32) -> Pool {
        Pool {
            stores,
            memory_bytes: 64 << 20,
            instances: 20,
            memories: 4,
            tables: 20,
            table_elements: 10_000,
        }
    }

    #[test]
    fn ten_thousand_stores_with_the_default_bounds_make_an_engine() {
        let config = engine_config(Some(pool(10_008))).unwrap();
        wasmtime::Engine::new(&config).unwrap();
    }

    #[test]
    fn a_slot_count_past_u32_is_refused_with_its_product_named() {
        let error = engine_config(Some(pool(u32::MAX / 4))).unwrap_err();
        assert!(error.to_string().contains("core instances"), "{error}");
    }

    #[test]
    fn a_pool_past_the_address_space_is_refused_with_its_slabs_named() {
        let error = engine_config(Some(pool(1_000_000)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("4000000 memory slots"), "{error}");
        assert!(error.contains("128 TiB"), "{error}");
    }

    #[test]
    fn a_store_memory_bound_past_the_reservation_is_refused_for_a_pool() {
        let big = Pool {
            memory_bytes: 65 << 20,
            ..pool(1)
        };
        assert!(engine_config(Some(big)).is_err());
        assert!(engine_config(None).is_ok());
    }
}
