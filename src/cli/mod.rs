//! The command line, the edge of the program: clap's view of the arguments (first
//! stage), the settings built from them (second stage), the top-level error with its
//! exit codes, and one module per command.

pub mod cache;
pub mod create;
pub mod error;
pub mod inspect;
pub mod package_file;
pub mod push;
pub mod settings;

pub use error::Error;

use std::path::PathBuf;

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
    Cache(cache::CacheArgs),
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

pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Create(args) => create::run(args).await,
        Command::Push(args) => push::run(args).await,
        Command::Cache(args) => cache::run(args).await,
        Command::Inspect(args) => tokio::task::spawn_blocking(move || inspect::run(args))
            .await
            .unwrap_or_else(|source| {
                Err(Error::Internal {
                    what: "inspecting the package",
                    source,
                })
            }),
    }
}
