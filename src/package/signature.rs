//! A package's own signature, checked against a public key. The signed file is the
//! definition (`pkgr.yaml`, or a Zarf package's `zarf.yaml`), which records the sha256
//! of `checksums.txt` (`build.aggregateChecksum`), which lists every other file: so
//! the signature covers every byte only once the scan has matched the files to
//! `checksums.txt`, and this module checks the rest. A pkgr package's two signature
//! files are both checked; a Zarf package's `zarf.bundle.sig` when present, else its
//! `zarf.yaml.sig`. Each outcome is a [`Check`], one line of `verify`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::built::{read_definition, BuiltDefinition};
use super::scan::Scan;
use super::{BUNDLE, CHECKSUMS, SIGNATURE};
use crate::digest::Digest;
use crate::trust::{verify_bundle, verify_detached, PublicKey};

const ZARF_SIGNATURE: &str = "zarf.yaml.sig";
const ZARF_BUNDLE: &str = "zarf.bundle.sig";

/// One check and its outcome, as `verify` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `signature pkgr.yaml.sig`.
    pub check: String,
    pub ok: bool,
    /// What was found: the reason when it failed.
    pub detail: String,
}

impl Check {
    pub fn passed(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn failed(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What a signature check reads of a package: the definition, the digest of
/// `checksums.txt`, and the signature files; from a full scan, or from the summary's
/// read of the head (which verifies nothing else).
#[derive(Debug, Default)]
pub struct SignedParts {
    pub zarf: bool,
    pub definition: Option<Vec<u8>>,
    pub checksums: Option<Digest>,
    pub signatures: BTreeMap<String, Vec<u8>>,
}

impl SignedParts {
    /// From a full scan (which has matched every other file to `checksums.txt`).
    pub fn of_scan(scan: &Scan) -> Self {
        Self {
            zarf: scan.zarf,
            definition: scan.definition.clone(),
            checksums: scan.files.get(CHECKSUMS).map(|(digest, _)| digest.clone()),
            signatures: scan.signatures.clone(),
        }
    }

    /// The signature files checked, in order: a pkgr package's both, a Zarf
    /// package's bundle when it has one, else its detached signature.
    fn checked_files(&self) -> Vec<&str> {
        let present = |name: &&str| self.signatures.contains_key(*name);
        match self.zarf {
            false => [BUNDLE, SIGNATURE].into_iter().filter(present).collect(),
            true => [ZARF_BUNDLE, ZARF_SIGNATURE]
                .into_iter()
                .find(present)
                .into_iter()
                .collect(),
        }
    }

    /// Whether the package carries a signature of its definition.
    pub fn is_signed(&self) -> bool {
        !self.checked_files().is_empty()
    }

    fn definition_name(&self) -> &'static str {
        if self.zarf {
            "zarf.yaml"
        } else {
            super::DEFINITION
        }
    }

    /// Checks the signature against `key`: the definition records the digest of
    /// `checksums.txt`, and each signature file verifies over the definition. An
    /// unsigned package fails (a key was given for it).
    pub fn check(&self, key: &PublicKey) -> Vec<Check> {
        let files = self.checked_files();
        let name = self.definition_name();
        let Some(definition) = self.definition.as_deref().filter(|_| !files.is_empty()) else {
            return vec![Check::failed(
                "package signature",
                format!("the package is not signed ({name} has no signature), but a key was given"),
            )];
        };
        let mut checks = vec![self.check_aggregate(definition)];
        for file in files {
            let bytes = &self.signatures[file];
            let outcome = match file.ends_with(".bundle.sig") {
                true => verify_bundle(key, definition, bytes),
                false => verify_detached(key, definition, bytes),
            };
            let check = format!("signature {file}");
            checks.push(match outcome {
                Ok(()) => Check::passed(check, format!("verifies {name} with the key")),
                Err(e) => Check::failed(check, e.to_string()),
            });
        }
        checks
    }

    /// The check that the signed definition records the sha256 of `checksums.txt`.
    fn check_aggregate(&self, definition: &[u8]) -> Check {
        let name = self.definition_name();
        let check = format!("{name} covers {CHECKSUMS}");
        let recorded = match self.zarf {
            false => BuiltDefinition::read(definition)
                .ok()
                .and_then(|d| d.build)
                .map(|b| b.aggregate_checksum),
            true => read_definition(definition, |d: &ZarfBuild| &d.metadata.name)
                .ok()
                .and_then(|d| d.build)
                .and_then(|b| b.aggregate_checksum),
        };
        match (recorded, &self.checksums) {
            (None, _) => Check::failed(
                check,
                format!("{name} records no sha256 of {CHECKSUMS}, so its signature does not cover the package"),
            ),
            (Some(_), None) => Check::failed(check, format!("the package has no {CHECKSUMS}")),
            (Some(recorded), Some(actual)) if recorded == actual.hex() => Check::passed(
                check,
                format!("{CHECKSUMS} is the one {name} records ({actual})"),
            ),
            (Some(_), Some(actual)) => Check::failed(
                check,
                format!("{CHECKSUMS} ({actual}) is not the one {name} records"),
            ),
        }
    }
}

/// The parts of a `zarf.yaml` that tie it to `checksums.txt`.
#[derive(Deserialize)]
struct ZarfBuild {
    metadata: ZarfName,
    #[serde(default)]
    build: Option<ZarfBuildRecord>,
}

#[derive(Deserialize)]
struct ZarfName {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZarfBuildRecord {
    #[serde(default)]
    aggregate_checksum: Option<String>,
}
