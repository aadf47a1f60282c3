//! Progress reporting behind one small trait: indicatif bars on a terminal, plain
//! periodic lines elsewhere. Core logic only calls the trait.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::Digest;

pub trait Reporter: Send + Sync {
    /// A step worth a line of its own ("resolving 4 images").
    fn step(&self, message: &str);
    fn warn(&self, message: &str);
    /// Transfers are about to start (`action` is "downloading" or "pushing"): what must
    /// move, and what was already in place.
    fn plan(&self, action: &str, blobs: usize, bytes: u64, cached_blobs: usize, cached_bytes: u64);
    fn blob_start(&self, digest: &Digest, size: u64);
    fn blob_progress(&self, digest: &Digest, bytes: u64);
    fn blob_done(&self, digest: &Digest);
    fn finish(&self);
}

/// Picks bars on a terminal unless `plain` is asked for.
pub fn reporter(plain: bool) -> Box<dyn Reporter> {
    use std::io::IsTerminal;
    if !plain && std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::new())
    }
}

fn short(digest: &Digest) -> &str {
    &digest.hex()[..12]
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    active: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self {
            multi,
            overall,
            active: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn step(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    fn warn(&self, message: &str) {
        let _ = self.multi.println(format!("warning: {message}"));
    }

    fn plan(&self, action: &str, blobs: usize, bytes: u64, cached_blobs: usize, cached_bytes: u64) {
        self.overall.set_prefix(action.to_owned());
        self.overall.set_length(bytes);
        self.overall.set_message(format!(
            "({blobs} blobs; {cached_blobs} cached, {})",
            human_bytes(cached_bytes)
        ));
    }

    fn blob_start(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {bytes}/{total_bytes}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(short(digest).to_owned());
        self.active.lock().unwrap().insert(digest.clone(), bar);
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        self.overall.inc(bytes);
        if let Some(bar) = self.active.lock().unwrap().get(digest) {
            bar.inc(bytes);
        }
    }

    fn blob_done(&self, digest: &Digest) {
        if let Some(bar) = self.active.lock().unwrap().remove(digest) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

/// Plain lines for logs and CI: one every few seconds at most while downloading.
struct Lines {
    started: Instant,
    total: AtomicU64,
    done: AtomicU64,
    last_line: Mutex<Instant>,
}

const LINE_INTERVAL: Duration = Duration::from_secs(2);

impl Lines {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn line(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }
}

impl Reporter for Lines {
    fn step(&self, message: &str) {
        self.line(message);
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    fn plan(&self, action: &str, blobs: usize, bytes: u64, cached_blobs: usize, cached_bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
        let mut line = format!("{action} {blobs} blobs ({})", human_bytes(bytes));
        if cached_blobs > 0 {
            line.push_str(&format!(
                "; {cached_blobs} blobs ({}) already cached",
                human_bytes(cached_bytes)
            ));
        }
        self.line(&line);
    }

    fn blob_start(&self, _digest: &Digest, _size: u64) {}

    fn blob_progress(&self, _digest: &Digest, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let mut last = self.last_line.lock().unwrap();
        if last.elapsed() >= LINE_INTERVAL {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            self.line(&format!(
                "{} of {} ({}/s)",
                human_bytes(done),
                human_bytes(self.total.load(Ordering::Relaxed)),
                human_bytes((done as f64 / secs) as u64)
            ));
        }
    }

    fn blob_done(&self, _digest: &Digest) {}

    fn finish(&self) {}
}
