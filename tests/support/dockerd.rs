//! A real Docker daemon (Debian's `docker.io`) on a private socket with a private
//! data root, started for one test and stopped when dropped: `--storage-driver=vfs`
//! needs no kernel overlay support, and `--iptables=false --bridge=none` leave the
//! host's network alone. It runs as root, as the tests do. Images reach it only by
//! `docker load` of tars the test builds itself: nothing is pulled.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKERD_BIN: &str = "dockerd";
const INSTALL_HINT: &str =
    "install it with `apt-get install docker.io` (scripts/install-deps.sh does)";

pub struct TestDockerd {
    child: Child,
    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    dir: tempfile::TempDir,
}

impl TestDockerd {
    pub fn start() -> Self {
        // Short: a unix socket's path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("pkgr-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD_BIN)
            .args(["--storage-driver=vfs", "--iptables=false", "--bridge=none"])
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{DOCKERD_BIN}` ({e}): {INSTALL_HINT}"));
        let dockerd = Self { child, host, dir };
        dockerd.wait_ready();
        dockerd
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ok = self
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run `docker` ({e}): {INSTALL_HINT}"))
                .success();
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "dockerd did not answer on {} within 60 s (it must run as root); its log:\n{}",
            self.host,
            std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
        );
    }

    /// The `docker` client, speaking to this daemon only.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("client"));
        cmd
    }

    /// `docker load` of a tar file; panics with the client's output on failure.
    pub fn load(&self, tar: &Path) {
        let out = self
            .docker()
            .arg("load")
            .arg("-i")
            .arg(tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The image ID the daemon reports for `image`.
    pub fn image_id(&self, image: &str) -> String {
        let out = self
            .docker()
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestDockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd; SIGKILL only if it hangs.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `docker load`-able tar in the legacy format (what `docker save` of Docker < 25
/// writes), holding one image tagged `tag` with these uncompressed layers.
/// Returns the tar's bytes and the config's bytes.
pub fn legacy_image_tar(tag: &str, layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<String> = layers.iter().map(|l| super::images::sha256(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "pkgr test"})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let config_hex = super::images::sha256(&config)
        .trim_start_matches("sha256:")
        .to_owned();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data).unwrap();
    };
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("layer{i}/layer.tar");
        add(&path, layer);
        layer_paths.push(path);
    }
    add(&format!("{config_hex}.json"), &config);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": layer_paths,
    }]))
    .unwrap();
    add("manifest.json", &manifest);
    let mut bytes = tar.into_inner().unwrap();
    bytes.flush().unwrap();
    (bytes, config)
}

/// An uncompressed layer tar holding the given files, with fixed metadata.
pub fn plain_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, *data).unwrap();
    }
    tar.into_inner().unwrap()
}
