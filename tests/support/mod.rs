//! Test support: real registries, content builders, and helpers that run the binary
//! and read the packages it writes.

#![allow(dead_code)]

pub mod dockerd;
pub mod images;
pub mod measure;
pub mod package;
pub mod proxy;
pub mod referrers;
pub mod registry;
pub mod tarfix;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh working area: a definition directory, an output directory, a cache and an
/// empty Docker config, so no test sees the machine's own settings.
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

    /// Runs `pkgr create def -o out --no-progress` plus `extra`.
    pub fn create(&self, extra: &[&str]) -> Output {
        self.pkgr()
            .arg("create")
            .arg(self.path("def"))
            .arg("--output")
            .arg(self.path("out"))
            .arg("--no-progress")
            .args(extra)
            .output()
            .unwrap()
    }

    /// Runs `pkgr push --no-progress PACKAGE TARGET` plus `extra`.
    pub fn push(&self, package: &Path, target: &str, extra: &[&str]) -> Output {
        self.pkgr()
            .args(["push", "--no-progress"])
            .arg(package)
            .arg(target)
            .args(extra)
            .output()
            .unwrap()
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

pub fn sha256_file(path: &Path) -> String {
    images::sha256(&std::fs::read(path).unwrap())
}
