//! Where a published package lives: `oci://REGISTRY/REPOSITORY[:TAG|@DIGEST]`. The
//! scheme is what tells a published package from a package file on the command line:
//! a path is never taken for an address, since only text that starts with `oci://` is
//! one (a file really named so is reached as `./oci://…`).

use std::ffi::OsStr;
use std::fmt;

use oci_client::Reference;

use crate::reference::parse_reference;

pub const SCHEME: &str = "oci://";

/// Whether a command-line argument names a published package rather than a file.
pub fn is_address(argument: &OsStr) -> bool {
    argument
        .to_str()
        .is_some_and(|text| text.starts_with(SCHEME))
}

/// A published package's place: a registry, a repository, and a tag or digest when
/// one was written.
#[derive(Debug, Clone)]
pub struct Address {
    reference: Reference,
    /// Whether the text named a tag or a digest (a `Reference` always has one).
    pinned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BadAddress {
    #[error("`{0}` is not a published package's address: write oci://REGISTRY/REPOSITORY[:TAG]")]
    Shape(String),
    #[error("`{written}` is not a valid address ({reason})")]
    Invalid { written: String, reason: String },
    #[error("`{0}` names no tag: write oci://REGISTRY/REPOSITORY:TAG")]
    NoTag(String),
}

impl Address {
    /// Parses `oci://REGISTRY/REPOSITORY[:TAG|@DIGEST]`. The registry must be written:
    /// `oci://team/app` is refused rather than sent to Docker Hub.
    pub fn parse(text: &str) -> Result<Self, BadAddress> {
        let shape = || BadAddress::Shape(text.to_owned());
        let rest = text.strip_prefix(SCHEME).ok_or_else(shape)?;
        let (host, path) = rest.split_once('/').ok_or_else(shape)?;
        let names_host = host.contains('.') || host.contains(':') || host == "localhost";
        if !names_host || path.is_empty() {
            return Err(shape());
        }
        let reference = parse_reference(rest).map_err(|e| BadAddress::Invalid {
            written: text.to_owned(),
            reason: match e {
                crate::reference::ReferenceError::Invalid { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        if reference.registry() != host {
            return Err(shape());
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        let pinned = last.contains(':') || last.contains('@');
        Ok(Self { reference, pinned })
    }

    /// As [`parse`](Self::parse), for reading: a tag or digest is required.
    pub fn parse_pinned(text: &str) -> Result<Self, BadAddress> {
        let address = Self::parse(text)?;
        match address.pinned {
            true => Ok(address),
            false => Err(BadAddress::NoTag(text.to_owned())),
        }
    }

    /// This address with `tag`, unless it already names a tag or digest.
    pub fn or_tag(self, tag: &str) -> Self {
        if self.pinned {
            return self;
        }
        let reference = Reference::with_tag(
            self.reference.registry().to_owned(),
            self.reference.repository().to_owned(),
            tag.to_owned(),
        );
        Self {
            reference,
            pinned: true,
        }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// Whether a tag or digest was written (or given by [`or_tag`](Self::or_tag)).
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reference = &self.reference;
        write!(
            f,
            "{SCHEME}{}/{}",
            reference.registry(),
            reference.repository()
        )?;
        if let Some(digest) = reference.digest() {
            write!(f, "@{digest}")
        } else if let (true, Some(tag)) = (self.pinned, reference.tag()) {
            write!(f, ":{tag}")
        } else {
            Ok(())
        }
    }
}

/// A tag made from a package's version and architecture (`1.2.0-amd64`), as Zarf tags
/// what it publishes; characters a tag may not hold (`+` in semver) become `_`.
pub fn default_tag(version: Option<&str>, architecture: &str) -> String {
    let text = match version {
        Some(version) => format!("{version}-{architecture}"),
        None => architecture.to_owned(),
    };
    let mut tag: String = text
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.replace_range(..1, "_");
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_a_tag() {
        let tagged = Address::parse("oci://127.0.0.1:5000/team/app:1.0-amd64").unwrap();
        assert_eq!(tagged.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.reference().repository(), "team/app");
        assert_eq!(
            tagged.to_string(),
            "oci://127.0.0.1:5000/team/app:1.0-amd64"
        );
        let bare = Address::parse("oci://registry.local/app").unwrap();
        assert!(!bare.is_pinned());
        assert_eq!(bare.to_string(), "oci://registry.local/app");
        assert_eq!(
            bare.or_tag("2-arm64").to_string(),
            "oci://registry.local/app:2-arm64"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = Address::parse_pinned(&format!("oci://localhost:5000/app@{digest}")).unwrap();
        assert_eq!(pinned.reference().digest(), Some(digest.as_str()));
    }

    #[test]
    fn what_is_not_an_address_is_refused_in_one_sentence() {
        for bad in [
            "127.0.0.1:5000/app:1",
            "oci://",
            "oci://team/app:1",
            "oci://127.0.0.1:5000",
            "oci://127.0.0.1:5000/",
        ] {
            let err = Address::parse(bad).unwrap_err();
            assert!(matches!(err, BadAddress::Shape(_)), "{bad}: {err}");
        }
        let err = Address::parse("oci://127.0.0.1:5000/Team/App:1").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`oci://127.0.0.1:5000/Team/App:1` is not a valid address ("),
            "{err}"
        );
        let err = Address::parse_pinned("oci://127.0.0.1:5000/app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`oci://127.0.0.1:5000/app` names no tag: write oci://REGISTRY/REPOSITORY:TAG"
        );
        assert!(is_address(OsStr::new("oci://x/y")));
        assert!(!is_address(OsStr::new("./oci://x/y")));
    }

    #[test]
    fn default_tags_are_valid_tags() {
        assert_eq!(default_tag(Some("1.2.0"), "amd64"), "1.2.0-amd64");
        assert_eq!(
            default_tag(Some("1.0+build.5"), "arm64"),
            "1.0_build.5-arm64"
        );
        assert_eq!(default_tag(None, "amd64"), "amd64");
        assert_eq!(default_tag(Some("-x"), "amd64"), "_x-amd64");
    }
}
