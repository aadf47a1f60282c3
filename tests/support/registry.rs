//! A real registry (Debian's `docker-registry`, CNCF distribution) on an ephemeral
//! loopback port, with its own storage, stopped when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const REGISTRY_BIN: &str = "docker-registry";

pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:<port>`, as written in image references.
    pub addr: String,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// How a test registry guards itself.
#[derive(Default)]
pub struct Options {
    /// htpasswd (bcrypt) basic auth with this user and password.
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1.
    pub tls: bool,
}

impl TestRegistry {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if options.tls {
            self_signed(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
                dir.path().display()
            ));
        }
        if let Some((user, password)) = &options.htpasswd {
            let hash = bcrypt::hash(password, 5).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}/htpasswd\n",
                dir.path().display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = spawn_registry(&config_path);
        let scheme = if options.tls { "https" } else { "http" };
        let registry = Self {
            child,
            addr,
            _dir: dir,
        };
        super::images::wait_for_url(&format!("{scheme}://{}/v2/", registry.addr));
        registry
    }

    /// Tags `digest`, a manifest already pushed to `repo`, as each of `tags`, by
    /// writing the registry's storage layout (the filesystem driver reads it on every
    /// request): far faster than a PUT per tag, for tests that need thousands.
    pub fn tag_in_storage(&self, repo: &str, digest: &str, tags: impl IntoIterator<Item = String>) {
        let hex = digest.trim_start_matches("sha256:");
        let root = self
            ._dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags");
        for tag in tags {
            let at = root.join(tag);
            for link in [at.join("current"), at.join("index/sha256").join(hex)] {
                std::fs::create_dir_all(&link).unwrap();
                std::fs::write(link.join("link"), digest).unwrap();
            }
        }
    }

    /// Where the registry's filesystem driver keeps a blob's bytes, for tests that
    /// damage them in place (it serves them as they are).
    pub fn blob_in_storage(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The CA that signed a TLS registry's certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self._dir.path().join("ca.pem")
    }

    /// Repositories the registry holds, from its catalog (anonymous, plain HTTP).
    pub fn catalog(&self) -> Vec<String> {
        let body: serde_json::Value = crate::support::http_client()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{}/v2/_catalog", self.addr))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["repositories"]
            .as_array()
            .map(|a| a.iter().map(|r| r.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// A throwaway CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it.
pub fn self_signed(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install it with `apt-get install openssl`")
            });
        assert!(status.success(), "openssl {args:?} failed");
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=pkgr test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
}

fn spawn_registry(config: &Path) -> Child {
    Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start `{REGISTRY_BIN}` ({err}): install it with `apt-get install docker-registry`"
            )
        })
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
