//! `pkgr create`: wiring only. Settings → staging → pull (resolve, plan, fetch) →
//! package (seal, heal, write); the library owns every step.

use std::io::Write;
use std::sync::Arc;

use super::settings::CreateSettings;
use super::{CreateArgs, Error};
use crate::package::Staging;
use crate::pull::{self, Fetcher, RegistryImage};
use crate::registry::Registry;
use crate::store::Store;

pub async fn run(args: CreateArgs) -> Result<(), Error> {
    let settings = CreateSettings::new(args)?;
    let reporter = settings.reporter.as_ref();
    let staging = Staging::create(settings.output.clone())?;
    let store = match &settings.cache {
        Some(root) => Store::open_cache(root)?,
        None => staging.store().clone(),
    };

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
    let path = staging
        .package(&settings.definition, &pulled, &fetcher)
        .await?;

    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", path.display());
    Ok(())
}
