//! Ctrl-C where the work is stuck or long: a blocked read, a hung registry, a lock held
//! by another process, a long verification. Each must end within about a second with
//! exit 130, and leave nothing half-made behind. Each signal goes out only once pkgr
//! shows it has got there (a thread blocked in a pipe read, a waiter in /proc/locks, a
//! request the stand-in saw, CPU time spent hashing), never after a guessed sleep.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::tarfix::read_entries;
use crate::support::{package_path, spawn, stderr, wait_until, Workspace};

/// How long a signalled pkgr may take to exit. The promise is about a second; the
/// rest is slack for a loaded CI machine.
const EXIT_WITHIN: Duration = Duration::from_secs(3);

/// CPU time (0.2 s at the usual 100 ticks a second) that reading a small package's
/// head never comes near (it takes under a tick), so a verify that has used it is
/// hashing.
const HASHING_TICKS: u64 = 20;

/// Sends SIGINT to `child` and returns its output, failing the test if it is still
/// running `EXIT_WITHIN` later.
fn interrupt(mut child: Child) -> Output {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > EXIT_WITHIN {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("pkgr was still running {EXIT_WITHIN:?} after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Whether a thread of process `pid` is blocked reading a pipe (its stdin, here), as
/// the kernel names the wait in `/proc/<pid>/task/<tid>/wchan`.
fn blocked_reading_a_pipe(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).any(|task| {
        std::fs::read_to_string(task.path().join("wchan"))
            .is_ok_and(|wchan| wchan.contains("pipe_read"))
    })
}

/// Whether process `pid` is blocked waiting for a lock on the file whose inode is
/// `inode`: `/proc/locks` lists a waiter as `N: -> FLOCK ADVISORY WRITE <pid>
/// <major>:<minor>:<inode> 0 EOF`.
fn waiting_for_lock(pid: u32, inode: u64) -> bool {
    let (pid, inode) = (pid.to_string(), inode.to_string());
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"->")
                && fields.get(5) == Some(&pid.as_str())
                && fields.get(6).and_then(|file| file.rsplit(':').next()) == Some(inode.as_str())
        })
}

/// CPU time (user and system) process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the `(comm)` field: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn assert_interrupted(out: &Output) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.lines().any(|l| l == "error: interrupted"), "{err}");
}

#[test]
fn ctrl_c_ends_a_push_blocked_reading_the_password() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    ws.define(&Definition::new("signals").image(format!("{}/app:1", registry.addr)));
    let package = package_path(&ws.create(&[]));
    let mut cmd = ws.push_command(
        &package,
        &registry.addr,
        &["--username", "u", "--password-stdin"],
    );
    // Standard input is a pipe that the test holds open and never writes to, so pkgr
    // stays in read(2) until it is interrupted.
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("pkgr to block reading the password", || {
        blocked_reading_a_pipe(child.id())
    });
    assert_interrupted(&interrupt(child));
}

#[test]
fn ctrl_c_ends_a_create_waiting_for_another_process_s_download() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let layer_digest = image.layers[0].digest.clone();
    // The first create's layer download stalls, so it holds the layer's partial (its
    // lock) for as long as the test needs.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(layer_digest.clone(), Fault::StallAfter(0))],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("signals").image(format!("{}/app:1", proxy.addr)));
    let create = || spawn(ws.create_command(&[]));
    let holder = create();
    let layer_requests = || {
        proxy
            .seen()
            .iter()
            .filter(|s| s.path.ends_with(&layer_digest))
            .count()
    };
    wait_until("the first create's layer request", || layer_requests() == 1);
    let waiter = create();
    // The second create finds the layer's partial locked by the first and waits on it,
    // without asking the registry for the layer.
    wait_until("the second create's manifest request", || {
        proxy
            .seen()
            .iter()
            .filter(|s| s.path.contains("/manifests/"))
            .count()
            >= 2
    });
    let partial = ws.partial_blob(&layer_digest);
    wait_until("the second create to wait for the layer's lock", || {
        partial
            .metadata()
            .is_ok_and(|meta| waiting_for_lock(waiter.id(), meta.ino()))
    });
    assert_eq!(
        layer_requests(),
        1,
        "the second create fetched the layer too"
    );
    assert_interrupted(&interrupt(waiter));
    assert_interrupted(&interrupt(holder));
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    let cached = ws.cached_blob(&layer_digest);
    assert!(!cached.exists(), "an unfinished layer reached the cache");
}

#[test]
fn ctrl_c_during_push_publishes_nothing() {
    let source = TestRegistry::start();
    let ws = Workspace::new();
    Pusher::new(&source.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    ws.define(&Definition::new("signals").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));

    let target = TestRegistry::start();
    // Every blob upload hangs: the registry takes the request and never answers.
    let proxy = FaultProxy::start(
        &target.addr,
        (0..8)
            .map(|_| ("PUT /v2/".to_owned(), Fault::Hang))
            .collect(),
    );
    let child = spawn(ws.push_command(&package, &proxy.addr, &[]));
    wait_until("a blob upload", || {
        proxy.seen().iter().any(|s| s.method == "PUT")
    });
    assert_interrupted(&interrupt(child));
    let manifest = crate::support::http_client()
        .build()
        .unwrap()
        .get(format!("http://{}/v2/app/manifests/1", target.addr))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(manifest.status().as_u16(), 404, "the tag was published");
}

#[test]
fn ctrl_c_during_pull_leaves_no_package_and_no_staging() {
    let source = TestRegistry::start();
    let ws = Workspace::new();
    let image = Pusher::new(&source.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(11, 3 << 20))])],
    );
    let big = image.layers[0].digest.clone();
    ws.define(&Definition::new("signals").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));
    let target = TestRegistry::start();
    let address = format!("oci://{}/team/app:1", target.addr);
    let published = ws
        .pkgr()
        .args(["publish", "--no-progress"])
        .arg(&package)
        .arg(&address)
        .output()
        .unwrap();
    assert!(published.status.success(), "{}", stderr(&published));

    // The big layer stops after its first 2 MiB: staged, told to the writer, and read
    // by it, with the rest never coming.
    let proxy = FaultProxy::start(
        &target.addr,
        vec![(big.clone(), Fault::StallAfter(2 << 20))],
    );
    let into = ws.path("pulled");
    let through = format!("oci://{}/team/app:1", proxy.addr);
    let child = spawn(ws.pull_command(&through, &into));
    wait_until("the big layer's download", || {
        proxy.seen().iter().any(|s| s.path.contains(&big))
    });
    assert_interrupted(&interrupt(child));
    let left: Vec<_> = std::fs::read_dir(&into)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A zstd package whose last blob entry holds `size` zero bytes (repeated 1 MiB zstd
/// frames keep the file small), listed in no checksum, so verifying it takes a while
/// before failing.
fn package_with_a_long_blob(from: &Path, to: &Path, size: u64) {
    let mut head = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut head);
        for entry in read_entries(from) {
            let mut header = tar::Header::new_ustar();
            header.set_size(entry.data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                String::from_utf8(entry.name).unwrap(),
                &entry.data[..],
            )
            .unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header
            .set_path(format!("images/blobs/sha256/{}", "0".repeat(64)))
            .unwrap();
        header.set_cksum();
        tar.get_mut().extend_from_slice(header.as_bytes());
    }
    let chunk = vec![0u8; 1 << 20];
    let chunk_frame = zstd::encode_all(&chunk[..], 3).unwrap();
    let mut out = zstd::encode_all(&head[..], 3).unwrap();
    for _ in 0..size / chunk.len() as u64 {
        out.extend_from_slice(&chunk_frame);
    }
    out.extend(zstd::encode_all(&[0u8; 1024][..], 3).unwrap());
    std::fs::write(to, out).unwrap();
}

#[test]
fn ctrl_c_during_inspect_verify_stops_it() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    ws.define(&Definition::new("signals").image(format!("{}/app:1", registry.addr)));
    let package = package_path(&ws.create(&["--uncompressed"]));
    let long = ws.path("long.tar.zst");
    // 16 GiB of hashing is well over a second on any machine this runs on.
    package_with_a_long_blob(&package, &long, 16 << 30);

    let child = spawn(ws.inspect_command(&long, &["--verify"]));
    // The package's head is a few small entries; time spent past that is hashing.
    wait_until("pkgr to be hashing the long blob", || {
        cpu_ticks(child.id()) >= HASHING_TICKS
    });
    assert_interrupted(&interrupt(child));
}
