//! How a [`Pooling`] becomes the pooling allocator's slots: memories, tables
//! and async stacks mapped once, up front, instead of mmap/munmap calls per
//! store, which is what a host that makes a store per request, or keeps
//! thousands alive, wants.

use crate::engine_config::{ASYNC_STACK, MEMORY_GUARD, MEMORY_RESERVATION};
use crate::limits::Pooling;
use wasmtime::{PoolingAllocationConfig, Result, bail, format_err};

/// The user address space a pool may plan on: 47 bits on x86-64 and
/// AArch64 Linux with 4-level page tables, where mmap places nothing higher
/// unless asked.
const ADDRESS_SPACE: u64 = 1 << 47;

impl Pooling {
    /// `stores` slots, each with one store's bounds, so that a slot never
    /// promises more than the limiter allows and no store can take a slot
    /// another store is owed.
    ///
    /// A pool whose slot counts or bytes do not fit (a `u32` count, the
    /// address space) is refused with the product that does not fit named,
    /// never sized by arithmetic that wrapped.
    pub(crate) fn slots(&self) -> Result<PoolingAllocationConfig> {
        let stores = self.stores;
        let bounds = &self.per_store;
        if stores == 0 {
            bail!("a pool of zero stores can run none");
        }
        if bounds.memory_bytes as u64 > MEMORY_RESERVATION {
            bail!(
                "a pooled memory slot holds at most {} MiB (the reservation the component is \
                 compiled for), less than the store memory bound of {} MiB; lower that bound \
                 or leave the pool out",
                MEMORY_RESERVATION >> 20,
                bounds.memory_bytes >> 20
            );
        }
        let each = |per_store: usize, what: &str| {
            u32::try_from(per_store).map_err(|_| {
                format_err!(
                    "a pool slot holds at most {} {what}, not {per_store}",
                    u32::MAX
                )
            })
        };
        let total = |per_store: u32, what: &str| {
            stores.checked_mul(per_store).ok_or_else(|| {
                format_err!(
                    "a pool of {stores} stores with {per_store} {what} each needs more than \
                     {} {what}",
                    u32::MAX
                )
            })
        };
        let instances = each(bounds.instances, "core instances")?;
        let memories_each = each(bounds.memories, "memories")?;
        let tables_each = each(bounds.tables, "tables")?;
        let core_instances = total(instances, "core instances")?;
        let memories = total(memories_each, "memories")?;
        let tables = total(tables_each, "tables")?;

        // What the pool maps when the engine is made: each memory slot its
        // reservation and guard, each table slot `table_elements` pointers,
        // each stack its size and a guard page.
        let page = 4 << 10;
        let table_slot = (bounds.table_elements as u64)
            .checked_mul(std::mem::size_of::<usize>() as u64)
            .ok_or_else(|| format_err!("{} table elements overflow", bounds.table_elements))?;
        let slabs = [
            ("memory", memories, MEMORY_RESERVATION + MEMORY_GUARD),
            ("table", tables, table_slot),
            ("async stack", stores, ASYNC_STACK as u64 + page),
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
                "a pool of {stores} stores would reserve {}: more than the {} TiB of address \
                 space a process has; pool fewer stores or lower the per-store bounds",
                slabs.join(", "),
                ADDRESS_SPACE >> 40
            );
        }

        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(stores)
            .total_core_instances(core_instances)
            .total_memories(memories)
            .total_tables(tables)
            // An idle async store keeps the fiber stack of its last call, so
            // every live store may hold one (wasmtime's default is 1,000).
            .total_stacks(stores)
            .max_core_instances_per_component(instances)
            .max_memories_per_component(memories_each)
            .max_tables_per_component(tables_each)
            .table_elements(bounds.table_elements)
            .max_memory_size(bounds.memory_bytes)
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
    use crate::limits::StoreBounds;

    /// A pool sized by the default store bounds.
    fn pool(stores: u32) -> Pooling {
        Pooling::new(stores, StoreBounds::default())
    }

    fn engine(pooling: &Pooling) -> Result<wasmtime::Engine> {
        crate::engine::engine(Some(pooling))
    }

    #[test]
    fn ten_thousand_stores_with_the_default_bounds_make_an_engine() {
        engine(&pool(10_008)).unwrap();
    }

    #[test]
    fn a_slot_count_past_u32_is_refused_with_its_product_named() {
        let error = pool(u32::MAX / 4).slots().unwrap_err();
        assert!(error.to_string().contains("core instances"), "{error}");
    }

    #[test]
    fn a_per_store_count_past_u32_is_refused_not_saturated() {
        let bounds = StoreBounds::default().with_memories(usize::MAX);
        let error = Pooling::new(1, bounds).slots().unwrap_err();
        assert!(error.to_string().contains("memories"), "{error}");
    }

    #[test]
    fn a_pool_past_the_address_space_is_refused_with_its_slabs_named() {
        let error = pool(1_000_000).slots().unwrap_err().to_string();
        assert!(error.contains("4000000 memory slots"), "{error}");
        assert!(error.contains("128 TiB"), "{error}");
    }

    #[test]
    fn a_store_memory_bound_past_the_reservation_is_refused_for_a_pool() {
        let big = StoreBounds::default().with_memory_bytes(65 << 20);
        assert!(Pooling::new(1, big).slots().is_err());
        assert!(crate::engine::engine(None).is_ok());
    }
}
