//! Seeds the demo registry with next month's demo/web: `1.1`, the same base layer as
//! `1.0` (examples/seed.rs) under a new top layer, for the differential round trip of
//! `make demo`.
//!
//! Usage: `cargo run --release --example seed_next -- 127.0.0.1:5555`

#[path = "../tests/support/images.rs"]
mod images;

use images::{layer, noise, wait_for_registry, Pusher};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5555".to_owned());
    wait_for_registry(&addr);
    let pusher = Pusher::new(&addr);
    // Byte for byte the base layer examples/seed.rs gives demo/web:1.0.
    let base = layer(&[("usr/lib/base.bin", &noise(1, 8 << 20))]);
    pusher.image(
        "demo/web",
        "1.1",
        true,
        "amd64",
        &[base, layer(&[("srv/web", &noise(5, 2 << 20))])],
    );
    eprintln!("pushed demo/web:1.1");
}
