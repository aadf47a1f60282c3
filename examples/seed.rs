//! Seeds a registry with demo content that it builds itself: a docker image, a
//! multi-platform OCI index, a Helm chart, a cosign signature and attestation of the
//! docker image (found by `withSignatures: true`) and an SBOM artifact.
//!
//! Usage: `cargo run --example seed -- 127.0.0.1:5555`

#[path = "../tests/support/images.rs"]
mod images;

use images::{layer, noise, wait_for_registry, Pusher};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5555".to_owned());
    wait_for_registry(&addr);
    let pusher = Pusher::new(&addr);

    let base = layer(&[("usr/lib/base.bin", &noise(1, 8 << 20))]);
    let web = pusher.image(
        "demo/web",
        "1.0",
        true,
        "amd64",
        &[base.clone(), layer(&[("srv/web", &noise(2, 2 << 20))])],
    );
    let api_amd = pusher.image(
        "demo/api",
        "",
        false,
        "amd64",
        &[base.clone(), layer(&[("srv/api", &noise(3, 1 << 20))])],
    );
    let api_arm = pusher.image(
        "demo/api",
        "",
        false,
        "arm64",
        &[layer(&[("srv/api", &noise(4, 1 << 20))])],
    );
    pusher.index(
        "demo/api",
        "2.0",
        false,
        &[("linux/amd64", &api_amd), ("linux/arm64", &api_arm)],
    );
    pusher.helm_chart("demo/charts/web", "0.1.0");
    pusher.cosign_signature("demo/web", &web.manifest);
    pusher.cosign_attestation("demo/web", &web.manifest);
    pusher.empty_config_artifact(
        "demo/web-sbom",
        "1.0",
        br#"{"spdxVersion":"SPDX-2.3","name":"web"}"#,
    );
    println!("seeded {addr} with demo/web:1.0, demo/api:2.0 (amd64+arm64), demo/charts/web:0.1.0, its signature and attestation, and an SBOM");
}
