//! An untied GGUF token-embedding table is read in place from the file
//! mapping (`Embedding::Mapped`): lookups return the same rows as reading the
//! blocks directly, and leave none of the table's pages resident in this
//! process (a long prompt over a hot page cache used to leave up to 64 KiB
//! per looked-up row mapped: TinyLlama F16 peaked at up to 2,321 MiB
//! instead of 2,133).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use half::f16;
use kiln_models::gguf::write::{GgufWriter, TensorData};
use kiln_models::gguf::{GgufFile, MetadataValue, FAULT_AROUND_BYTES};
use kiln_models::kernels::quant::GgmlType;
use kiln_models::Embedding;

const ROWS: usize = 1024;
const COLS: usize = 2048; // one 4 KiB page per F16 row

/// The value stored at (`row`, `col`): exact in f16.
fn value(row: usize, col: usize) -> f32 {
    (row % 97) as f32 - (col % 13) as f32 * 0.25
}

fn table_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = Vec::with_capacity(ROWS * COLS * 2);
    for r in 0..ROWS {
        for c in 0..COLS {
            bytes.extend_from_slice(&f16::from_f32(value(r, c)).to_le_bytes());
        }
    }
    let mut writer = GgufWriter::new();
    writer.set(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    writer.add_tensor(TensorData {
        name: "token_embd.weight".into(),
        ty: GgmlType::F16,
        shape: vec![ROWS, COLS],
        bytes,
    });
    let path = dir.join("table.gguf");
    writer.write(&path).unwrap();
    path
}

/// Whether the page holding `addr` is mapped into this process
/// (`/proc/self/pagemap`'s present bit, readable without privileges).
#[cfg(target_os = "linux")]
fn resident(addr: usize) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
    pagemap
        .seek(SeekFrom::Start((addr / 4096 * 8) as u64))
        .unwrap();
    let mut entry = [0u8; 8];
    pagemap.read_exact(&mut entry).unwrap();
    u64::from_le_bytes(entry) >> 63 == 1
}

#[test]
fn mapped_lookups_match_the_blocks_and_release_their_pages() {
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&table_file(dir.path())).unwrap();
    let table = file.matrix("token_embd.weight").unwrap();
    let pages = file
        .mapped_pages()
        .expect("a file opened from disk is mapped");
    let ids = [3u32, 500, 1023];

    let mapped = Embedding::Mapped {
        table: table.clone(),
        pages: pages.clone(),
    };
    let rows = mapped.lookup(&ids).unwrap().to_vec2::<f32>().unwrap();
    for (row, &id) in rows.iter().zip(&ids) {
        let expected: Vec<f32> = (0..COLS).map(|c| value(id as usize, c)).collect();
        assert_eq!(row, &expected, "row {id}");
    }
    assert_eq!(
        Embedding::Quant(table.clone())
            .lookup(&ids)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        rows
    );
    assert!(
        mapped.lookup(&[ROWS as u32]).is_err(),
        "an id past the table"
    );

    #[cfg(target_os = "linux")]
    {
        let base = table.data().as_ptr() as usize - table.byte_range().start;
        let row_page = |id: usize| base + table.row_byte_range(id).unwrap().start;
        // Reading in place (the unreleasing variant) leaves the row mapped…
        Embedding::Quant(table.clone()).lookup(&[500]).unwrap();
        assert!(resident(row_page(500)), "a read row is resident");
        // …the mapped variant releases it and its fault-around neighbours.
        mapped.lookup(&[500]).unwrap();
        assert!(!resident(row_page(500)), "row 500 released");
        for id in [484, 490, 495, 505, 511] {
            let near = row_page(id);
            let window = row_page(500) / FAULT_AROUND_BYTES;
            if near / FAULT_AROUND_BYTES == window {
                assert!(!resident(near), "row {id} in the same 64 KiB window");
            }
        }
    }
}
