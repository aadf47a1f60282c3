//! The first stage of argument handling: clap's view of the command line, each
//! argument parsed and range-checked, nothing opened or read yet (that is `settings`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pkgr",
    version,
    about = "Package OCI content for air-gapped networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a package from DIR/pkgr.yaml
    Create(CreateArgs),
    /// Show what a package holds
    Inspect(InspectArgs),
    /// Load every image of a package into a registry
    Push(PushArgs),
    /// Look after the shared blob cache
    Cache(CacheArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The package (.tar.zst or .tar; pkgr or Zarf)
    pub package: PathBuf,

    /// Where to push: REGISTRY[/PREFIX], e.g. 127.0.0.1:5000 or registry.local/mirror
    #[arg(value_parser = crate::reference::Target::parse)]
    pub target: crate::reference::Target,

    /// Blob uploads in flight across all images
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Plain progress lines instead of progress bars
    #[arg(long)]
    pub no_progress: bool,

    /// Registry user name (with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The package (.tar.zst or .tar; pkgr or Zarf)
    pub package: PathBuf,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also re-hash every file against checksums.txt and every blob against its name
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Directory holding pkgr.yaml (or zarf.yaml)
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Directory to write the package into
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,

    /// Write a plain .tar instead of .tar.zst
    #[arg(long)]
    pub uncompressed: bool,

    /// Platform architecture to pick from indexes (overrides metadata.architecture)
    #[arg(short, long)]
    pub architecture: Option<String>,

    /// Keep whole image indexes and every platform in them
    #[arg(long)]
    pub allow_index: bool,

    /// Also bring each image's cosign signatures, attestations and SBOMs and its OCI
    /// referrers (as `withSignatures: true` in pkgr.yaml does)
    #[arg(long)]
    pub with_signatures: bool,

    /// With --with-signatures, the most signatures, attestations, SBOMs and referrers
    /// (counted in manifests) one image or artifact may bring
    #[arg(long, value_name = "N", default_value_t = crate::pull::DEFAULT_MAX_REFERRERS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_referrers: usize,

    /// Blob cache directory [default: $PKGR_CACHE_DIR, $XDG_CACHE_HOME/pkgr, ~/.cache/pkgr]
    #[arg(long, conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Bypass the blob cache
    #[arg(long)]
    pub no_cache: bool,

    /// Blob downloads in flight across all images
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Fail when a registry cannot serve an image, instead of looking for it in the
    /// local Docker daemon (DOCKER_HOST, else the default socket)
    #[arg(long)]
    pub no_daemon_fallback: bool,

    /// Refuse a blob whose descriptor declares more than SIZE (e.g. 100GiB, 500MB)
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = crate::space::parse_size)]
    pub max_blob_size: u64,

    /// Leave out every config and layer that BASE (a pkgr or Zarf package, or its
    /// .part000) holds; push then expects them on the target
    #[arg(long, value_name = "BASE")]
    pub differential: Option<PathBuf>,

    /// With --differential, accept a base made for another architecture
    #[arg(long, requires = "differential")]
    pub allow_other_architecture: bool,

    /// Plain progress lines instead of progress bars
    #[arg(long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct TransportArgs {
    /// Use plain HTTP for every registry (loopback registries may always use it)
    #[arg(long)]
    pub plain_http: bool,

    /// Do not verify registries' TLS certificates
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Also trust the CA certificates in this PEM file
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Give up on a registry (and retry) when connecting or an answer takes longer, or
    /// a body brings less than 16 KiB in that long
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = crate::registry::DEFAULT_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Blob cache directory [default: $PKGR_CACHE_DIR, $XDG_CACHE_HOME/pkgr, ~/.cache/pkgr]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory
    Path,
    /// Show how many blobs and partial downloads the cache holds, and their size
    Ls {
        /// Print one JSON object, with every blob's digest, size and last use
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob and remove each one whose bytes do not match its name
    Verify {
        /// Plain progress lines instead of progress bars
        #[arg(long)]
        no_progress: bool,
    },
    /// Remove stale partial downloads and locks; with --all or --older-than, blobs too
    Prune {
        /// Empty the cache
        #[arg(long, conflicts_with = "older_than")]
        all: bool,

        /// Also remove blobs no package has used for this long (e.g. 30d, 12h, 90m, 45s)
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
    },
}

/// A `--older-than` value that is not an age.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an age: write a number and a unit, such as 30d, 12h, 90m, 45s or 2w")]
pub struct InvalidAge(pub String);

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `2w` (humantime's syntax, so
/// `1h 30m` works too).
pub fn parse_age(text: &str) -> Result<Duration, InvalidAge> {
    humantime::parse_duration(text).map_err(|_| InvalidAge(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_reject() {
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_age("0d"), Ok(Duration::ZERO));
        assert_eq!(parse_age("1h 30m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("1.5h"), Ok(Duration::from_secs(90 * 60)));
        for bad in ["", "30", "d", "-1d", "1dd", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} accepted");
        }
    }
}
