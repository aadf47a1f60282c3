//! A check each resolved image must pass, with what discovery found for it, before
//! anything of it is planned or fetched (`--image-key` is one). The check is given to
//! the pull from above, so that pull knows nothing of what it checks; an image that
//! fails is a failed reference like any other, named with the rest.

use futures_util::future::BoxFuture;

use super::{PullError, ResolvedImage};
use crate::store::Store;

/// Decides whether a resolved image may be packaged.
pub trait Admit: Send + Sync + std::fmt::Debug {
    /// `Ok` when `image` may be packaged; `artifacts` are what discovery found for it,
    /// their manifests already in `store`. A refusal is [`PullError::Refused`].
    fn admit<'a>(
        &'a self,
        image: &'a ResolvedImage,
        artifacts: &'a [ResolvedImage],
        store: &'a Store,
    ) -> BoxFuture<'a, Result<(), PullError>>;
}
