//! [`MappedPages`]: dropping pages of a memory-mapped GGUF file from this
//! process's resident memory once nothing needs them mapped.

use std::sync::Arc;

/// The kernel's page size on every target kiln maps files on.
const PAGE: usize = 4096;

/// How many bytes around a faulting address Linux maps when the file's pages
/// are already in the page cache (`fault_around_bytes`, default 64 KiB): one
/// read of a mapped row can make up to this much of the file resident.
pub const FAULT_AROUND_BYTES: usize = 64 * 1024;

/// A handle on a read-only file mapping that can tell the kernel to drop
/// ranges of it from this process ([`MappedPages::release`]). Cheap to
/// clone; keeps the mapping alive.
#[derive(Clone)]
pub struct MappedPages {
    mapping: Arc<memmap2::Mmap>,
}

impl std::fmt::Debug for MappedPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedPages({} bytes)", self.mapping.len())
    }
}

impl MappedPages {
    /// Releasing pages of `mapping`.
    pub(crate) fn new(mapping: Arc<memmap2::Mmap>) -> Self {
        Self { mapping }
    }

    /// Drops the whole pages inside byte range `range` of the mapping from
    /// this process's resident memory. Harmless if they are read again: the
    /// mapping is a read-only file mapping, so the pages come back from the
    /// file (or the page cache). Out-of-range parts are ignored.
    #[allow(unsafe_code)]
    pub fn release(&self, range: std::ops::Range<usize>) {
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = (range.end.min(self.mapping.len()) / PAGE) * PAGE;
        if start < end {
            // SAFETY: `Mmap::map` maps the file read-only: after
            // MADV_DONTNEED a read of these pages faults them back in from
            // the unchanged file, so every borrow of the bytes keeps seeing
            // the same values. The range lies within the mapping.
            let _ = unsafe {
                self.mapping.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }

    /// [`MappedPages::release`] of everything a read of `read` may have
    /// made resident under fault-around: `read` widened to
    /// [`FAULT_AROUND_BYTES`] alignment, but kept inside `within` (the
    /// bytes of the tensor being read, so neighbours stay mapped).
    pub fn release_read(&self, read: std::ops::Range<usize>, within: std::ops::Range<usize>) {
        let start = (read.start / FAULT_AROUND_BYTES * FAULT_AROUND_BYTES).max(within.start);
        let end = read
            .end
            .div_ceil(FAULT_AROUND_BYTES)
            .saturating_mul(FAULT_AROUND_BYTES)
            .min(within.end);
        self.release(start..end);
    }
}
