//! Hostile seek tables. A seekable package's table is a hint for speed, never a second
//! truth: `inspect`, `inspect --verify` and `push` either refuse the package with one
//! sentence or read exactly what `zstd -dc PACKAGE | tar -t` shows, each within 5 s
//! and 100 MB, and nothing else ever reaches the registry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkgr::package::seekable::SeekTable;

use crate::support::images::{layer, sha256, Pusher};
use crate::support::measure::{measure, Measured};
use crate::support::registry::TestRegistry;
use crate::support::tarfix::read_entries;
use crate::support::{package_path, stderr, stdout, Workspace};

const MAX_RSS_KIB: u64 = 100 * 1024;
const MAX_SECONDS: f64 = 5.0;

const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;

/// Two packages as `pkgr create` writes them: `alpha` holds `alpha/app:1`, `bravo`
/// holds `bravo/app:1`.
struct Fixture {
    source: TestRegistry,
    ws: Workspace,
    alpha: PathBuf,
    bravo: PathBuf,
}

fn fixture() -> Fixture {
    let source = TestRegistry::start();
    let ws = Workspace::new();
    let pusher = Pusher::new(&source.addr);
    let mut created = Vec::new();
    for name in ["alpha", "bravo"] {
        let repo = format!("{name}/app");
        pusher.image(
            &repo,
            "1",
            false,
            "amd64",
            &[layer(&[(name, name.as_bytes())])],
        );
        ws.write_definition(&format!(
            "kind: PkgrPackage\nmetadata:\n  name: {name}\n  architecture: amd64\ncomponents:\n  - name: app\n    images:\n      - {}/{repo}:1\n",
            source.addr
        ));
        created.push(package_path(&ws.create(&[])));
    }
    let bravo = created.pop().unwrap();
    let alpha = created.pop().unwrap();
    Fixture {
        source,
        ws,
        alpha,
        bravo,
    }
}

/// A seekable package's data frames, each with its record in the table.
fn frames_of(path: &Path) -> Vec<(Vec<u8>, (u32, u32))> {
    let bytes = std::fs::read(path).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let footer = bytes.len() - 9;
    assert_eq!(u32_at(footer + 5), SEEKABLE_MAGIC, "not a seekable package");
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

/// Writes `frames`, then a table of `sizes`, to `path`.
fn write_seekable(path: &Path, frames: &[&[u8]], sizes: &[(u32, u32)]) {
    let mut file = std::fs::File::create(path).unwrap();
    for frame in frames {
        file.write_all(frame).unwrap();
    }
    file.write_all(&SeekTable::encode(sizes)).unwrap();
}

/// `alpha`'s frames under a table whose records `edit` rewrote.
fn retabled(fx: &Fixture, name: &str, edit: impl FnOnce(&mut Vec<(u32, u32)>)) -> PathBuf {
    let frames = frames_of(&fx.alpha);
    let mut sizes: Vec<(u32, u32)> = frames.iter().map(|(_, sizes)| *sizes).collect();
    edit(&mut sizes);
    let path = fx.ws.path("out").join(name);
    let bytes: Vec<&[u8]> = frames.iter().map(|(frame, _)| frame.as_slice()).collect();
    write_seekable(&path, &bytes, &sizes);
    path
}

/// What standard tools list: `zstd -dc PACKAGE | tar -t`, through a file, since tar
/// may stop reading at the end of the archive while zstd still writes.
fn standard_listing(path: &Path) -> Vec<String> {
    let plain = Command::new("zstd")
        .args(["-dcq", "--"])
        .arg(path)
        .output()
        .expect("zstd runs (apt install zstd)");
    assert!(plain.status.success(), "zstd -dc: {}", stderr(&plain));
    let tar_path = path.with_extension("plain.tar");
    std::fs::write(&tar_path, &plain.stdout).unwrap();
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(listed.status.success(), "tar -t: {}", stderr(&listed));
    std::fs::remove_file(&tar_path).unwrap();
    stdout(&listed).lines().map(str::to_owned).collect()
}

/// `pkgr inspect`, `pkgr inspect --verify` and `pkgr push` of `package`, each held to
/// the bounds.
fn every_reader(ws: &Workspace, package: &Path, target: &str) -> [Measured; 3] {
    let runs: Vec<Measured> = ws
        .package_readers(package, target)
        .into_iter()
        .map(|(command, cmd)| {
            let run = measure(&cmd, ws.dir.path());
            let seconds = run.elapsed.as_secs_f64();
            assert!(
                run.peak_rss_kib < MAX_RSS_KIB,
                "`{command}`: peak RSS {} KiB, over {MAX_RSS_KIB} KiB",
                run.peak_rss_kib
            );
            assert!(
                seconds < MAX_SECONDS,
                "`{command}`: {seconds} s, over {MAX_SECONDS} s"
            );
            run
        })
        .collect();
    runs.try_into()
        .unwrap_or_else(|_| panic!("three commands read a package"))
}

/// Every reader refuses `package` with `sentence` as its error, and pushes nothing.
fn assert_refused(ws: &Workspace, package: &Path, sentence: &str) {
    let target = TestRegistry::start();
    for run in every_reader(ws, package, &target.addr) {
        let err = stderr(&run.out);
        assert_eq!(run.out.status.code(), Some(1), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors, [format!("error: {sentence}")], "{err}");
    }
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
}

/// Every reader reads `package` as `zstd -dc | tar` does: `inspect` shows alpha's
/// image alone, `--verify` counts the entries tar lists, and push publishes alpha's
/// image alone, byte for byte.
fn assert_read_as_alpha(fx: &Fixture, package: &Path) {
    let listing = standard_listing(package);
    let target = TestRegistry::start();
    let [inspect, verify, push] = every_reader(&fx.ws, package, &target.addr);
    for run in [&inspect, &verify, &push] {
        assert!(run.out.status.success(), "{}", stderr(&run.out));
    }
    let shown = stdout(&inspect.out);
    assert!(
        shown.contains(&format!("{}/alpha/app:1", fx.source.addr)),
        "{shown}"
    );
    assert!(!shown.contains("bravo"), "{shown}");
    let verified = stdout(&verify.out);
    assert!(
        verified.contains(&format!("verified: {} files", listing.len())),
        "{verified}\ntar lists {listing:?}"
    );
    assert_eq!(target.catalog(), ["alpha/app"]);
    assert_eq!(
        Pusher::new(&target.addr).get_manifest("alpha/app", "1"),
        Pusher::new(&fx.source.addr).get_manifest("alpha/app", "1")
    );
}

/// `tar` compressed as one frame that declares its size (`bulk`) or not (a stream).
fn one_frame(tar: &[u8], declares_size: bool) -> Vec<u8> {
    if declares_size {
        return zstd::bulk::compress(tar, 3).unwrap();
    }
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

/// Package alpha whole in one frame the table says holds nothing, then package
/// bravo's frames: `zstd -dc | tar` shows alpha.
fn hidden(fx: &Fixture, name: &str, declares_size: bool) -> (PathBuf, usize) {
    let alpha = zstd::decode_all(&std::fs::read(&fx.alpha).unwrap()[..]).unwrap();
    let first = one_frame(&alpha, declares_size);
    let bravo = frames_of(&fx.bravo);
    let mut frames = vec![first.as_slice()];
    frames.extend(bravo.iter().map(|(frame, _)| frame.as_slice()));
    let mut sizes = vec![(first.len() as u32, 0)];
    sizes.extend(bravo.iter().map(|(_, sizes)| *sizes));
    let path = fx.ws.path("out").join(name);
    write_seekable(&path, &frames, &sizes);
    assert_eq!(standard_listing(&path), standard_listing(&fx.alpha));
    (path, alpha.len())
}

#[test]
fn a_table_hiding_a_package_is_refused_or_read_past_and_nothing_of_the_other_is_pushed() {
    let fx = fixture();
    let (path, alpha_len) = hidden(&fx, "hidden.tar.zst", true);
    assert_refused(
        &fx.ws,
        &path,
        &format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to {alpha_len} bytes, not the 0 the table says"),
    );

    // A frame that does not declare its size cannot be checked from its header: the
    // package is read as one stream, which is alpha.
    let (path, _) = hidden(&fx, "hidden-undeclared.tar.zst", false);
    assert_read_as_alpha(&fx, &path);
}

#[test]
fn tables_with_wrong_decompressed_sizes_are_refused() {
    let fx = fixture();
    let honest: Vec<u32> = frames_of(&fx.alpha).iter().map(|(_, s)| s.1).collect();
    assert!(honest.len() > 3 && honest[0] != honest[1]);

    let rotated = retabled(&fx, "rotated.tar.zst", |sizes| {
        let first = sizes[0].1;
        for i in 0..sizes.len() - 1 {
            sizes[i].1 = sizes[i + 1].1;
        }
        sizes.last_mut().unwrap().1 = first;
    });
    assert_refused(
        &fx.ws,
        &rotated,
        &format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to {} bytes, not the {} the table says", honest[0], honest[1]),
    );

    let ones = retabled(&fx, "ones.tar.zst", |sizes| {
        sizes.iter_mut().for_each(|record| record.1 = 1)
    });
    assert_refused(
        &fx.ws,
        &ones,
        &format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to {} bytes, not the 1 the table says", honest[0]),
    );

    // The compressed sizes moved by one byte between two frames, sums unchanged.
    let shifted = retabled(&fx, "shifted.tar.zst", |sizes| {
        sizes[0].0 += 1;
        sizes[1].0 -= 1;
    });
    let first = frames_of(&fx.alpha)[0].0.len();
    assert_refused(
        &fx.ws,
        &shifted,
        &format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) is {first} bytes long, not the {} the table says", first + 1),
    );
}

#[test]
fn a_table_of_four_million_records_is_refused_unread() {
    let fx = fixture();
    let data: usize = frames_of(&fx.alpha).iter().map(|(f, _)| f.len()).sum();
    let path = retabled(&fx, "records.tar.zst", |sizes| {
        sizes.resize(1 << 22, (0, 0))
    });
    assert!(std::fs::metadata(&path).unwrap().len() > 32 << 20);
    assert_refused(
        &fx.ws,
        &path,
        &format!("the package's seek table lists 4194304 frames, more than its {data} bytes of frames could hold"),
    );
}

#[test]
fn a_table_of_the_most_frames_read_is_checked_within_bounds() {
    // 2^20 empty frames, the most a table may list and be used: every one is found
    // and measured, and the package (an empty tar, as `zstd -dc` shows) is refused
    // for what it lacks.
    let ws = Workspace::new();
    let count = 1usize << 20;
    // Single segment, a one-byte size of 0, one empty raw block marked last.
    let empty = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00];
    assert_eq!(zstd::decode_all(&empty[..]).unwrap(), b"");
    let path = ws.path("out").join("empty-frames.tar.zst");
    let frames = vec![&empty[..]; count];
    write_seekable(&path, &frames, &vec![(empty.len() as u32, 0); count]);
    let plain = zstd::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
    assert!(plain.is_empty());
    let target = TestRegistry::start();
    for run in every_reader(&ws, &path, &target.addr) {
        let err = stderr(&run.out);
        assert_eq!(run.out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("the package has no pkgr.yaml or zarf.yaml")
                || err.contains("checksums.txt is missing"),
            "{err}"
        );
    }
    assert!(target.catalog().is_empty());
}

/// Blobs added to alpha, each over 4 MiB so that a reader that can seek would read it
/// from its offset, and together over the 8 MiB a frame may hold for random access.
/// (Few, as the debug build hashes slowly; `seekable`'s unit tests check that such a
/// frame makes the package a stream.)
const EXTRA_BLOBS: usize = 2;
const EXTRA_BLOB_BYTES: usize = (4 << 20) + 4096;

/// Alpha with [`EXTRA_BLOBS`] more blobs (listed in checksums.txt), written as one
/// frame under an honest table.
fn giant_frame(fx: &Fixture) -> PathBuf {
    let mut entries = read_entries(&fx.alpha);
    let blobs: Vec<(String, Vec<u8>)> = (0..EXTRA_BLOBS)
        .map(|i| {
            let mut data = format!("blob {i}\n").into_bytes();
            data.resize(EXTRA_BLOB_BYTES, 0);
            let name = format!("images/blobs/sha256/{}", &sha256(&data)[7..]);
            (name, data)
        })
        .collect();
    let sums = entries
        .iter_mut()
        .find(|e| e.name == b"checksums.txt")
        .unwrap();
    for (name, data) in &blobs {
        sums.data
            .extend(format!("{} {name}\n", &sha256(data)[7..]).into_bytes());
    }
    let path = fx.ws.path("out").join("giant.tar.zst");
    let encoder = zstd::stream::Encoder::new(std::fs::File::create(&path).unwrap(), 1).unwrap();
    let mut tar = tar::Builder::new(encoder);
    let named = entries
        .iter()
        .map(|e| (String::from_utf8(e.name.clone()).unwrap(), &e.data))
        .chain(blobs.iter().map(|(name, data)| (name.clone(), data)));
    let mut tar_len = 0u64;
    for (name, data) in named {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, &name, &data[..]).unwrap();
        tar_len += 512 + (data.len() as u64).div_ceil(512) * 512;
    }
    tar.finish().unwrap();
    tar_len += 1024;
    let mut file = tar.into_inner().unwrap().finish().unwrap();
    let compressed = file.metadata().unwrap().len();
    file.write_all(&SeekTable::encode(&[(compressed as u32, tar_len as u32)]))
        .unwrap();
    path
}

#[test]
fn one_giant_frame_of_many_blobs_is_read_in_one_pass() {
    let fx = fixture();
    let path = giant_frame(&fx);
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    assert_eq!(
        standard_listing(&path).len(),
        standard_listing(&fx.alpha).len() + EXTRA_BLOBS
    );
    assert_read_as_alpha(&fx, &path);
}
