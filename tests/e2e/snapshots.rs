//! Exact output of `pkgr inspect` (text, `--json`, `--verify`) on the fixture package
//! in `testdata/package`, compared whole against snapshots in `snapshots/`. The package
//! is written by pkgr's own writer, so these need no registry. After an intended
//! change of output, rewrite them with `INSTA_UPDATE=always cargo test --test e2e
//! snapshots` and review the diff.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::Workspace;

/// Copies the fixture directory and writes it as a package with pkgr's writer.
fn fixture_package(into: &Path, tamper: bool) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/package");
    let dir = into.join("fixture");
    copy_tree(&source, &dir);
    let sealed = pkgr::store::seal::seal(&dir.join("images")).unwrap();
    let entries = pkgr::package::contents::entries(&dir, &sealed).unwrap();
    if tamper {
        // After the checksums were taken: the chart's layer changes by one byte.
        let layer = dir.join(
            "images/blobs/sha256/68a5ead19b6a234312afa82781ab82efc7f05816160c2cb6f099227db58ca7f8",
        );
        let mut bytes = std::fs::read(&layer).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&layer, bytes).unwrap();
    }
    let out = into.join("fixture.tar.zst");
    pkgr::package::writer::write_package(&entries, &out, true).unwrap();
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

/// Exit code, stdout and stderr together, with the temp dir and the time and rate of
/// closing lines masked.
fn render(out: &Output, temp: &Path) -> String {
    let text = format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.replace(&temp.display().to_string(), "[TEMP]");
    text.lines()
        .map(|line| match (line.find(" in "), line.find("/s)")) {
            (Some(from), Some(to)) if from < to => {
                format!("{} in [TIME]{}\n", &line[..from], &line[to + 3..])
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

#[test]
fn inspect_text() {
    let ws = Workspace::new();
    let package = fixture_package(ws.dir.path(), false);
    insta::assert_snapshot!(render(&ws.inspect(&package, &[]), ws.dir.path()));
}

#[test]
fn inspect_json() {
    let ws = Workspace::new();
    let package = fixture_package(ws.dir.path(), false);
    insta::assert_snapshot!(render(&ws.inspect(&package, &["--json"]), ws.dir.path()));
}

#[test]
fn inspect_verify() {
    let ws = Workspace::new();
    let package = fixture_package(ws.dir.path(), false);
    insta::assert_snapshot!(render(&ws.inspect(&package, &["--verify"]), ws.dir.path()));
}

#[test]
fn inspect_verify_tampered() {
    let ws = Workspace::new();
    let package = fixture_package(ws.dir.path(), true);
    insta::assert_snapshot!(render(&ws.inspect(&package, &["--verify"]), ws.dir.path()));
}

#[test]
fn inspect_verify_json_tampered() {
    let ws = Workspace::new();
    let package = fixture_package(ws.dir.path(), true);
    insta::assert_snapshot!(render(
        &ws.inspect(&package, &["--verify", "--json"]),
        ws.dir.path()
    ));
}
