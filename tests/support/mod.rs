//! Test support: real registries, content builders, and helpers that run the binary
//! and read the packages it writes.
//!
//! A test reads as the user's steps through its [`Workspace`], the one test context:
//! `define` a [`Definition`], `create`, `inspect`, `push` and `cache` (each also as a
//! `*_command` to spawn or give more environment), all with the workspace's own cache,
//! Docker config and home. [`spawn`], [`run_within`] and [`wait_until`] are how a test
//! acts while pkgr runs.

pub mod definition;
pub mod dockerd;
pub mod http;
pub mod images;
pub mod keys;
pub mod measure;
pub mod package;
pub mod proxy;
pub mod referrers;
pub mod registry;
pub mod save_stand_in;
pub mod tarfix;
pub mod tmpfs;

use std::borrow::BorrowMut;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use definition::Definition;

/// The test context: a fresh working area (a definition directory, an output
/// directory, a cache and an empty Docker config, so no test sees the machine's own
/// settings) and the pkgr commands a user runs in it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["def", "out", "cache", "docker", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Writes `definition` as the workspace's `def/pkgr.yaml`.
    pub fn define(&self, definition: &Definition) {
        self.write_definition(&definition.to_yaml());
    }

    /// Writes `text` as `def/pkgr.yaml` as it stands, for definitions no user would
    /// write (malformed, or shaped to hit a limit).
    pub fn write_definition(&self, text: &str) {
        std::fs::write(self.path("def").join("pkgr.yaml"), text).unwrap();
    }

    /// `pkgr` with the workspace's environment. `DOCKER_HOST` names a socket that
    /// does not exist, so the machine's own Docker daemon never serves a test: a test
    /// of the daemon fallback sets its own daemon's.
    pub fn pkgr(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgr"));
        cmd.env("PKGR_CACHE_DIR", self.path("cache"))
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.path("no-docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("HOME", self.path("home"))
            .env_remove("XDG_CACHE_HOME")
            .env("NO_PROXY", "*")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY");
        cmd
    }

    /// Runs `pkgr create def --output out --no-progress` plus `extra`.
    pub fn create(&self, extra: &[&str]) -> Output {
        self.create_command(extra).output().unwrap()
    }

    /// `pkgr create def --output out --no-progress` plus `extra`, to run as the test
    /// needs (spawned, or with more environment).
    pub fn create_command(&self, extra: &[&str]) -> Command {
        self.create_command_into(&self.path("out"), extra)
    }

    /// As [`create_command`](Self::create_command), writing into `output`.
    pub fn create_command_into(&self, output: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.pkgr();
        cmd.arg("create")
            .arg(self.path("def"))
            .arg("--output")
            .arg(output)
            .arg("--no-progress")
            .args(extra);
        cmd
    }

    /// Runs `pkgr inspect PACKAGE` plus `extra`.
    pub fn inspect(&self, package: &Path, extra: &[&str]) -> Output {
        self.inspect_command(package, extra).output().unwrap()
    }

    /// `pkgr inspect PACKAGE` plus `extra`, to run as the test needs.
    pub fn inspect_command(&self, package: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.pkgr();
        cmd.arg("inspect").arg(package).args(extra);
        cmd
    }

    /// Runs `pkgr push --no-progress PACKAGE TARGET` plus `extra`.
    pub fn push(&self, package: &Path, target: &str, extra: &[&str]) -> Output {
        self.push_command(package, target, extra).output().unwrap()
    }

    /// `pkgr push --no-progress PACKAGE TARGET` plus `extra`, to run as the test needs.
    pub fn push_command(&self, package: &Path, target: &str, extra: &[&str]) -> Command {
        let mut cmd = self.pkgr();
        cmd.args(["push", "--no-progress"])
            .arg(package)
            .arg(target)
            .args(extra);
        cmd
    }

    /// `pkgr pull ADDRESS -o INTO --no-progress`, to run as the test needs.
    pub fn pull_command(&self, address: &str, into: &Path) -> Command {
        let mut cmd = self.pkgr();
        cmd.args(["pull", "--no-progress", address, "-o"]).arg(into);
        cmd
    }

    /// Runs `pkgr cache` with `args`.
    pub fn cache(&self, args: &[&str]) -> Output {
        self.cache_command(args).output().unwrap()
    }

    /// `pkgr cache` with `args`, to run as the test needs.
    pub fn cache_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.pkgr();
        cmd.arg("cache").args(args);
        cmd
    }

    /// Where the workspace's cache keeps the blob `digest` once it is whole.
    pub fn cached_blob(&self, digest: &str) -> PathBuf {
        self.path("cache")
            .join("blobs-v1/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Where the workspace's cache keeps the blob `digest` while it is downloaded.
    pub fn partial_blob(&self, digest: &str) -> PathBuf {
        self.path("cache")
            .join("ingest-v1")
            .join(format!("{}.partial", digest.trim_start_matches("sha256:")))
    }

    /// Every command that reads a whole package, named as a user types it: `inspect`,
    /// `inspect --verify`, and `push` into `target`.
    pub fn package_readers(&self, package: &Path, target: &str) -> Vec<(&'static str, Command)> {
        vec![
            ("inspect", self.inspect_command(package, &[])),
            (
                "inspect --verify",
                self.inspect_command(package, &["--verify"]),
            ),
            ("push", self.push_command(package, target, &[])),
        ]
    }

    /// Files left in the output directory (packages, and anything half-written).
    pub fn output_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns the package path: the last line of stdout.
pub fn package_path(out: &Output) -> PathBuf {
    assert!(
        out.status.success(),
        "pkgr failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    let text = stdout(out);
    let last = text.lines().last().expect("a package path on stdout");
    let path = PathBuf::from(last);
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

/// Starts `cmd` in the background with no input and its output captured, for a test
/// that acts while it runs.
pub fn spawn(mut cmd: impl BorrowMut<Command>) -> Child {
    cmd.borrow_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cmd` with no input to its end, failing the test (instead of hanging it) if it
/// is still running after `limit`. Output goes through files, not pipes, so a long
/// listing cannot fill a pipe that nobody reads until the end.
pub fn run_within(mut cmd: impl BorrowMut<Command>, limit: Duration) -> Output {
    let cmd = cmd.borrow_mut();
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |file: &mut std::fs::File| {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// Waits until `done` holds, failing the test if it has not after a minute (a long
/// time, for a loaded machine: a passing test waits only as long as it must).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn sha256_file(path: &Path) -> String {
    images::sha256(&std::fs::read(path).unwrap())
}

/// A blocking HTTP client's builder, once rustls has its crypto provider (pkgr builds
/// reqwest without one of its own and installs `ring`, as the tests' clients must).
pub fn http_client() -> reqwest::blocking::ClientBuilder {
    pkgr::registry::install_tls_provider();
    reqwest::blocking::Client::builder()
}
