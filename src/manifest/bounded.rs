//! Lists read with a cap on their length: a document that lists more entries than any
//! real one does is refused while it is being parsed, before the entries cost memory
//! or the work done per entry adds up.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

/// Descriptors a manifest's `layers`, an index's `manifests` or a package's
/// `index.json` may list. Real images have tens of layers and real indexes tens of
/// platforms; a package of a few thousand images is large.
pub const MAX_ENTRIES: usize = 10_000;

/// Reads a sequence of at most [`MAX_ENTRIES`] items, for `deserialize_with`.
pub fn at_most_max_entries<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(Capped(PhantomData))
}

struct Capped<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Capped<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {MAX_ENTRIES} entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            if items.len() == MAX_ENTRIES {
                return Err(A::Error::custom(format_args!(
                    "it lists more than {MAX_ENTRIES} entries, more than pkgr accepts"
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct List {
        #[serde(deserialize_with = "at_most_max_entries")]
        items: Vec<u8>,
    }

    fn list_of(n: usize) -> String {
        format!(r#"{{"items":[{}]}}"#, vec!["0"; n].join(","))
    }

    #[test]
    fn a_list_at_the_cap_is_read_and_one_over_it_is_refused() {
        let read: List = serde_json::from_str(&list_of(MAX_ENTRIES)).unwrap();
        assert_eq!(read.items.len(), MAX_ENTRIES);
        let err = serde_json::from_str::<List>(&list_of(MAX_ENTRIES + 1)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("it lists more than 10000 entries, more than pkgr accepts"),
            "{err}"
        );
    }
}
