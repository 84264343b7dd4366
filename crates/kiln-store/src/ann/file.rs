//! `ann.bin`: the HNSW graph of an index on disk. Written whole to a
//! temporary file, synced and renamed over the old one, so a reader sees
//! either the previous file or the new one; a checksum over everything
//! catches damage, and a damaged file is simply rebuilt from the record.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::hnsw::{GraphParts, Hnsw, HnswParams};
use super::AnnIndex;

const MAGIC: &[u8; 8] = b"KILNHNSW";
const VERSION: u32 = 1;

/// A fast 64-bit checksum over 8-byte words (multiply-xorshift).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(x)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    }
    h ^ (h >> 32)
}

/// Serialises the index.
pub fn encode(index: &AnnIndex) -> Vec<u8> {
    let g = &index.graph;
    let GraphParts {
        vectors,
        levels,
        links,
        entry,
    } = g.parts();
    let p = g.params();
    let mut out = Vec::with_capacity(vectors.len() * 4 + levels.len() * 200);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(index.store_id.len() as u32).to_le_bytes());
    out.extend_from_slice(index.store_id.as_bytes());
    for v in [g.dim() as u32, p.m as u32, p.ef_construction as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&p.seed.to_le_bytes());
    out.extend_from_slice(&(levels.len() as u64).to_le_bytes());
    match entry {
        None => out.extend_from_slice(&[0, 0, 0, 0, 0, 0]),
        Some((e, top)) => {
            out.push(1);
            out.extend_from_slice(&e.to_le_bytes());
            out.push(top);
        }
    }
    out.extend_from_slice(&levels);
    for id in &index.ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend(index.dead.iter().map(|&d| d as u8));
    for x in &vectors {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for per_level in &links {
        for list in per_level {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for id in list {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads what [`encode`] wrote; `None` for anything damaged or foreign.
pub fn decode(bytes: &[u8]) -> Option<AnnIndex> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let id_len = r.u32()? as usize;
    let store_id = String::from_utf8(r.take(id_len)?.to_vec()).ok()?;
    let dim = r.u32()? as usize;
    let m = r.u32()? as usize;
    let ef_construction = r.u32()? as usize;
    let seed = r.u64()?;
    let n = usize::try_from(r.u64()?).ok()?;
    // Every node needs at least 22 bytes below; refuse absurd counts before
    // allocating for them.
    if n.checked_mul(22)? > body.len() {
        return None;
    }
    let has_entry = r.take(1)?[0] == 1;
    let e = r.u32()?;
    let top = r.take(1)?[0];
    let entry = has_entry.then_some((e, top));
    let levels = r.take(n)?.to_vec();
    let ids = (0..n)
        .map(|_| r.u64().map(|v| v as i64))
        .collect::<Option<Vec<_>>>()?;
    let dead = r.take(n)?.iter().map(|&b| b != 0).collect();
    let vectors = r
        .take(n.checked_mul(dim)?.checked_mul(4)?)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut links = Vec::with_capacity(n);
    for &lev in &levels {
        let mut per_level = Vec::with_capacity(lev as usize + 1);
        for _ in 0..=lev {
            let count = r.u32()? as usize;
            per_level.push((0..count).map(|_| r.u32()).collect::<Option<Vec<_>>>()?);
        }
        links.push(per_level);
    }
    if !r.0.is_empty() {
        return None;
    }
    let params = HnswParams {
        m,
        ef_construction,
        seed,
    };
    let parts = GraphParts {
        vectors,
        levels,
        links,
        entry,
    };
    let graph = Hnsw::from_parts(dim, params, parts)?;
    Some(AnnIndex::from_parts(graph, ids, dead, store_id))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("bin.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself (best effort: not every OS syncs dirs).
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
