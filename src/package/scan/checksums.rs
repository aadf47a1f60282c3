//! The check of `checksums.txt`, both ways: every line names a file the package holds
//! with that digest, and every file but the exempt ones is listed. Exempt are
//! `checksums.txt` itself, the signature files, Zarf's `zarf.yaml`, and a signed pkgr
//! package's `pkgr.yaml`, which records the sha256 of `checksums.txt` instead: that is
//! checked here too.

use std::collections::BTreeSet;

use super::{Problem, Scan};
use crate::package::built::BuiltDefinition;
use crate::package::reader::{classify, Known};
use crate::package::{CHECKSUMS, DEFINITION};

impl Scan {
    pub(super) fn check_checksums(&mut self) {
        let Some(text) = self.checksums.clone() else {
            self.problems.push(Problem::ChecksumsMissing);
            return;
        };
        let mut listed = BTreeSet::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((hex, name)) = line.split_once(' ') else {
                self.problems
                    .push(Problem::ChecksumLineUnreadable { line: number + 1 });
                continue;
            };
            let name = name.trim();
            listed.insert(name.to_owned());
            match self.files.get(name) {
                None => self.problems.push(Problem::ListedButMissing {
                    name: name.to_owned(),
                }),
                Some((digest, _)) if digest.hex() != hex => {
                    self.problems.push(Problem::ChecksumMismatch {
                        name: name.to_owned(),
                    })
                }
                Some(_) => {}
            }
        }
        // Zarf signs and sums its definition separately, as a signed pkgr package does.
        let exempt_definition = if self.zarf {
            Some("zarf.yaml")
        } else {
            self.check_aggregate().then_some(DEFINITION)
        };
        let exempt = |name: &str| {
            name == CHECKSUMS
                || classify(name).is_ok_and(|known| known == Known::Signature)
                || exempt_definition == Some(name)
        };
        for name in self.files.keys() {
            if !listed.contains(name) && !exempt(name) {
                self.problems
                    .push(Problem::NotListed { name: name.clone() });
            }
        }
    }
}

impl Scan {
    /// Whether a pkgr package's definition records the sha256 of `checksums.txt` (as a
    /// signed one does); a record that does not match is a problem.
    fn check_aggregate(&mut self) -> bool {
        let recorded = match (&self.definition, self.zarf) {
            (Some(bytes), false) => BuiltDefinition::read(bytes)
                .ok()
                .and_then(|definition| definition.build),
            _ => None,
        };
        let Some(build) = recorded else {
            return false;
        };
        let actual = self.files.get(CHECKSUMS).map(|(digest, _)| digest.hex());
        if actual != Some(build.aggregate_checksum.as_str()) {
            self.problems.push(Problem::AggregateMismatch);
        }
        true
    }
}
