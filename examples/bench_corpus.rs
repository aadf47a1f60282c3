//! Seeds a registry with the benchmark corpus: six images of about 150 MiB each that
//! share a 100 MiB base layer, about 1 GiB of unique, incompressible blobs in all.
//! With `--next-month`, it pushes each image again as `:2` with its top layer (the
//! 40 MiB data layer) changed and the rest as it was, for bench/differential.sh.
//!
//! Usage: `cargo run --release --example bench_corpus -- 127.0.0.1:5556 [--next-month]`

#[path = "../tests/support/images.rs"]
mod images;

use images::{layer, noise, wait_for_registry, Pusher};

pub const IMAGES: u64 = 6;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .expect("usage: bench_corpus HOST:PORT [--next-month]");
    let next_month = std::env::args().nth(2).as_deref() == Some("--next-month");
    wait_for_registry(&addr);
    let pusher = Pusher::new(&addr);
    let base = layer(&[("base.bin", &noise(1, 100 << 20))]);
    let (tag, data_seed) = if next_month { ("2", 30) } else { ("1", 20) };
    for i in 0..IMAGES {
        let layers = [
            base.clone(),
            layer(&[("app.bin", &noise(10 + i, 100 << 20))]),
            layer(&[("data.bin", &noise(data_seed + i, 40 << 20))]),
        ];
        pusher.image(&format!("bench/img{i}"), tag, i % 2 == 0, "amd64", &layers);
        eprintln!("pushed bench/img{i}:{tag}");
    }
}
