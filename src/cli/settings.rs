//! The second stage of argument handling: everything a command needs, built once from
//! clap's arguments, with every setup step that can fail done here (reading the
//! definition, choosing the cache, loading credentials, picking the reporter). Every
//! command goes args → settings → library.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use super::args::{PublishArgs, PullPackageArgs};
use super::package_file::ensure_regular;
use super::{
    CacheArgs, CacheCommand, CreateArgs, DiffArgs, Error, InspectArgs, PushArgs, TransportArgs,
    VerifyArgs,
};
use crate::daemon::DaemonLayers;
use crate::definition::{self, Definition};
use crate::image_trust::{ImageKeys, SignatureGate};
use crate::package::base::{open_base, Base};
use crate::package::Output;
use crate::progress::{self, Reporter};
use crate::publish::{Address, PublishError, PublishRequest, PullRequest};
use crate::pull::{Admit, PullOptions, ResolveOptions};
use crate::push::PushRequest;
use crate::registry::{Credentials, RegistryError, Transport};
use crate::space::Place;
use crate::store::cache::PruneBlobs;
use crate::store::Cache;
use crate::trust::{PublicKey, SigningKey};

/// What `pkgr create` runs with.
pub struct CreateSettings {
    pub definition: Definition,
    pub output: Output,
    /// The shared cache's root, or `None` for `--no-cache`.
    pub cache: Option<PathBuf>,
    pub transport: Transport,
    pub credentials: Credentials,
    /// How references resolve (as many at once as downloads) and how large a blob may be.
    pub pull: PullOptions,
    /// Blob downloads in flight across all images.
    pub concurrency: usize,
    /// Whether an image its registry cannot serve is looked for in the Docker daemon,
    /// and if so how the layers of a daemon-made image are kept.
    pub daemon_fallback: Option<DaemonLayers>,
    /// `--differential`: the base package whose blobs are left out.
    pub differential: Option<PathBuf>,
    /// `--allow-other-architecture`: a base of another architecture is accepted.
    pub allow_other_architecture: bool,
    /// `--signing-key`: the key the package is signed with, loaded (and a cosign key's
    /// password read) before anything is fetched.
    pub signing_key: Option<SigningKey>,
    pub reporter: Box<dyn Reporter>,
}

impl CreateSettings {
    pub fn new(args: CreateArgs) -> Result<Self, Error> {
        let path = definition::find_in(&args.dir)?;
        let mut definition = definition::load(&path, args.architecture.as_deref())?;
        if args.platform_from_index {
            definition.take_platforms_from_indexes();
        }
        let reporter = progress::reporter(args.no_progress);
        for warning in &definition.warnings {
            reporter.warn(warning);
        }
        if let Some(base) = &args.differential {
            ensure_regular(base)?;
        }
        let signing_key = args
            .signing_key
            .as_deref()
            .map(SigningKey::load)
            .transpose()?;
        let cache = if args.no_cache {
            None
        } else {
            Some(Cache::default_root(args.cache.as_deref())?)
        };
        let admit = if args.image_key.is_empty() {
            None
        } else {
            let keys = ImageKeys::load(&args.image_key)?;
            Some(Arc::new(SignatureGate::new(keys)) as Arc<dyn Admit>)
        };
        Ok(Self {
            pull: PullOptions {
                resolve: ResolveOptions {
                    architecture: definition.metadata.architecture.clone(),
                    allow_index: args.allow_index,
                    platform_from_index: false,
                },
                resolve_concurrency: usize::from(args.concurrency),
                max_blob_size: args.max_blob_size,
                with_signatures: args.with_signatures
                    || definition.with_signatures
                    || admit.is_some(),
                max_referrers: args.max_referrers,
                held_elsewhere: Default::default(),
                admit,
            },
            definition,
            output: Output {
                dir: args.output,
                compressed: !args.uncompressed,
                max_part: args.max_package_size,
            },
            cache,
            transport: transport(&args.transport),
            credentials: Credentials::from_docker_config().map_err(RegistryError::from)?,
            concurrency: usize::from(args.concurrency),
            daemon_fallback: (!args.no_daemon_fallback).then_some(args.daemon_layers),
            differential: args.differential,
            allow_other_architecture: args.allow_other_architecture,
            signing_key,
            reporter,
        })
    }
}

impl CreateSettings {
    /// The `--differential` base, verified whole (on a blocking thread) and checked
    /// against the package's architecture unless `--allow-other-architecture` is given.
    pub async fn open_base(&self) -> Result<Option<Base>, Error> {
        let Some(path) = self.differential.clone() else {
            return Ok(None);
        };
        self.reporter
            .step(&format!("verifying the base package {}", path.display()));
        let architecture =
            (!self.allow_other_architecture).then(|| self.definition.metadata.architecture.clone());
        let opened =
            tokio::task::spawn_blocking(move || open_base(&path, architecture.as_deref())).await;
        let base = opened.map_err(|source| Error::Internal {
            what: "verifying the base package",
            source,
        })??;
        Ok(Some(base))
    }

    /// Where the build writes, each with the option that moves it (for a full disk's
    /// hint): the store its downloads go to (the cache, or without one the staging
    /// directory in the output directory), then the output directory.
    pub fn places(&self) -> [Place; 2] {
        let output = Place {
            dir: self.output.dir.clone(),
            flag: "--output",
        };
        let store = match &self.cache {
            Some(root) => Place {
                dir: root.clone(),
                flag: "--cache",
            },
            None => output.clone(),
        };
        [store, output]
    }
}

/// What `pkgr push` runs with.
pub struct PushSettings {
    pub request: PushRequest,
    pub reporter: Box<dyn Reporter>,
    /// Print the `--json` document instead of the summary line.
    pub json: bool,
}

impl PushSettings {
    pub fn new(args: PushArgs) -> Result<Self, Error> {
        let key = args.key.as_deref().map(PublicKey::load).transpose()?;
        let credentials = credentials(args.username.as_deref(), args.password_stdin)?;
        Ok(Self {
            request: PushRequest {
                transport: transport(&args.transport),
                concurrency: usize::from(args.concurrency),
                package: args.package,
                target: args.target,
                credentials,
                key,
            },
            reporter: progress::reporter(args.no_progress),
            json: args.json,
        })
    }
}

/// What `pkgr inspect` runs with.
pub struct InspectSettings {
    /// A regular file, checked before it is opened.
    pub package: PathBuf,
    /// One JSON object instead of a table.
    pub json: bool,
    /// Whether every file and blob is hashed again.
    pub verify: bool,
    /// `--key`: the package's signature is checked with it.
    pub key: Option<PublicKey>,
}

impl InspectSettings {
    pub fn new(args: InspectArgs) -> Result<Self, Error> {
        ensure_regular(&args.package)?;
        Ok(Self {
            key: args.key.as_deref().map(PublicKey::load).transpose()?,
            package: args.package,
            json: args.json,
            verify: args.verify,
        })
    }
}

/// What `pkgr verify` runs with.
pub struct VerifySettings {
    /// A regular file, checked before it is opened.
    pub package: PathBuf,
    /// `--key`: the package's signature is checked with it.
    pub key: Option<PublicKey>,
    /// `--image-key`: each image's signatures are checked with them.
    pub image_keys: Option<ImageKeys>,
    /// One JSON document instead of lines.
    pub json: bool,
}

impl VerifySettings {
    pub fn new(args: VerifyArgs) -> Result<Self, Error> {
        ensure_regular(&args.package)?;
        Ok(Self {
            key: args.key.as_deref().map(PublicKey::load).transpose()?,
            image_keys: (!args.image_key.is_empty())
                .then(|| ImageKeys::load(&args.image_key))
                .transpose()?,
            package: args.package,
            json: args.json,
        })
    }
}

/// What `pkgr diff` runs with.
pub struct DiffSettings {
    /// Regular files, checked before they are opened.
    pub old: PathBuf,
    pub new: PathBuf,
    /// One JSON document instead of a table.
    pub json: bool,
}

impl DiffSettings {
    pub fn new(args: DiffArgs) -> Result<Self, Error> {
        ensure_regular(&args.old)?;
        ensure_regular(&args.new)?;
        Ok(Self {
            old: args.old,
            new: args.new,
            json: args.json,
        })
    }
}

/// What `pkgr cache` runs with.
pub struct CacheSettings {
    pub root: PathBuf,
    pub action: CacheAction,
}

/// One `pkgr cache` subcommand, ready to run.
pub enum CacheAction {
    Path,
    Ls {
        json: bool,
    },
    /// The reporter is picked once the cache is open, so that none is drawn while the
    /// lock is waited for.
    Verify {
        no_progress: bool,
    },
    Prune(PruneBlobs),
}

impl CacheSettings {
    pub fn new(args: CacheArgs) -> Result<Self, Error> {
        let action = match args.command {
            CacheCommand::Path => CacheAction::Path,
            CacheCommand::Ls { json } => CacheAction::Ls { json },
            CacheCommand::Verify { no_progress } => CacheAction::Verify { no_progress },
            CacheCommand::Prune { all, older_than } => {
                CacheAction::Prune(match (all, older_than) {
                    (true, _) => PruneBlobs::All,
                    (false, Some(age)) => PruneBlobs::UnusedFor(age),
                    (false, None) => PruneBlobs::None,
                })
            }
        };
        Ok(Self {
            root: Cache::default_root(args.cache.as_deref())?,
            action,
        })
    }
}

/// Docker's configured credentials, and `--username` with the password read from
/// stdin when given.
fn credentials(username: Option<&str>, password_stdin: bool) -> Result<Credentials, Error> {
    let from_config = Credentials::from_docker_config().map_err(RegistryError::from)?;
    let (Some(user), true) = (username, password_stdin) else {
        return Ok(from_config);
    };
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|source| Error::Io {
            path: "stdin".into(),
            source,
        })?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    Ok(from_config.with_explicit(user.to_owned(), password))
}

/// What `pkgr publish` runs with.
pub struct PublishSettings {
    pub request: PublishRequest,
    pub reporter: Box<dyn Reporter>,
    pub json: bool,
}

impl PublishSettings {
    pub fn new(args: PublishArgs) -> Result<Self, Error> {
        let address = Address::parse(&args.address).map_err(PublishError::from)?;
        Ok(Self {
            request: PublishRequest {
                credentials: credentials(
                    args.login.username.as_deref(),
                    args.login.password_stdin,
                )?,
                transport: transport(&args.transport),
                concurrency: usize::from(args.concurrency),
                package: args.package,
                address,
            },
            reporter: progress::reporter(args.no_progress),
            json: args.json,
        })
    }
}

/// What `pkgr pull` runs with.
pub struct PullPackageSettings {
    pub request: PullRequest,
    pub reporter: Box<dyn Reporter>,
}

impl PullPackageSettings {
    pub fn new(args: PullPackageArgs) -> Result<Self, Error> {
        let address = Address::parse_pinned(&args.address).map_err(PublishError::from)?;
        Ok(Self {
            request: PullRequest {
                credentials: credentials(
                    args.login.username.as_deref(),
                    args.login.password_stdin,
                )?,
                transport: transport(&args.transport),
                concurrency: usize::from(args.concurrency),
                output: args.output,
                address,
            },
            reporter: progress::reporter(args.no_progress),
        })
    }
}

/// What `pkgr inspect oci://…` runs with.
pub struct InspectPublishedSettings {
    pub address: Address,
    pub transport: Transport,
    pub credentials: Credentials,
    pub json: bool,
    pub key: Option<PublicKey>,
}

impl InspectPublishedSettings {
    pub fn new(args: InspectArgs) -> Result<Self, Error> {
        let written = args.package.to_string_lossy();
        let address = Address::parse_pinned(&written).map_err(PublishError::from)?;
        if args.verify {
            return Err(Error::Publish(PublishError::VerifyRemote {
                address: address.to_string(),
            }));
        }
        Ok(Self {
            address,
            transport: transport(&args.transport),
            credentials: credentials(None, false)?,
            json: args.json,
            key: args.key.as_deref().map(PublicKey::load).transpose()?,
        })
    }
}

fn transport(args: &TransportArgs) -> Transport {
    Transport {
        plain_http: args.plain_http,
        insecure_skip_tls_verify: args.insecure_skip_tls_verify,
        ca_file: args.ca_file.clone(),
        timeout: std::time::Duration::from_secs(args.timeout),
    }
}
