//! Runs a command under GNU time (`/usr/bin/time`, from the `time` package), for
//! tests that bound a command's peak memory and wall time.

use std::path::Path;
use std::process::{Command, Output};

/// What a command did and what it cost.
pub struct Measured {
    pub output: Output,
    /// Peak resident set size, in KiB as `time` counts it.
    pub rss_kib: u64,
    pub seconds: f64,
}

/// Runs `cmd`, with its environment, under `/usr/bin/time`; the report is written in
/// `dir`.
pub fn measured(cmd: &Command, dir: &Path) -> Measured {
    let report = dir.join("time-report.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M %e").arg("-o").arg(&report);
    timed.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let output = timed
        .output()
        .expect("/usr/bin/time runs the command (apt install time)");
    // GNU time puts "Command exited with non-zero status N" before the figures.
    let text = std::fs::read_to_string(&report).unwrap();
    let figures = text.lines().last().unwrap_or_default();
    let (rss, seconds) = figures
        .split_once(' ')
        .unwrap_or_else(|| panic!("time said {text:?}"));
    Measured {
        output,
        rss_kib: rss.trim().parse().unwrap(),
        seconds: seconds.trim().parse().unwrap(),
    }
}
