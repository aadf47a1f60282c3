//! A `pkgr` run under GNU `time`, for the bounds a hostile input must stay within:
//! wall-clock seconds, CPU seconds and peak resident memory.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

pub struct Measured {
    pub out: Output,
    pub elapsed: Duration,
    /// User and system time together: the work pkgr itself did.
    pub cpu: Duration,
    pub peak_rss_kib: u64,
}

/// Runs `cmd` (its program, arguments and environment) under `/usr/bin/time`, which
/// writes its report into `dir`.
pub fn measure(cmd: &Command, dir: &Path) -> Measured {
    let report = dir.join("time-report.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%e %U %S %M", "-o"]).arg(&report);
    timed.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let out = timed
        .output()
        .expect("/usr/bin/time runs the command (apt-get install time)");
    // GNU time puts "Command exited with non-zero status N" before the figures.
    let report = std::fs::read_to_string(&report).unwrap();
    let figures: Vec<&str> = report
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let [seconds, user, system, rss] = figures[..] else {
        panic!("time said {report:?}");
    };
    Measured {
        out,
        elapsed: Duration::from_secs_f64(seconds.parse().unwrap()),
        cpu: Duration::from_secs_f64(user.parse::<f64>().unwrap() + system.parse::<f64>().unwrap()),
        peak_rss_kib: rss.parse().unwrap(),
    }
}
