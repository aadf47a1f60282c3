//! Image references: parsing them strictly, and mapping them onto a push target
//! (`REGISTRY[/PREFIX]` plus the original repository path).

use oci_client::Reference;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("an image reference is empty")]
    Empty,
    #[error("`{written}` is not a valid image reference ({reason})")]
    Invalid { written: String, reason: String },
    #[error("`{written}` has an invalid digest `{digest}` (pkgr needs sha256)")]
    BadDigest { written: String, digest: String },
}

impl crate::hint::Hint for ReferenceError {}

/// Parses an image reference strictly: a digest must be a valid sha256 digest.
pub fn parse_reference(written: &str) -> Result<Reference, ReferenceError> {
    let trimmed = written.trim();
    if trimmed.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let reference = Reference::try_from(trimmed).map_err(|err| ReferenceError::Invalid {
        written: written.to_owned(),
        reason: err.to_string(),
    })?;
    if let Some(digest) = reference.digest() {
        digest
            .parse::<Digest>()
            .map_err(|_| ReferenceError::BadDigest {
                written: written.to_owned(),
                digest: digest.to_owned(),
            })?;
    }
    Ok(reference)
}

/// Where images go: a registry host and an optional repository prefix.
#[derive(Debug, Clone)]
pub struct Target {
    pub registry: String,
    pub prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a registry target (expected REGISTRY[/PREFIX], like 127.0.0.1:5000/mirror)")]
pub struct BadTarget(pub String);

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.registry),
            None => f.write_str(&self.registry),
        }
    }
}

/// A repository path component as the distribution spec allows it: lowercase letters
/// and digits, joined by `.`, `_`, `__` or runs of `-`. So `.` and `..` never pass.
fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    alnum(first)
        && alnum(last)
        && bytes.iter().all(|b| alnum(b) || b"._-".contains(b))
        && !part.contains("..")
        && !part.contains("___")
        && !part.contains(".-")
        && !part.contains("-.")
        && !part.contains("._")
        && !part.contains("_.")
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, BadTarget> {
        let text = text.trim_end_matches('/');
        let (registry, prefix) = match text.split_once('/') {
            Some((registry, prefix)) => (registry, Some(prefix.to_owned())),
            None => (text, None),
        };
        let valid_prefix = prefix
            .as_deref()
            .is_none_or(|p| p.split('/').all(is_path_component));
        if registry.is_empty() || registry.contains("://") || !valid_prefix {
            return Err(BadTarget(text.to_owned()));
        }
        Ok(Self {
            registry: registry.to_owned(),
            prefix,
        })
    }

    /// `ghcr.io/org/app:1.2` → `<registry>/[<prefix>/]org/app:1.2`.
    pub fn map(&self, source: &Reference) -> Reference {
        let repository = match &self.prefix {
            Some(prefix) => format!("{prefix}/{}", source.repository()),
            None => source.repository().to_owned(),
        };
        match source.tag() {
            Some(tag) => Reference::with_tag(self.registry.clone(), repository, tag.to_owned()),
            None => Reference::with_digest(
                self.registry.clone(),
                repository,
                source.digest().unwrap_or_default().to_owned(),
            ),
        }
    }

    /// The same repository as `reference`, pinned to `digest`.
    pub fn pinned(reference: &Reference, digest: &Digest) -> Reference {
        Reference::with_digest(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            digest.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_references_onto_the_target() {
        let target = Target::parse("127.0.0.1:5000").unwrap();
        let mapped = target.map(&parse_reference("ghcr.io/org/app:1.2").unwrap());
        assert_eq!(mapped.whole(), "127.0.0.1:5000/org/app:1.2");
        let mapped = target.map(&parse_reference("nginx:1.25").unwrap());
        assert_eq!(mapped.whole(), "127.0.0.1:5000/library/nginx:1.25");
        let target = Target::parse("reg.local/mirror/team").unwrap();
        let mapped = target.map(&parse_reference("ghcr.io/org/app:1.2").unwrap());
        assert_eq!(mapped.whole(), "reg.local/mirror/team/org/app:1.2");
    }

    #[test]
    fn bad_targets_are_refused() {
        for bad in [
            "https://reg.local",
            "reg.local/UPPER",
            "127.0.0.1:5000/../x",
            "127.0.0.1:5000/./x",
            "127.0.0.1:5000/a//b",
            "127.0.0.1:5000/-a",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Target::parse("127.0.0.1:5000/my-team/a.b_c").is_ok());
    }

    #[test]
    fn digests_are_checked() {
        assert!(matches!(
            parse_reference("app@sha256:abc"),
            Err(ReferenceError::BadDigest { .. }) | Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(parse_reference("  "), Err(ReferenceError::Empty)));
    }
}
