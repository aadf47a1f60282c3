//! Hostile tar headers: extended headers that claim gigabytes are refused by their
//! declared size, with bounded memory, by `inspect`, `inspect --verify` and `push`;
//! names and non-tar files reach messages escaped.

use std::path::Path;

use crate::support::measure::measure;
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{header, write_raw_tar, RawEntry};
use crate::support::{stderr, Workspace};

/// What the hostile name is made of, so a message quoting it can be caught.
const NAME_PATTERN: &[u8] = b"longname";
const CLAIMED: u64 = 2 << 30;
/// A refused package must not cost more than this much memory (KiB, as `time` counts).
const MAX_RSS_KIB: u64 = 100 * 1024;

/// A zstd package whose second entry is an extended header of `kind` with a real
/// 2 GiB body: 1 MiB frames, repeated (a zstd stream may be many frames), keep the
/// file small while a reader that buffers the body would hold all 2 GiB.
fn hostile_package(path: &Path, kind: tar::EntryType) {
    let definition = b"kind: PkgrPackage\n";
    let mut head = header(
        b"pkgr.yaml",
        tar::EntryType::Regular,
        definition.len() as u64,
    );
    head.extend_from_slice(definition);
    head.resize(1024, 0);
    head.extend(header(b"././@LongLink", kind, CLAIMED));
    let chunk = NAME_PATTERN.repeat((1 << 20) / NAME_PATTERN.len());
    let chunk_frame = zstd::encode_all(&chunk[..], 19).unwrap();
    let mut tail = header(b"checksums.txt", tar::EntryType::Regular, 0);
    tail.resize(tail.len() + 1024, 0);

    let mut out = zstd::encode_all(&head[..], 3).unwrap();
    for _ in 0..CLAIMED / chunk.len() as u64 {
        out.extend_from_slice(&chunk_frame);
    }
    out.extend(zstd::encode_all(&tail[..], 3).unwrap());
    assert!(out.len() < 1 << 20, "the hostile package should be small");
    std::fs::write(path, out).unwrap();
}

#[test]
fn extended_headers_claiming_gigabytes_are_refused_in_bounded_memory() {
    let ws = Workspace::new();
    let target = TestRegistry::start();
    let name = String::from_utf8(NAME_PATTERN.repeat(4)).unwrap();
    for (label, kind) in [
        ("pax", tar::EntryType::XHeader),
        ("gnu-long-name", tar::EntryType::GNULongName),
    ] {
        let path = ws.path("out").join(format!("{label}.tar.zst"));
        hostile_package(&path, kind);
        for (command, cmd) in ws.package_readers(&path, &target.addr) {
            let run = measure(&cmd, ws.dir.path());
            let (out, rss) = (run.out, run.peak_rss_kib);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{label} `{command}`: {err}");
            assert!(
                err.contains(
                    "entry 2 of the package has a 2147483648-byte extended header, over the 65536-byte limit"
                ),
                "{label} `{command}`: {err}"
            );
            assert!(!err.contains(&name), "{label} `{command}` quoted the name");
            assert!(
                rss < MAX_RSS_KIB,
                "{label} `{command}`: peak RSS {rss} KiB, over {MAX_RSS_KIB} KiB"
            );
        }
    }
    assert!(target.catalog().is_empty());
}

fn assert_printable(label: &str, text: &[u8]) {
    let bad: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| (*b < 0x20 && *b != b'\n') || *b == 0x7f)
        .collect();
    assert!(
        bad.is_empty(),
        "{label}: raw control bytes {bad:?} in {:?}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn messages_show_no_raw_bytes_from_the_package() {
    let ws = Workspace::new();
    // Text with a terminal escape and binary where a tar header's fields would be.
    let mut not_tar = b"hello\x1b[31m world\n".repeat(20);
    not_tar.extend((0..=255u8).cycle().take(1024));
    let path = ws.path("out").join("not-a-tar.tar");
    std::fs::write(&path, &not_tar).unwrap();
    let out = ws.inspect(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_printable("not a tar", &out.stderr);
    assert!(
        stderr(&out).contains("the package is not a tar archive"),
        "{}",
        stderr(&out)
    );

    let path = ws.path("out").join("escape.tar");
    write_raw_tar(
        &path,
        &[
            RawEntry::file("pkgr.yaml", b"kind: PkgrPackage\n"),
            RawEntry {
                name: b"etc/\x1b[2J\xff\x07evil".to_vec(),
                kind: tar::EntryType::Regular,
                data: b"x".to_vec(),
                link: None,
            },
        ],
    );
    let out = ws.inspect(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_printable("escaped name", &out.stderr);
    assert!(
        stderr(&out).contains(r"`etc/\u{1b}[2J\xff\u{7}evil`"),
        "{}",
        stderr(&out)
    );
}
