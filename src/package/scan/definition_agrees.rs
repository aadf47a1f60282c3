//! The check that a pkgr package's `pkgr.yaml` and `images/index.json` list the same
//! images under the same digests.

use std::collections::{BTreeMap, BTreeSet};

use super::{Problem, Scan};
use crate::digest::Digest;
use crate::package::built::BuiltDefinition;

impl Scan {
    /// A pkgr package's definition as built lists every image with its digest, and
    /// index.json must hold exactly those: what `push` publishes under each tag is
    /// what the definition says was built. (A Zarf definition lists references as
    /// their author wrote them, without digests; it is not compared.)
    pub(super) fn check_definition_agrees(&mut self) {
        let (Some(bytes), false, Some(index)) = (&self.definition, self.zarf, &self.index) else {
            return;
        };
        let definition = match BuiltDefinition::read(bytes) {
            Ok(definition) => definition,
            Err(unreadable) => {
                self.problems.push(Problem::DefinitionUnreadable {
                    message: unreadable.to_string(),
                });
                return;
            }
        };
        let mut indexed: BTreeMap<&str, Vec<&Digest>> = BTreeMap::new();
        for entry in &index.manifests {
            indexed
                .entry(entry.reference().unwrap_or("(unnamed)"))
                .or_default()
                .push(&entry.digest);
        }
        let mut listed = BTreeSet::new();
        let mut disagreeing = BTreeSet::new();
        for image in definition.components.iter().flat_map(|c| &c.images) {
            listed.insert((image.reference.as_str(), &image.digest));
            let found = indexed.get(image.reference.as_str());
            if !found.is_some_and(|digests| digests.contains(&&image.digest)) {
                disagreeing.insert(image.reference.as_str());
                self.problems.push(Problem::IndexDisagrees {
                    reference: image.reference.clone(),
                    definition: image.digest.clone(),
                    index: found
                        .and_then(|digests| digests.first())
                        .map(|d| (*d).clone()),
                });
            }
        }
        // A reference already reported above under another digest is not reported again.
        for (reference, digests) in indexed.iter().filter(|(r, _)| !disagreeing.contains(*r)) {
            for digest in digests {
                if !listed.contains(&(*reference, *digest)) {
                    self.problems.push(Problem::NotInDefinition {
                        reference: (*reference).to_owned(),
                        digest: (*digest).clone(),
                    });
                }
            }
        }
    }
}
