//! What one store may take of the host's memory, summed over every memory
//! and table its guest makes.

use crate::limits::StoreBounds;
use wasmtime::{ResourceLimiter, Result, bail};

/// What wasmtime keeps per table element: one pointer. Tables count toward
/// the store's memory bound at this price.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Sums what a store's memories and tables take and refuses what would pass
/// [`StoreBounds`]. wasmtime's own `StoreLimits` bounds each memory on its
/// own, so forty instances could take forty times the "limit".
pub(crate) struct StoreLimiter {
    bounds: StoreBounds,
    /// Bytes of every memory plus every table's elements at their price.
    bytes: usize,
    elements: usize,
}

impl StoreLimiter {
    pub(crate) fn new(bounds: StoreBounds) -> Self {
        StoreLimiter {
            bounds,
            bytes: 0,
            elements: 0,
        }
    }

    fn charge(&mut self, more_bytes: usize, what: &str) -> Result<bool> {
        let total = self.bytes.saturating_add(more_bytes);
        if total > self.bounds.memory_bytes {
            bail!(
                "the component asked for {what} beyond its store's {} MiB memory limit",
                self.bounds.memory_bytes >> 20
            );
        }
        self.bytes = total;
        Ok(true)
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        self.charge(desired.saturating_sub(current), "more linear memory")
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let more = desired.saturating_sub(current);
        let elements = self.elements.saturating_add(more);
        if elements > self.bounds.table_elements {
            bail!(
                "the component asked for more table elements than its store's {} allow",
                self.bounds.table_elements
            );
        }
        let allowed = self.charge(more.saturating_mul(TABLE_ELEMENT_BYTES), "a larger table")?;
        self.elements = elements;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.bounds.instances
    }

    fn tables(&self) -> usize {
        self.bounds.tables
    }

    fn memories(&self) -> usize {
        self.bounds.memories
    }
}
