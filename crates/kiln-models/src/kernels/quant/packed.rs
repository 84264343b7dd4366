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
//! A packed block therefore takes exactly eight file blocks' bytes.

use rayon::prelude::*;

use super::GgmlType;

/// Rows interleaved per group.
pub const GROUP_ROWS: usize = 8;

/// Where the fields of one file block sit.
#[derive(Debug, Clone, Copy)]
struct BlockFields {
    /// Bytes of one block in the file.
    block_bytes: usize,
    /// f16 header fields at the start of the block (the quant bytes follow).
    header_fields: usize,
}

impl BlockFields {
    fn of(ty: GgmlType) -> Option<Self> {
        let (header_fields, quant_bytes) = match ty {
            GgmlType::Q4_0 => (1, 16),
            GgmlType::Q4_1 => (2, 16),
            GgmlType::Q8_0 => (1, 32),
            _ => return None,
        };
        Some(Self {
            block_bytes: 2 * header_fields + quant_bytes,
            header_fields,
        })
    }

    /// Byte offset, inside a packed block, of row `r`'s copy of file-block
    /// byte `i`.
    fn packed_offset(&self, r: usize, i: usize) -> usize {
        let header = 2 * self.header_fields;
        if i < header {
            let (field, byte) = (i / 2, i % 2);
            16 * field + 2 * r + byte
        } else {
            let q = i - header;
            GROUP_ROWS * header + 32 * (q / 4) + 4 * r + q % 4
        }
    }
}

/// The first `groups · 8` rows of a matrix in the interleaved layout.
#[derive(Debug)]
pub struct PackedRows {
    ty: GgmlType,
    fields: BlockFields,
    groups: usize,
    blocks_per_row: usize,
    data: Vec<u8>,
}

impl PackedRows {
    /// Packs the whole groups of 8 among `rows` rows of `data` (row-major
    /// file blocks, `cols` values per row). `None` for types without a packed
    /// layout, fewer than 8 rows, or `data` too short.
    pub fn pack(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let fields = BlockFields::of(ty)?;
        let blocks_per_row = cols / ty.block_size();
        let row_bytes = blocks_per_row * fields.block_bytes;
        let groups = rows / GROUP_ROWS;
        if groups == 0 || !cols.is_multiple_of(ty.block_size()) || data.len() < rows * row_bytes {
            return None;
        }
        let group_bytes = GROUP_ROWS * row_bytes;
        let mut packed = vec![0u8; groups * group_bytes];
        packed
            .par_chunks_mut(group_bytes)
            .zip(data.par_chunks(group_bytes))
            .for_each(|(dst, src)| {
                for (r, row) in src.chunks_exact(row_bytes).enumerate() {
                    for (b, block) in row.chunks_exact(fields.block_bytes).enumerate() {
                        let out = &mut dst[b * GROUP_ROWS * fields.block_bytes..];
                        for (i, byte) in block.iter().enumerate() {
                            out[fields.packed_offset(r, i)] = *byte;
                        }
                    }
                }
            });
        Some(Self {
            ty,
            fields,
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

    /// Bytes of one packed block (eight file blocks).
    pub fn packed_block_bytes(&self) -> usize {
        GROUP_ROWS * self.fields.block_bytes
    }

    /// The packed bytes of group `g` (all its blocks).
    pub fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks_per_row * self.packed_block_bytes();
        self.data.get(g * len..(g + 1) * len).unwrap_or(&[])
    }

    /// Row `r` (< 8·groups) back in the file's block layout, into `out`
    /// (one row's bytes); `None` when `r` is not packed or `out` is short.
    pub fn unpack_row(&self, r: usize, out: &mut [u8]) -> Option<()> {
        let f = self.fields;
        if r >= self.groups * GROUP_ROWS || out.len() < self.blocks_per_row * f.block_bytes {
            return None;
        }
        let (group, within) = (self.group(r / GROUP_ROWS), r % GROUP_ROWS);
        let header = 2 * f.header_fields;
        for (block, src) in out
            .chunks_exact_mut(f.block_bytes)
            .zip(group.chunks_exact(self.packed_block_bytes()))
        {
            for field in 0..f.header_fields {
                let at = 16 * field + 2 * within;
                block[2 * field..2 * field + 2].copy_from_slice(&src[at..at + 2]);
            }
            let quants = &src[GROUP_ROWS * header..];
            for (k, chunk) in block[header..].chunks_exact_mut(4).enumerate() {
                let at = 32 * k + 4 * within;
                chunk.copy_from_slice(&quants[at..at + 4]);
            }
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
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let (rows, cols) = (19, 96);
            let row_bytes = ty.row_bytes(cols).unwrap();
            let data: Vec<u8> = (0..rows * row_bytes).map(|i| (i * 7 % 251) as u8).collect();
            let packed = PackedRows::pack(ty, &data, rows, cols).unwrap();
            assert_eq!(packed.groups(), 2);
            assert_eq!(packed.len_bytes(), 16 * row_bytes);
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
        assert!(PackedRows::pack(GgmlType::Q4_K, &data, 8, 256).is_none());
        assert!(PackedRows::pack(GgmlType::Q8_0, &data, 7, 32).is_none());
    }
}
