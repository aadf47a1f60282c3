//! Writes the fuzzers' package seeds into a corpus directory: `testdata/package` as
//! pkgr's writer writes it (a plain tar, and a seekable `.tar.zst`), and the hostile
//! seekable packages of issue 18 built from it (a table hiding package A in front of
//! package B, decompressed sizes rotated, every size 1, compressed sizes shifted), and
//! the seekable package split into Zarf parts in the `split` fuzz target's format.
//!
//! Usage: `cargo run --example fuzz_seeds -- fuzz/corpus` (what `scripts/fuzz.sh` does).

use std::path::{Path, PathBuf};

use pkgr::package::seekable::SeekTable;

/// What the `split` target reads between parts (see fuzz/fuzz_targets/split.rs).
const PART_SEPARATOR: &[u8] = b"\n--part--\n";

fn main() {
    let corpus = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: fuzz_seeds CORPUS_DIR"),
    );
    let work = tempfile::tempdir().expect("a temp dir");
    let alpha = write_package(work.path(), "alpha", true);
    let bravo = write_package(work.path(), "bravo", true);
    let plain = write_package(work.path(), "plain", false);

    let packages = corpus.join("package_reader");
    let seekable = corpus.join("seekable");
    for dir in [&packages, &seekable, &corpus.join("split")] {
        std::fs::create_dir_all(dir).expect("the corpus dir");
    }
    let alpha_bytes = std::fs::read(&alpha).expect("the package");
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("fixture.tar", std::fs::read(plain).expect("the package")),
        ("fixture.tar.zst", alpha_bytes.clone()),
    ];
    seeds.extend(hostile(
        &frames_of(&alpha_bytes),
        &frames_of(&std::fs::read(bravo).unwrap()),
    ));
    for (name, bytes) in &seeds {
        std::fs::write(packages.join(name), bytes).expect("a seed");
        if name.ends_with(".zst") {
            std::fs::write(seekable.join(name), bytes).expect("a seed");
        }
    }
    std::fs::write(
        corpus.join("split").join("fixture.split"),
        split(&alpha_bytes),
    )
    .unwrap();
}

/// A copy of testdata/package under `name`, sealed and written as a package file.
fn write_package(work: &Path, name: &str, compressed: bool) -> PathBuf {
    let dir = work.join(name);
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/package"),
        &dir,
    );
    let definition = dir.join("pkgr.yaml");
    let text = std::fs::read_to_string(&definition).unwrap();
    std::fs::write(
        &definition,
        text.replace("name: fixture", &format!("name: {name}")),
    )
    .unwrap();
    let sealed = pkgr::store::seal::seal(&dir.join("images")).expect("the fixture seals");
    let entries = pkgr::package::contents::entries(&dir, &sealed).expect("the entries");
    let out = dir.join(if compressed { "p.tar.zst" } else { "p.tar" });
    pkgr::package::writer::write_package(&entries, &out, compressed).expect("the package");
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A seekable package's data frames, each with its (compressed, decompressed) record.
fn frames_of(bytes: &[u8]) -> Vec<(Vec<u8>, (u32, u32))> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let footer = bytes.len() - 9;
    let count = u32_at(footer) as usize;
    let records = footer - count * 8;
    let mut at = 0;
    (0..count)
        .map(|i| {
            let sizes = (u32_at(records + i * 8), u32_at(records + i * 8 + 4));
            let frame = bytes[at..at + sizes.0 as usize].to_vec();
            at += sizes.0 as usize;
            (frame, sizes)
        })
        .collect()
}

fn seekable(frames: &[&[u8]], sizes: &[(u32, u32)]) -> Vec<u8> {
    let mut out: Vec<u8> = frames.concat();
    out.extend(SeekTable::encode(sizes));
    out
}

/// `frames` under a table whose records `edit` rewrote.
fn retabled(frames: &[(Vec<u8>, (u32, u32))], edit: impl FnOnce(&mut Vec<(u32, u32)>)) -> Vec<u8> {
    let mut sizes: Vec<(u32, u32)> = frames.iter().map(|(_, sizes)| *sizes).collect();
    edit(&mut sizes);
    let bytes: Vec<&[u8]> = frames.iter().map(|(frame, _)| frame.as_slice()).collect();
    seekable(&bytes, &sizes)
}

/// The cases of issue 18's table, as tests/e2e/seek_table.rs builds them.
fn hostile(
    alpha: &[(Vec<u8>, (u32, u32))],
    bravo: &[(Vec<u8>, (u32, u32))],
) -> Vec<(&'static str, Vec<u8>)> {
    let tar: Vec<u8> = alpha
        .iter()
        .flat_map(|(frame, _)| zstd::decode_all(frame.as_slice()).unwrap())
        .collect();
    let mut out = Vec::new();
    for (name, declares_size) in [("hidden.tar.zst", true), ("hidden-streamed.tar.zst", false)] {
        // The whole of alpha in one frame said to hold nothing, then bravo's frames.
        let first = if declares_size {
            zstd::bulk::compress(&tar, 3).unwrap()
        } else {
            zstd::stream::encode_all(tar.as_slice(), 3).unwrap()
        };
        let mut frames = vec![first.as_slice()];
        frames.extend(bravo.iter().map(|(frame, _)| frame.as_slice()));
        let mut sizes = vec![(first.len() as u32, 0)];
        sizes.extend(bravo.iter().map(|(_, sizes)| *sizes));
        out.push((name, seekable(&frames, &sizes)));
    }
    let bravo_frames: Vec<u8> = bravo.iter().flat_map(|(frame, _)| frame.clone()).collect();
    out.push((
        "skippable-polyglot.tar.zst",
        polyglot(&[], &tar, &bravo_frames),
    ));
    let legacy_empty_frame = [0x27, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0xc0, 0x00, 0x00];
    out.push((
        "legacy-polyglot.tar.zst",
        polyglot(&legacy_empty_frame, &tar, &bravo_frames),
    ));
    out.push((
        "rotated.tar.zst",
        retabled(alpha, |sizes| {
            let first = sizes[0].1;
            for i in 0..sizes.len() - 1 {
                sizes[i].1 = sizes[i + 1].1;
            }
            sizes.last_mut().unwrap().1 = first;
        }),
    ));
    out.push((
        "ones.tar.zst",
        retabled(alpha, |sizes| {
            sizes.iter_mut().for_each(|record| record.1 = 1)
        }),
    ));
    out.push((
        "shifted.tar.zst",
        retabled(alpha, |sizes| {
            sizes[0].0 += 1;
            sizes[1].0 -= 1;
        }),
    ));
    out
}

/// `tar` behind a PAX header whose first bytes are `prefix` (frames that decode to
/// nothing), then a zstd skippable frame's magic and length, covering the rest of it,
/// then `frames`: a tar reader sees `tar`, `zstd -dc` the frames.
fn polyglot(prefix: &[u8], tar: &[u8], frames: &[u8]) -> Vec<u8> {
    let record = b"18 path=pkgr.yaml\n";
    let mut pax = ::tar::Header::new_ustar();
    pax.set_entry_type(::tar::EntryType::XHeader);
    pax.set_size(record.len() as u64);
    let mut out = pax.as_bytes().to_vec();
    out.extend(record);
    out.resize(1024, 0);
    out.extend(tar);
    let at = prefix.len();
    let skipped = (out.len() - at - 8) as u32;
    out[..at].copy_from_slice(prefix);
    out[at..at + 4].copy_from_slice(&0x184D_2A50u32.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&skipped.to_le_bytes());
    let mut header = ::tar::Header::from_byte_slice(&out[..512]).clone();
    header.set_cksum();
    out[..512].copy_from_slice(header.as_bytes());
    out.extend(frames);
    out
}

/// `package` as a Zarf split package in the `split` target's form: part000's JSON, then
/// each part, separated by [`PART_SEPARATOR`].
fn split(package: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = package.chunks(package.len().div_ceil(3)).collect();
    let digest = pkgr::digest::Digest::of(package);
    let mut out = format!(
        "{{\"sha256Sum\":\"{}\",\"bytes\":{},\"count\":{}}}",
        digest.hex(),
        package.len(),
        parts.len()
    )
    .into_bytes();
    for part in parts {
        out.extend(PART_SEPARATOR);
        out.extend(part);
    }
    out
}
