//! `pkgr create`: wiring only. Settings → staging → pull (resolve, plan, fetch) →
//! package (seal, heal, write); the library owns every step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::settings::CreateSettings;
use super::{CreateArgs, Error};
use crate::package::Staging;
use crate::progress::Reporter;
use crate::pull::{self, DaemonFallback, Fallback, Fetcher, RegistryImage};
use crate::registry::Registry;
use crate::space::{Place, SpaceCheck};
use crate::store::Cache;

pub async fn run(args: CreateArgs) -> Result<(), Error> {
    let settings = CreateSettings::new(args)?;
    // A full disk is named with the option that moves the directory it happened in.
    let mut places: Vec<(PathBuf, &'static str)> = vec![(settings.output.dir.clone(), "--output")];
    if let Some(root) = &settings.cache {
        places.insert(0, (root.clone(), "--cache"));
    }
    let path = build(settings)
        .await
        .map_err(|err| err.out_of_space(&places))?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", path.display());
    Ok(())
}

async fn build(settings: CreateSettings) -> Result<PathBuf, Error> {
    let reporter = settings.reporter.as_ref();
    let staging = Staging::create(settings.output.clone())?;
    // Held shared until the package is written, so a prune waits for this build.
    let cache = match &settings.cache {
        Some(root) => Some(Cache::open_shared_reporting(root, reporter).await?),
        None => None,
    };
    let store = cache
        .as_ref()
        .map_or_else(|| staging.store().clone(), |c| c.store().clone());
    let space = measure_space(cache.as_ref().map(|c| c.root()), &settings.output.dir)?;

    let registry = Arc::new(
        Registry::connect(
            &settings.transport,
            &settings.definition.registries(),
            settings.credentials,
        )
        .await?,
    );
    // Imports from the Docker daemon go into the same store as downloads.
    let (fallback, warnings) = match settings.daemon_fallback {
        true => {
            let (fallback, warnings) = Fallback::new(store.clone());
            (Some(fallback), Some(warnings))
        }
        false => (None, None),
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
    let pulled = warning_meanwhile(pull, warnings, reporter).await?;
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

/// Runs `work`, printing each warning as it arrives (the daemon fallback's, during
/// the pull), and those left once it ends.
async fn warning_meanwhile<T>(
    work: impl std::future::Future<Output = T>,
    warnings: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    reporter: &dyn Reporter,
) -> T {
    let Some(mut warnings) = warnings else {
        return work.await;
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => {
                while let Ok(warning) = warnings.try_recv() {
                    reporter.warn(&warning);
                }
                return done;
            }
            Some(warning) = warnings.recv() => reporter.warn(&warning),
        }
    }
}

/// Free space where this build downloads (the cache, or without one the staging
/// directory in the output directory) and where it writes the package.
fn measure_space(cache: Option<&Path>, output: &Path) -> Result<SpaceCheck, Error> {
    let output = Place {
        dir: output.to_owned(),
        flag: "--output",
    };
    let store = match cache {
        Some(root) => Place {
            dir: root.to_owned(),
            flag: "--cache",
        },
        None => output.clone(),
    };
    SpaceCheck::measure(store, output).map_err(|(path, source)| Error::Io { path, source })
}
