//! The check of `checksums.txt`, both ways: every line names a file the package holds
//! with that digest, and every file but the exempt ones is listed.

use std::collections::BTreeSet;

use super::{Problem, Scan};

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
        // Zarf signs and sums its definition separately.
        let exempt: &[&str] = if self.zarf {
            &["checksums.txt", "zarf.yaml", "zarf.yaml.sig"]
        } else {
            &["checksums.txt"]
        };
        for name in self.files.keys() {
            if !listed.contains(name) && !exempt.contains(&name.as_str()) {
                self.problems
                    .push(Problem::NotListed { name: name.clone() });
            }
        }
    }
}
