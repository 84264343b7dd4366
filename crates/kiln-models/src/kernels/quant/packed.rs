//! Weights repacked eight rows at a time for the integer kernels (the idea
//! of llama.cpp's `q4_0_8x8` repacking, in kiln's own layout).
//!
//! A file stores each row's blocks one after another, so a kernel working
//! on one row at a time loads the activations, converts the scales and sums
//! its eight lanes horizontally once per row. Here block `b` of rows
//! `8g..8g+8` sits together:
//!
//! - the f16 header fields: for each field (`d`, then `m` for Q4_1), the
//!   eight rows' values side by side (16 bytes per field), so one `vcvtph2ps`
//!   yields all eight rows' scales;
//! - the quant bytes in 4-byte chunks: chunk `k` holds bytes `4k..4k+4` of
//!   row 0, then of row 1, … (32 bytes per chunk), so one 256-bit register
//!   multiplied by four activation bytes broadcast to every lane gives each
//!   row's partial sum in its own 32-bit lane.
//!
//! A packed block of Q4_0/Q4_1/Q5_0/Q8_0/Q6_K takes exactly eight file
//! blocks' bytes; Q4_K keeps its 6-bit scales and mins decoded to bytes (3%
//! larger).

use rayon::prelude::*;

use super::dequant::scales_mins_k4;
use super::page_buffer::PageBuffer;
use super::GgmlType;

/// Rows interleaved per group.
pub const GROUP_ROWS: usize = 8;

/// Where the fields of one file block sit (the block types whose fields
/// are f16 headers followed by quant bytes: Q4_0, Q4_1, Q5_0, Q8_0).
#[derive(Debug, Clone, Copy)]
struct BlockFields {
    /// Bytes of one block in the file.
    block_bytes: usize,
    /// f16 header fields at the start of the block (the quant bytes follow).
    header_fields: usize,
}

/// How eight rows' blocks are laid out together.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Headers side by side, then the quant bytes in 4-byte chunks.
    Simple(BlockFields),
    /// Q4_K: `d`s, `dmin`s, the 6-bit scales decoded to one byte each
    /// (`[sub-block][row]`), the mins as byte pairs (`[pair][row][2]`), then
    /// each 64-value chunk's 32 nibble bytes in 4-byte chunks per row.
    Q4K,
    /// Q6_K: `d`s, the sixteen sub-block scales (`[sub-block][row]`), then
    /// the low-nibble bytes `ql` and the high-bit bytes `qh` in 4-byte
    /// chunks per row, ordered as the kernel reads them (see [`Q6K_QS`]).
    Q6K,
}

/// Bytes of a Q4_K file block.
const Q4K_BLOCK: usize = 144;
/// Offsets inside a packed Q4_K block.
const Q4K_SCALES: usize = 32;
const Q4K_MINS: usize = 96;
const Q4K_QS: usize = 160;
/// Bytes of a packed Q4_K block.
pub const Q4K_PACKED_BLOCK: usize = Q4K_QS + GROUP_ROWS * 128;

/// Bytes of a Q6_K file block: `ql[128]`, `qh[64]`, `scales[16]`, `d`.
const Q6K_BLOCK: usize = 210;
/// Where a packed Q6_K block's scales start (after the eight `d`s).
pub const Q6K_SCALES: usize = 16;
/// Where a packed Q6_K block's quant bytes start: sixteen steps of 96
/// bytes, step `8h + k` holding chunk `k` (0..8) of `ql` bytes `64h..`,
/// of `ql` bytes `64h + 32..` and of `qh` bytes `32h..` (32 bytes each, four
/// per row), in the order the kernel reads them.
pub const Q6K_QS: usize = Q6K_SCALES + 16 * GROUP_ROWS;
/// Bytes of a packed Q6_K block (eight file blocks).
pub const Q6K_PACKED_BLOCK: usize = GROUP_ROWS * Q6K_BLOCK;

/// The packed offset (row 0's) of file chunk `c` (bytes `4c..4c + 4` of
/// `ql` then `qh`, `c` < 48) of a Q6_K block.
fn q6k_chunk_at(c: usize) -> usize {
    let (step, slot) = if c < 32 {
        let (h, k) = (c / 16, c % 16);
        (8 * h + k % 8, k / 8)
    } else {
        (c - 32, 2)
    };
    Q6K_QS + 96 * step + 32 * slot
}

impl Layout {
    fn of(ty: GgmlType) -> Option<Self> {
        let (header_fields, quant_bytes) = match ty {
            GgmlType::Q4_0 => (1, 16),
            GgmlType::Q4_1 => (2, 16),
            GgmlType::Q8_0 => (1, 32),
            // The 32 fifth bits (`qh`) form the first 4-byte chunk.
            GgmlType::Q5_0 => (1, 20),
            GgmlType::Q4_K => return Some(Self::Q4K),
            GgmlType::Q6_K => return Some(Self::Q6K),
            _ => return None,
        };
        Some(Self::Simple(BlockFields {
            block_bytes: 2 * header_fields + quant_bytes,
            header_fields,
        }))
    }

    /// Bytes of one block in the file.
    fn block_bytes(self) -> usize {
        match self {
            Self::Simple(f) => f.block_bytes,
            Self::Q4K => Q4K_BLOCK,
            Self::Q6K => Q6K_BLOCK,
        }
    }

    /// Bytes of one packed block (eight rows).
    fn packed_block_bytes(self) -> usize {
        match self {
            Self::Simple(f) => GROUP_ROWS * f.block_bytes,
            Self::Q4K => Q4K_PACKED_BLOCK,
            Self::Q6K => Q6K_PACKED_BLOCK,
        }
    }

    /// Writes row `r`'s file block `src` into the packed block `dst`.
    fn pack_block(self, r: usize, src: &[u8], dst: &mut [u8]) {
        match self {
            Self::Simple(f) => {
                let header = 2 * f.header_fields;
                for field in 0..f.header_fields {
                    let at = 16 * field + 2 * r;
                    dst[at..at + 2].copy_from_slice(&src[2 * field..2 * field + 2]);
                }
                let quants = &mut dst[GROUP_ROWS * header..];
                for (k, chunk) in src[header..].chunks_exact(4).enumerate() {
                    let at = 32 * k + 4 * r;
                    quants[at..at + 4].copy_from_slice(chunk);
                }
            }
            Self::Q4K => {
                dst[2 * r..2 * r + 2].copy_from_slice(&src[0..2]);
                dst[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&src[2..4]);
                let (scales, mins) = scales_mins_k4(&src[4..16]);
                for j in 0..8 {
                    dst[Q4K_SCALES + GROUP_ROWS * j + r] = scales[j];
                    dst[Q4K_MINS + 16 * (j / 2) + 2 * r + j % 2] = mins[j];
                }
                for (c, chunk) in src[16..].chunks_exact(32).enumerate() {
                    let quants = &mut dst[Q4K_QS + 256 * c..];
                    for (k, bytes) in chunk.chunks_exact(4).enumerate() {
                        let at = 32 * k + 4 * r;
                        quants[at..at + 4].copy_from_slice(bytes);
                    }
                }
            }
            Self::Q6K => {
                dst[2 * r..2 * r + 2].copy_from_slice(&src[208..210]);
                for j in 0..16 {
                    dst[Q6K_SCALES + GROUP_ROWS * j + r] = src[192 + j];
                }
                for (c, bytes) in src[..192].chunks_exact(4).enumerate() {
                    let at = q6k_chunk_at(c) + 4 * r;
                    dst[at..at + 4].copy_from_slice(bytes);
                }
            }
        }
    }

    /// Row `r`'s file block back from the packed block `src` into `dst`.
    fn unpack_block(self, r: usize, src: &[u8], dst: &mut [u8]) {
        match self {
            Self::Simple(f) => {
                let header = 2 * f.header_fields;
                for field in 0..f.header_fields {
                    let at = 16 * field + 2 * r;
                    dst[2 * field..2 * field + 2].copy_from_slice(&src[at..at + 2]);
                }
                let quants = &src[GROUP_ROWS * header..];
                for (k, chunk) in dst[header..].chunks_exact_mut(4).enumerate() {
                    let at = 32 * k + 4 * r;
                    chunk.copy_from_slice(&quants[at..at + 4]);
                }
            }
            Self::Q4K => {
                dst[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
                dst[2..4].copy_from_slice(&src[16 + 2 * r..16 + 2 * r + 2]);
                let sc = |j: usize| src[Q4K_SCALES + GROUP_ROWS * j + r];
                let m = |j: usize| src[Q4K_MINS + 16 * (j / 2) + 2 * r + j % 2];
                // The inverse of `scales_mins_k4` (a bijection on 6-bit values).
                for j in 0..4 {
                    dst[4 + j] = sc(j) | ((sc(j + 4) >> 4) << 6);
                    dst[8 + j] = m(j) | ((m(j + 4) >> 4) << 6);
                    dst[12 + j] = (sc(j + 4) & 0xF) | ((m(j + 4) & 0xF) << 4);
                }
                for (c, chunk) in dst[16..].chunks_exact_mut(32).enumerate() {
                    let quants = &src[Q4K_QS + 256 * c..];
                    for (k, bytes) in chunk.chunks_exact_mut(4).enumerate() {
                        let at = 32 * k + 4 * r;
                        bytes.copy_from_slice(&quants[at..at + 4]);
                    }
                }
            }
            Self::Q6K => {
                dst[208..210].copy_from_slice(&src[2 * r..2 * r + 2]);
                for j in 0..16 {
                    dst[192 + j] = src[Q6K_SCALES + GROUP_ROWS * j + r];
                }
                for (c, bytes) in dst[..192].chunks_exact_mut(4).enumerate() {
                    let at = q6k_chunk_at(c) + 4 * r;
                    bytes.copy_from_slice(&src[at..at + 4]);
                }
            }
        }
    }
}

/// How much of a matrix's stored bytes [`PackedRows::pack_releasing`]
/// packs before reporting them done.
pub const PACK_SLAB_BYTES: usize = 8 << 20;

/// The first `groups · 8` rows of a matrix in the interleaved layout (on
/// huge pages, see [`PageBuffer`]).
#[derive(Debug)]
pub struct PackedRows {
    ty: GgmlType,
    layout: Layout,
    groups: usize,
    blocks_per_row: usize,
    data: PageBuffer,
}

impl PackedRows {
    /// [`PackedRows::pack_releasing`] without the progress calls.
    #[cfg(test)]
    pub fn pack(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Self::pack_releasing(ty, data, rows, cols, &mut |_| {})
    }

    /// Packs the whole groups of 8 among `rows` rows of `data` (row-major
    /// file blocks, `cols` values per row), about [`PACK_SLAB_BYTES`] of
    /// `data` at a time, calling `done` with each range of `data` (byte offsets) once it is
    /// packed: a memory-mapped source can drop those pages right away, so a
    /// large matrix is never resident twice (file pages and packed copy).
    /// `None` for types without a packed layout, fewer than 8 rows, or
    /// `data` too short.
    pub fn pack_releasing(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
        done: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Option<Self> {
        let layout = Layout::of(ty)?;
        let blocks_per_row = cols / ty.block_size();
        let row_bytes = blocks_per_row * layout.block_bytes();
        let groups = rows / GROUP_ROWS;
        if groups == 0 || !cols.is_multiple_of(ty.block_size()) || data.len() < rows * row_bytes {
            return None;
        }
        let packed_group = blocks_per_row * layout.packed_block_bytes();
        let source_group = GROUP_ROWS * row_bytes;
        let slab_groups = (PACK_SLAB_BYTES / source_group).max(1);
        let mut packed = PageBuffer::zeroed(groups * packed_group)?;
        let slabs = packed
            .chunks_mut(slab_groups * packed_group)
            .zip(data[..groups * source_group].chunks(slab_groups * source_group));
        let mut start = 0;
        for (dst, src) in slabs {
            dst.par_chunks_mut(packed_group)
                .zip(src.par_chunks(source_group))
                .for_each(|(dst, src)| {
                    for (r, row) in src.chunks_exact(row_bytes).enumerate() {
                        for (block, out) in row
                            .chunks_exact(layout.block_bytes())
                            .zip(dst.chunks_exact_mut(layout.packed_block_bytes()))
                        {
                            layout.pack_block(r, block, out);
                        }
                    }
                });
            done(start..start + src.len());
            start += src.len();
        }
        Some(Self {
            ty,
            layout,
            groups,
            blocks_per_row,
            data: packed,
        })
    }

    /// The block type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Packed groups (rows `0..8·groups` are packed).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The packed bytes of group `g` (all its blocks).
    pub fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks_per_row * self.layout.packed_block_bytes();
        self.data.get(g * len..(g + 1) * len).unwrap_or(&[])
    }

    /// Row `r` (< 8·groups) back in the file's block layout, into `out`
    /// (one row's bytes); `None` when `r` is not packed or `out` is short.
    pub fn unpack_row(&self, r: usize, out: &mut [u8]) -> Option<()> {
        let layout = self.layout;
        if r >= self.groups * GROUP_ROWS || out.len() < self.blocks_per_row * layout.block_bytes() {
            return None;
        }
        let group = self.group(r / GROUP_ROWS);
        for (block, src) in out
            .chunks_exact_mut(layout.block_bytes())
            .zip(group.chunks_exact(layout.packed_block_bytes()))
        {
            layout.unpack_block(r % GROUP_ROWS, src, block);
        }
        Some(())
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_unpack_to_the_file_bytes() {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            let (rows, cols) = (19, 768);
            let row_bytes = ty.row_bytes(cols).unwrap();
            let data: Vec<u8> = (0..rows * row_bytes).map(|i| (i * 7 % 251) as u8).collect();
            let packed = PackedRows::pack(ty, &data, rows, cols).unwrap();
            assert_eq!(packed.groups(), 2);
            // Two groups of three blocks; Q4_K's packed blocks are larger.
            let expected = if ty == GgmlType::Q4_K {
                2 * 3 * 1184
            } else {
                16 * row_bytes
            };
            assert_eq!(packed.len_bytes(), expected);
            let mut row = vec![0u8; row_bytes];
            for r in 0..16 {
                packed.unpack_row(r, &mut row).unwrap();
                assert_eq!(
                    row,
                    &data[r * row_bytes..(r + 1) * row_bytes],
                    "{ty} row {r}"
                );
            }
            assert!(packed.unpack_row(16, &mut row).is_none());
        }
    }

    #[test]
    fn chunks_interleave_four_bytes_per_row() {
        // Q8_0, one block per row: row r's scale bytes are [r, r], its quant
        // bytes 16r + (0..32) — chunk k lists bytes 4k..4k+4 of rows 0..8.
        let mut data = Vec::new();
        for r in 0..8u8 {
            data.extend([r, r]);
            data.extend((0..32).map(|i| 16 * r + i));
        }
        let packed = PackedRows::pack(GgmlType::Q8_0, &data, 8, 32).unwrap();
        let g = packed.group(0);
        assert_eq!(&g[..4], &[0, 0, 1, 1]);
        assert_eq!(&g[16..24], &[0, 1, 2, 3, 16, 17, 18, 19]);
        assert_eq!(&g[48..52], &[4, 5, 6, 7]);
        assert!(PackedRows::pack(GgmlType::Q5_K, &data, 8, 256).is_none());
        assert!(PackedRows::pack(GgmlType::Q8_0, &data, 7, 32).is_none());
    }
}
