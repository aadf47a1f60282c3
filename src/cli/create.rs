//! `pkgr create`: wiring only. Settings → staging → pull (resolve, plan, fetch) →
//! package (seal, heal, write); the library owns every step.

use std::io::Write;
use std::sync::Arc;

use super::settings::CreateSettings;
use super::{CreateArgs, Error};
use crate::package::Staging;
use crate::pull::{self, Fetcher, RegistryImage};
use crate::registry::Registry;

pub async fn run(args: CreateArgs) -> Result<(), Error> {
    let settings = CreateSettings::new(args)?;
    let reporter = settings.reporter.as_ref();
    let staging = Staging::create(settings.output.clone())?;
    // Held shared until the package is written, so a prune waits for this build.
    let cache = match &settings.cache {
        Some(root) => Some(super::cache::open_shared(root, reporter).await?),
        None => None,
    };
    let store = cache
        .as_ref()
        .map_or_else(|| staging.store().clone(), |c| c.store().clone());

    let registry = Arc::new(
        Registry::connect(
            &settings.transport,
            &settings.definition.registries(),
            settings.credentials,
        )
        .await?,
    );
    let fetcher = Fetcher::new(store, settings.concurrency, reporter);
    let pulled = pull::pull(
        &settings.definition,
        |reference| RegistryImage::open(registry.clone(), reference.clone()),
        &fetcher,
        &settings.resolve,
        settings.concurrency,
    )
    .await?;
    if let Some(cache) = &cache {
        // What `prune --older-than` counts as use.
        pulled.digests().for_each(|digest| cache.mark_used(digest));
    }
    let path = staging
        .package(&settings.definition, &pulled, &fetcher)
        .await?;
    drop(cache);

    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", path.display());
    Ok(())
}
