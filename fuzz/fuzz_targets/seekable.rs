//! Arbitrary bytes as a seekable zstd file: its seek table checked against its frames
//! (`SeekTable::read`), then read through `FrameReader` from the start and from every
//! frame's edges. A table that is used must give exactly what `zstd -dc` gives, from
//! any offset; reading may fail (a refusal), never differ.

#![no_main]

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pkgr::package::seekable::{FrameReader, SeekTable};
use pkgr_fuzz::{scratch, zstd_dc, Reference, MAX_REFERENCE_BYTES};

fuzz_target!(|data: &[u8]| {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| scratch("seekable.zst"));
    std::fs::write(path, data).expect("the fuzz input can be written");
    let mut file = File::open(path).expect("the input reopens");
    let Ok(Some(table)) = SeekTable::read(&mut file) else {
        return;
    };
    let table = Arc::new(table);
    let plain = match zstd_dc(data) {
        Reference::Read(plain) => plain,
        Reference::TooLarge => return,
        Reference::Refused(why) => {
            // The table only vouches for the frames' headers: a block that does not
            // decode must fail the read.
            let whole = read_from(path, &table, 0);
            assert!(whole.is_none(), "read a file `zstd -dc` refuses ({why})");
            return;
        }
    };
    let Some(whole) = read_from(path, &table, 0) else {
        panic!("`zstd -dc` reads the file; its checked table does not");
    };
    assert_eq!(
        whole, plain,
        "the table's reading differs from `zstd -dc`'s"
    );
    let len = plain.len() as u64;
    let mut offsets: Vec<u64> = vec![len / 2, len.saturating_sub(1), len];
    // A few offsets the input picks, so frame edges and empty frames are reached.
    offsets.extend(data.iter().rev().take(8).map(|b| u64::from(*b) * len / 255));
    for offset in offsets {
        let rest = read_from(path, &table, offset).expect("a checked table reads from any offset");
        assert_eq!(
            rest,
            plain[offset as usize..],
            "differs from offset {offset}"
        );
    }
    // forward() then read, as a tar walk passes over an entry's bytes.
    let mut reader = FrameReader::new(File::open(path).unwrap(), table.clone(), 0);
    let skip = u64::from(data[0]) * len / 255;
    reader.forward(skip).expect("forward within the stream");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the rest reads");
    assert_eq!(
        rest,
        plain[skip as usize..],
        "differs after forward({skip})"
    );
});

fn read_from(path: &std::path::Path, table: &Arc<SeekTable>, offset: u64) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let mut out = Vec::new();
    FrameReader::new(file, table.clone(), offset)
        .take(MAX_REFERENCE_BYTES + 1)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}
