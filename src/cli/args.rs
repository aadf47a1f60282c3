//! The first stage of argument handling: clap's view of the command line, each
//! argument parsed and range-checked, nothing opened or read yet (that is `settings`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::daemon::DaemonLayers;
use crate::package::parts::MIN_PART_BYTES;

#[derive(Debug, Parser)]
#[command(
    name = "pkgr",
    version,
    about = "Package OCI content for air-gapped networks",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Also print one line per registry request on stderr: method, URL, status, bytes,
    /// time, and whether it was a retry or a token exchange (credentials redacted)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print nothing but errors and the result
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Colour and progress bars: auto (on a terminal, unless NO_COLOR is set), always,
    /// or never (plain lines, no escape codes)
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: crate::progress::ColourChoice,
}

impl Cli {
    /// Whether the command treats Ctrl-C and SIGTERM as its normal end (serve, which
    /// runs until stopped) rather than being stopped by them.
    pub fn stops_itself_on_signal(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a package from DIR/pkgr.yaml
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Show what a package holds
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Compare two packages: the images NEW adds, removes or changes, and the bytes it adds
    #[command(after_help = DIFF_EXAMPLES)]
    Diff(DiffArgs),
    /// Load every image of a package into a registry
    #[command(after_help = PUSH_EXAMPLES)]
    Push(PushArgs),
    /// Re-hash a whole package and check its signature; one line per check, then a verdict
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Serve a package as a read-only registry, straight from the file
    #[command(after_help = super::serve::SERVE_EXAMPLES)]
    Serve(super::serve::ServeArgs),
    /// Publish a package to a registry as one OCI artifact (oci://REGISTRY/REPOSITORY[:TAG])
    #[command(after_help = PUBLISH_EXAMPLES)]
    Publish(PublishArgs),
    /// Pull a published package back into the package file, byte for byte
    #[command(after_help = PULL_EXAMPLES)]
    Pull(PullPackageArgs),
    /// Look after the shared blob cache
    #[command(after_help = CACHE_EXAMPLES)]
    Cache(CacheArgs),
    /// Print a shell completion script
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for pkgr and each of its commands into DIR
    #[command(hide = true)]
    ManPages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// The exit codes, as `cli::error` assigns them.
const EXIT_STATUS: &str = "\
Exit status:
  0    success
  1    failure: the message says what failed
  2    usage: an argument or option is wrong; nothing was done
  130  interrupted by Ctrl-C (SIGINT); nothing partial is left
  143  terminated by SIGTERM; nothing partial is left
       (serve runs until one of these signals and then exits 0)";

const CREATE_EXAMPLES: &str = "\
Examples:
  pkgr create                               # ./pkgr.yaml into the current directory
  pkgr create examples/demo -o dist         # examples/demo/pkgr.yaml into dist/
  pkgr create --no-cache --with-signatures  # bypass the cache; bring signatures too";

const INSPECT_EXAMPLES: &str = "\
Examples:
  pkgr inspect pkgr-package-demo-amd64.tar.zst
  pkgr inspect --verify pkgr-package-demo-amd64.tar.zst   # re-hash every file and blob
  pkgr inspect oci://127.0.0.1:5000/team/demo:1.0-amd64   # a published package";

const PUSH_EXAMPLES: &str = "\
Examples:
  pkgr push pkgr-package-demo-amd64.tar.zst 127.0.0.1:5000
  pkgr push pkgr-package-demo-amd64.tar.zst registry.local/mirror --ca-file ca.pem
  pkgr push package.tar.zst registry.local --username ci --password-stdin < password";

const VERIFY_EXAMPLES: &str = "\
Examples:
  pkgr verify pkgr-package-demo-amd64.tar.zst --key signing.pub
  pkgr verify --json zarf-package-app-amd64.tar.zst --key cosign.pub";

const PUBLISH_EXAMPLES: &str = "\
Examples:
  pkgr publish pkgr-package-demo-amd64-1.0.tar.zst oci://127.0.0.1:5000/team/demo
  pkgr publish package.tar.zst oci://registry.local/team/demo:stable --ca-file ca.pem";

const PULL_EXAMPLES: &str = "\
Examples:
  pkgr pull oci://127.0.0.1:5000/team/demo:1.0-amd64 -o dist
  pkgr pull oci://registry.local/team/demo@sha256:<manifest digest> --ca-file ca.pem";

const DIFF_EXAMPLES: &str = "\\
Examples:
  pkgr diff pkgr-package-app-amd64-1.0.tar.zst pkgr-package-app-amd64-1.1.tar.zst
  pkgr diff --json november/app.tar.zst december/app.tar.zst.part000";

const CACHE_EXAMPLES: &str = "\
Examples:
  pkgr cache ls                     # blobs, partial downloads and their size
  pkgr cache prune --older-than 30d # remove blobs no package used for 30 days
  pkgr cache verify                 # re-hash every blob, remove damaged ones";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  pkgr completions bash > ~/.local/share/bash-completion/completions/pkgr
  pkgr completions zsh > ~/.zfunc/_pkgr
  pkgr completions fish > ~/.config/fish/completions/pkgr.fish";

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

    /// Print one JSON document at the end: every image's target reference, and what
    /// became of each blob in each repository (sent, mounted or present)
    #[arg(long)]
    pub json: bool,

    /// Registry user name (with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    /// Check the package's signature with this public key (PEM) before anything is sent
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The package (.tar.zst or .tar, or a split package's .part000), as pkgr wrote it
    pub package: PathBuf,

    /// Where to publish: oci://REGISTRY/REPOSITORY[:TAG]; the tag defaults to the
    /// package's VERSION-ARCHITECTURE
    #[arg(value_name = "oci://REGISTRY/REPOSITORY[:TAG]")]
    pub address: String,

    /// Blob uploads in flight
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Plain progress lines instead of progress bars
    #[arg(long)]
    pub no_progress: bool,

    /// Print one JSON document at the end: the address, the manifest's digest, the
    /// package's sha256 and the blobs uploaded, skipped and mounted
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub login: LoginArgs,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct PullPackageArgs {
    /// The published package: oci://REGISTRY/REPOSITORY:TAG (or @sha256:…)
    #[arg(value_name = "oci://REGISTRY/REPOSITORY:TAG")]
    pub address: String,

    /// Directory to write the package into
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,

    /// Blob downloads in flight, at most
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Plain progress lines instead of progress bars
    #[arg(long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub login: LoginArgs,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry user name (with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The package (.tar.zst or .tar; pkgr or Zarf), or a published package's
    /// oci://REGISTRY/REPOSITORY:TAG
    pub package: PathBuf,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also re-hash every file against checksums.txt and every blob against its name
    #[arg(long)]
    pub verify: bool,

    /// Check the package's signature with this public key (PEM)
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,

    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The package (.tar.zst, .tar or a split part000; pkgr or Zarf)
    pub package: PathBuf,

    /// Check the package's signature with this public key (PEM, as openssl or cosign
    /// write it)
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,

    /// Check that every image carries a valid signature by this public key (PEM ECDSA
    /// P-256), a cosign `.sig` or a Sigstore bundle referrer the package holds;
    /// repeatable, any one key will do
    #[arg(long, value_name = "PUB")]
    pub image_key: Vec<PathBuf>,

    /// Print one JSON document instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The package compared against (.tar.zst, .tar or a split part000; pkgr or Zarf)
    pub old: PathBuf,

    /// The package whose images and bytes are compared with OLD's
    pub new: PathBuf,

    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
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

    /// Take the package's platform from an index, even one an image reference pins by
    /// digest (as `platformFromIndex: true` on every image entry)
    #[arg(long, conflicts_with = "allow_index")]
    pub platform_from_index: bool,

    /// Also bring each image's cosign signatures, attestations and SBOMs and its OCI
    /// referrers (as `withSignatures: true` in pkgr.yaml does)
    #[arg(long)]
    pub with_signatures: bool,

    /// Refuse any image without a valid signature by this key (PEM ECDSA P-256 public
    /// key, as openssl and cosign write it), cosign's `.sig` or a Sigstore bundle
    /// referrer; repeatable, any one key will do. Turns on --with-signatures
    #[arg(long, value_name = "PUB")]
    pub image_key: Vec<PathBuf>,

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

    /// How the layers of an image taken from the Docker daemon are kept when the daemon
    /// holds them uncompressed: `tar` as saved (the package is compressed whole), or
    /// `gzip` for targets that take only compressed layers
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = DaemonLayers::Tar, conflicts_with = "no_daemon_fallback")]
    pub daemon_layers: DaemonLayers,

    /// Refuse a blob whose descriptor declares more than SIZE (e.g. 100GiB, 500MB)
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = crate::space::parse_size)]
    pub max_blob_size: u64,

    /// Write a package over SIZE (at least 1MiB; e.g. 4000MiB for FAT32) as Zarf's split
    /// parts of at most SIZE each: NAME.part000 describes them, NAME.part001 onwards hold
    /// the bytes
    #[arg(long, value_name = "SIZE", value_parser = parse_package_size)]
    pub max_package_size: Option<u64>,

    /// Leave out every config and layer that BASE (a pkgr or Zarf package, or its
    /// .part000) holds; push then expects them on the target
    #[arg(long, value_name = "BASE")]
    pub differential: Option<PathBuf>,

    /// With --differential, accept a base made for another architecture
    #[arg(long, requires = "differential")]
    pub allow_other_architecture: bool,

    /// Sign the package with this ECDSA P-256 private key: PEM PKCS#8 (openssl genpkey)
    /// or cosign's encrypted key, whose password is read from PKGR_SIGNING_KEY_PASSWORD
    /// or asked for on a terminal
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,

    /// Plain progress lines instead of progress bars
    #[arg(long)]
    pub no_progress: bool,

    /// Print one JSON document at the end instead of the package's path: the path, its
    /// size and sha256, and every image with its digest and platform
    #[arg(long)]
    pub json: bool,

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

/// Parses `--max-package-size`: a size as `--max-blob-size` takes it, of at least 1 MiB.
pub fn parse_package_size(text: &str) -> Result<u64, String> {
    let size = crate::space::parse_size(text)?;
    if size < MIN_PART_BYTES {
        return Err(format!(
            "`{}` is less than 1 MiB, the smallest part pkgr writes",
            text.trim()
        ));
    }
    Ok(size)
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

    #[test]
    fn package_sizes_are_sizes_of_at_least_one_mib() {
        assert_eq!(parse_package_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_package_size("12MB"), Ok(12_000_000));
        assert_eq!(parse_package_size("4GiB"), Ok(4 << 30));
        assert_eq!(
            parse_package_size("1MB"),
            Err("`1MB` is less than 1 MiB, the smallest part pkgr writes".to_owned())
        );
        assert_eq!(
            parse_package_size("abc"),
            Err("`abc` is not a size: write a whole number, e.g. 64GiB".to_owned())
        );
        for bad in ["0", "10", "512KiB", "1048575", "", "1.5GiB", "-1MiB"] {
            assert!(parse_package_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}
