//! Hints: the fix a user can try, supplied as data by the error that knows it. Library
//! errors implement [`Hint`] and name a [`Fix`]; only `cli` turns a fix into words
//! (and options) and prints it as a `hint:` line, so nothing below it names a flag.

use crate::digest::Digest;

/// An error that may know what the user can do about it.
pub trait Hint {
    fn hint(&self) -> Option<Fix> {
        None
    }
}

/// A fix the user can try, one variant per fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Only a bug in pkgr can cause this (a worker thread panicked): report it.
    ReportBug,
    /// Either fix may help: the first's error was met first.
    Either(Box<Fix>, Box<Fix>),
    /// Several failures at once, each with its own fix, in the order they were listed.
    Each(Vec<Fix>),

    /// The registry does not hold the reference: check its name and tag.
    CheckName,
    /// The registry refused the credentials given.
    CheckCredentials,
    /// The registry wants credentials and has none: log in to it.
    LogIn { registry: String },
    /// The registry's token service would take the credentials over plain HTTP, which
    /// only a plain-HTTP registry's own host may: they are kept from it.
    TokenServiceOverHttps,
    /// The registry cannot be reached: check its host and port.
    CheckHost,
    /// The registry's certificate is signed by a CA the system does not trust.
    TrustCa,
    /// The registry answered TLS with plain HTTP.
    PlainHttp,
    /// A transfer kept stalling after its retries: allow it more time.
    RaiseTimeout,

    /// The Docker daemon cannot be reached.
    StartDaemon,
    /// The Docker daemon does not hold the image either.
    LoadIntoDaemon,

    /// Discovery failed: the images can be packaged without what travels with them.
    PackageWithoutSignatures,
    /// A reference pinned to an index: pin one of its platforms, or keep them all.
    PinPlatform { platforms: Vec<PlatformPin> },
    /// Discovery met its bound on what one subject may bring, or on its requests.
    RaiseMaxReferrers,
    /// A blob declares more than the bound on one blob.
    RaiseMaxBlobSize,
    /// The image has no manifest for the package's architecture.
    PickArchitecture,
    /// A build will not fit: free space, or move these directories (each named by
    /// the option the command gave for it) to a roomier filesystem.
    MakeRoom { options: Vec<&'static str> },

    /// A blob fetched anew changed again before the seal: something damages files.
    CheckDisk,

    /// No cache directory could be found: name one.
    NameCache,

    /// A differential package's base was made for another architecture: say so on
    /// purpose, or pick a base of the same architecture.
    AllowOtherArchitecture,
}

/// One platform of an index a reference was pinned to, for [`Fix::PinPlatform`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformPin {
    /// `os/arch[/variant]`, when the index says.
    pub platform: Option<String>,
    /// The reference pinned to this platform's manifest.
    pub pinned: String,
    /// Whether it is the platform the package is built for.
    pub matches: bool,
    /// The attestation manifests that describe it.
    pub attestations: Vec<Digest>,
}
