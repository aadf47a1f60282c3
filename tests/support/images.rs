//! Builds test content itself (container images, indexes, Helm charts, cosign
//! signatures, OCI artifacts) and pushes it to a registry over plain HTTP.
//! Shared by the end-to-end tests and the demo's seeding example.

#![allow(dead_code)]

use std::io::Write;

use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for b in hash.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A descriptor of pushed content, and its bytes for byte-exact comparisons.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Pushed {
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        })
    }
}

/// Deterministic pseudo-random bytes (xorshift), so layers do not compress away.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A gzip-compressed tar holding the given files, with fixed metadata.
pub fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, *data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    // Stored blocks: the tests' layers are noise or a few bytes, and zlib-rs's fastest
    // level (static Huffman codes) would grow noise by about 6%, which the disk tests'
    // size bounds would notice.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// The simplesigning payload cosign signs for the image `digest` in `repo`.
pub fn simple_signing(repo: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap()
}

/// Pushes blobs and manifests to one registry over HTTP.
pub struct Pusher {
    base: String,
    client: reqwest::blocking::Client,
}

impl Pusher {
    pub fn new(addr: &str) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: http_client()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    /// A pusher that sends Basic credentials with every request.
    pub fn with_credentials(addr: &str, user: &str, password: &str) -> Self {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        Self {
            base: format!("http://{addr}"),
            client: http_client()
                .no_proxy()
                .default_headers(headers)
                .timeout(std::time::Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    pub fn blob(&self, repo: &str, media_type: &str, bytes: Vec<u8>) -> Pushed {
        let digest = sha256(&bytes);
        let start = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .unwrap();
        assert_eq!(start.status().as_u16(), 202, "start upload to {repo}");
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = self
            .client
            .put(format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "upload blob to {repo}");
        Pushed {
            media_type: media_type.into(),
            digest,
            bytes,
        }
    }

    /// Pushes manifest bytes as they are, under `reference` (a tag or the digest).
    pub fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Pushed {
        let digest = sha256(&bytes);
        let reference = if reference.is_empty() {
            digest.as_str()
        } else {
            reference
        };
        let put = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", media_type)
            .body(bytes.clone())
            .send()
            .unwrap();
        let status = put.status().as_u16();
        assert_eq!(
            status,
            201,
            "push manifest {repo}:{reference}: {}",
            put.text().unwrap_or_default()
        );
        Pushed {
            media_type: media_type.into(),
            digest,
            bytes,
        }
    }

    /// The manifest bytes the registry serves for `repo` at a tag or digest.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header(
                "accept",
                [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", "),
            )
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{repo}:{reference}: {}",
            response.status()
        );
        response.bytes().unwrap().to_vec()
    }

    /// The bytes the registry serves for blob `digest` of `repo`.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}/v2/{repo}/blobs/{digest}", self.base))
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{repo}@{digest}: {}",
            response.status()
        );
        response.bytes().unwrap().to_vec()
    }

    /// A container image: a config naming the layers' diff IDs, and the layers.
    pub fn image(
        &self,
        repo: &str,
        tag: &str,
        docker: bool,
        arch: &str,
        layers: &[Vec<u8>],
    ) -> Image {
        let (manifest_type, config_type, layer_type) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
        };
        let pushed_layers: Vec<Pushed> = layers
            .iter()
            .map(|l| self.blob(repo, layer_type, l.clone()))
            .collect();
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| {
                let mut raw = Vec::new();
                std::io::copy(&mut flate2::read::GzDecoder::new(&l[..]), &mut raw).unwrap();
                sha256(&raw)
            })
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"], "Labels": {"repo": repo, "tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config = self.blob(repo, config_type, config);
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": pushed_layers.iter().map(Pushed::descriptor).collect::<Vec<_>>(),
        }))
        .unwrap();
        let manifest = self.manifest(repo, tag, manifest_type, manifest);
        Image {
            manifest,
            config,
            layers: pushed_layers,
        }
    }

    /// An index over `children`, each with its platform (`os/arch[/variant]`).
    pub fn index(
        &self,
        repo: &str,
        tag: &str,
        docker: bool,
        children: &[(&str, &Image)],
    ) -> Pushed {
        let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(platform, image)| {
                let mut parts = platform.split('/');
                let mut desc = image.manifest.descriptor();
                let mut p = serde_json::json!({
                    "os": parts.next().unwrap(),
                    "architecture": parts.next().unwrap(),
                });
                if let Some(variant) = parts.next() {
                    p["variant"] = variant.into();
                }
                desc["platform"] = p;
                desc
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        }))
        .unwrap();
        self.manifest(repo, tag, media_type, bytes)
    }

    /// A buildx-style index: each platform image followed by its attestation manifest
    /// (platform `unknown/unknown`, annotated with the image it describes), the way
    /// `docker buildx build --provenance` publishes most images today.
    pub fn buildx_index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(&str, &Image)],
    ) -> (Pushed, Vec<Image>) {
        let mut entries = Vec::new();
        let mut attestations = Vec::new();
        for (platform, image) in children {
            let (os, arch) = platform.split_once('/').unwrap();
            let mut desc = image.manifest.descriptor();
            desc["platform"] = serde_json::json!({"os": os, "architecture": arch});
            entries.push(desc);
            let attestation = self.attestation(repo, &image.manifest);
            let mut desc = attestation.manifest.descriptor();
            desc["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
            desc["annotations"] = serde_json::json!({
                "vnd.docker.reference.digest": image.manifest.digest,
                "vnd.docker.reference.type": "attestation-manifest",
            });
            entries.push(desc);
            attestations.push(attestation);
        }
        (self.raw_index(repo, tag, entries), attestations)
    }

    /// An attestation manifest for `subject`: an in-toto statement layer.
    pub fn attestation(&self, repo: &str, subject: &Pushed) -> Image {
        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": repo, "digest": {"sha256": subject.digest.trim_start_matches("sha256:")}}],
            "predicate": {"builder": {"id": "pkgr-tests"}},
        }))
        .unwrap();
        let layer = self.blob(repo, "application/vnd.in-toto+json", statement);
        let config = self.blob(
            repo,
            OCI_CONFIG,
            br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        );
        let mut layer_desc = layer.descriptor();
        layer_desc["annotations"] =
            serde_json::json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_desc],
        }))
        .unwrap();
        let manifest = self.manifest(repo, "", OCI_MANIFEST, manifest);
        Image {
            manifest,
            config,
            layers: vec![layer],
        }
    }

    /// An OCI index over descriptors given as they are (nested indexes, annotations).
    pub fn raw_index(&self, repo: &str, tag: &str, entries: Vec<serde_json::Value>) -> Pushed {
        let bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        }))
        .unwrap();
        self.manifest(repo, tag, OCI_INDEX, bytes)
    }

    /// A Helm chart as `helm push` stores it: helm config, one chart layer, no diff IDs.
    pub fn helm_chart(&self, repo: &str, version: &str) -> Image {
        let chart = layer(&[(
            "demo/Chart.yaml",
            format!("apiVersion: v2\nname: demo\nversion: {version}\n").as_bytes(),
        )]);
        let layer = self.blob(repo, HELM_CHART, chart);
        let config = self.blob(
            repo,
            HELM_CONFIG,
            format!("{{\"name\":\"demo\",\"version\":\"{version}\",\"apiVersion\":\"v2\"}}")
                .into_bytes(),
        );
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "annotations": {"org.opencontainers.image.title": "demo"},
        }))
        .unwrap();
        let manifest = self.manifest(repo, version, OCI_MANIFEST, manifest);
        Image {
            manifest,
            config,
            layers: vec![layer],
        }
    }

    /// A cosign signature for `signed`, under cosign's `sha256-<hex>.sig` tag: an
    /// uncompressed JSON layer that must never be recompressed.
    pub fn cosign_signature(&self, repo: &str, signed: &Pushed) -> Image {
        self.cosign_signature_with(repo, signed, "MEUCIQDfake+signature+for+tests==")
    }

    /// As [`cosign_signature`](Self::cosign_signature), carrying `signature` (base64 of
    /// an ASN.1 ECDSA signature over [`simple_signing`]'s payload) as cosign does.
    pub fn cosign_signature_with(&self, repo: &str, signed: &Pushed, signature: &str) -> Image {
        let layer = self.blob(repo, COSIGN_LAYER, simple_signing(repo, &signed.digest));
        let mut layer_desc = layer.descriptor();
        layer_desc["annotations"] = serde_json::json!({
            "dev.cosignproject.cosign/signature": signature,
        });
        self.cosign_manifest(repo, signed, "sig", layer, layer_desc)
    }

    /// A cosign attestation for `subject`, under cosign's `sha256-<hex>.att` tag: one
    /// DSSE envelope layer whose payload is an in-toto statement about the subject.
    pub fn cosign_attestation(&self, repo: &str, subject: &Pushed) -> Image {
        use base64::Engine;
        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [{"name": repo, "digest": {"sha256": subject.digest.trim_start_matches("sha256:")}}],
            "predicate": {"buildDefinition": {"buildType": "pkgr-tests"}},
        }))
        .unwrap();
        let envelope = serde_json::to_vec(&serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(statement),
            "signatures": [{"keyid": "", "sig": "MEQCIFfake+attestation+signature=="}],
        }))
        .unwrap();
        let layer = self.blob(repo, "application/vnd.dsse.envelope.v1+json", envelope);
        let mut layer_desc = layer.descriptor();
        layer_desc["annotations"] =
            serde_json::json!({"predicateType": "https://slsa.dev/provenance/v1"});
        self.cosign_manifest(repo, subject, "att", layer, layer_desc)
    }

    /// A cosign SBOM for `subject`, under cosign's `sha256-<hex>.sbom` tag.
    pub fn cosign_sbom(&self, repo: &str, subject: &Pushed) -> Image {
        let sbom = format!(
            r#"{{"spdxVersion":"SPDX-2.3","name":"{repo}@{}"}}"#,
            subject.digest
        );
        let layer = self.blob(repo, "text/spdx+json", sbom.into_bytes());
        let layer_desc = layer.descriptor();
        self.cosign_manifest(repo, subject, "sbom", layer, layer_desc)
    }

    /// A cosign-style manifest of one layer under `sha256-<hex>.<suffix>`.
    fn cosign_manifest(
        &self,
        repo: &str,
        subject: &Pushed,
        suffix: &str,
        layer: Pushed,
        layer_desc: serde_json::Value,
    ) -> Image {
        let config = self.blob(
            repo,
            OCI_CONFIG,
            br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec(),
        );
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_desc],
        }))
        .unwrap();
        let tag = format!("{}.{suffix}", subject.digest.replace(':', "-"));
        let manifest = self.manifest(repo, &tag, OCI_MANIFEST, manifest);
        Image {
            manifest,
            config,
            layers: vec![layer],
        }
    }

    /// An OCI 1.1 referrer of `subject`: `artifactType`, the empty config and a
    /// `subject` field, pushed by digest only (as `oras attach` does).
    pub fn referrer(
        &self,
        repo: &str,
        subject: &Pushed,
        artifact_type: &str,
        content: &[u8],
    ) -> Image {
        let config = self.blob(repo, EMPTY_CONFIG, b"{}".to_vec());
        let layer = self.blob(repo, artifact_type, content.to_vec());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "subject": subject.descriptor(),
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        }))
        .unwrap();
        let manifest = self.manifest(repo, "", OCI_MANIFEST, manifest);
        Image {
            manifest,
            config,
            layers: vec![layer],
        }
    }

    /// The referrers-tag fallback of OCI 1.1: an index of `referrers`, each with its
    /// artifact type, under the tag `sha256-<hex>` of `subject`.
    pub fn referrers_tag(
        &self,
        repo: &str,
        subject: &Pushed,
        referrers: &[(&Image, &str)],
    ) -> Pushed {
        let entries = referrers
            .iter()
            .map(|(image, artifact_type)| {
                let mut desc = image.manifest.descriptor();
                desc["artifactType"] = (*artifact_type).into();
                desc
            })
            .collect();
        self.raw_index(repo, &subject.digest.replace(':', "-"), entries)
    }

    /// An OCI 1.1 artifact: the empty config and an `artifactType`.
    pub fn empty_config_artifact(&self, repo: &str, tag: &str, content: &[u8]) -> Image {
        let config = self.blob(repo, EMPTY_CONFIG, b"{}".to_vec());
        let layer = self.blob(repo, "application/spdx+json", content.to_vec());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        }))
        .unwrap();
        let manifest = self.manifest(repo, tag, OCI_MANIFEST, manifest);
        Image {
            manifest,
            config,
            layers: vec![layer],
        }
    }
}

/// A pushed image: manifest, config and layers.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Pushed,
    pub config: Pushed,
    pub layers: Vec<Pushed>,
}

impl Image {
    /// Every blob the image needs, manifest included.
    pub fn all(&self) -> Vec<&Pushed> {
        let mut all = vec![&self.manifest, &self.config];
        all.extend(self.layers.iter());
        all
    }
}

/// Waits up to 15 s for a plain-HTTP registry to answer `GET /v2/`.
pub fn wait_for_registry(addr: &str) {
    wait_for_url(&format!("http://{addr}/v2/"));
}

/// Waits up to 15 s for any HTTP answer at `url` (401 counts: the server is up).
/// Certificates are not checked: this only asks whether the server is listening.
pub fn wait_for_url(url: &str) {
    let client = http_client()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .is_ok_and(|r| !r.status().is_server_error())
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing answered {url} within 15 s");
}

/// A blocking HTTP client's builder once rustls has its provider. Here rather than
/// `support::http_client`, since the benchmark's example includes this file alone.
fn http_client() -> reqwest::blocking::ClientBuilder {
    pkgr::registry::install_tls_provider();
    reqwest::blocking::Client::builder()
}
