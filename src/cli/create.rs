//! `pkgr create`: wiring only. Settings (and any `--differential` base, verified) →
//! staging → pull (resolve, plan, fetch) → package (seal, heal, write, and with
//! `--signing-key` sign).

mod outcome;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::settings::CreateSettings;
use super::{CreateArgs, Error};
use crate::package::Staging;
use crate::progress::notes_meanwhile;
use crate::pull::{self, DaemonFallback, Fallback, Fetcher, RegistryImage};
use crate::registry::Registry;
use crate::space::{Place, SpaceCheck};
use crate::store::Cache;

pub async fn run(args: CreateArgs) -> Result<(), Error> {
    let json = args.json;
    let started = Instant::now();
    let settings = CreateSettings::new(args)?;
    // A full disk is named with the option that moves the directory it happened in.
    let places = settings.places();
    let flags = places.clone().map(|place| (place.dir, place.flag));
    let path = build(settings, places)
        .await
        .map_err(|err| err.out_of_space(&flags))?;
    outcome::report(path, json, started.elapsed()).await
}

async fn build(mut settings: CreateSettings, places: [Place; 2]) -> Result<PathBuf, Error> {
    let base = settings.open_base().await?;
    let reporter = settings.reporter.as_ref();
    let mut staging = Staging::create(settings.output.clone())?;
    if let Some(key) = settings.signing_key.take() {
        staging.sign_with(key);
    }
    if let Some(base) = base {
        settings.pull.held_elsewhere = Arc::new(base.blobs);
        staging.make_differential(base.record);
    }
    // Held shared until the package is written, so a prune waits for this build.
    let cache = match &settings.cache {
        Some(root) => Some(Cache::open_shared_reporting(root, reporter).await?),
        None => None,
    };
    let store = cache
        .as_ref()
        .map_or_else(|| staging.store().clone(), |c| c.store().clone());
    // Measured once the cache directory exists.
    let [downloads, output] = places;
    let space = SpaceCheck::measure(downloads, output)
        .map_err(|(path, source)| Error::Io { path, source })?;

    let registry = Registry::connect(
        &settings.transport,
        &settings.definition.registries(),
        settings.credentials,
    )
    .await?;
    let registry = Arc::new(match settings.daemon_fallback {
        Some(_) => registry.backed_by_fallback(),
        None => registry,
    });
    // Imports from the Docker daemon go into the same store as downloads.
    // Each import is checked against the free space before it writes anything.
    let (fallback, notes) = match settings.daemon_fallback {
        Some(layers) => {
            let max_blob_size = settings.pull.max_blob_size;
            let space = Some(space.clone());
            let (fallback, notes) = Fallback::new(store.clone(), max_blob_size, layers, space);
            (Some(fallback), Some(notes))
        }
        None => (None, None),
    };
    let fetcher = Fetcher::new(store, settings.concurrency, reporter);
    let pull = pull::pull(
        &settings.definition,
        |reference| {
            let source = RegistryImage::open(registry.clone(), reference.clone());
            match &fallback {
                Some(fallback) => DaemonFallback::open(source, fallback.clone()),
                None => source,
            }
        },
        &fetcher,
        &settings.pull,
        Some(&space),
    );
    let pulled = notes_meanwhile(pull, notes, reporter).await?;
    if let Some(cache) = &cache {
        // What `prune --older-than` counts as use.
        pulled.digests().for_each(|digest| cache.mark_used(digest));
    }
    let path = staging
        .package(&settings.definition, &pulled, &fetcher)
        .await?;
    drop(cache);
    Ok(path)
}
