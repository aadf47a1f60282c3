//! Reads a package the way a user would check it: every entry, in order, with bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub struct Package {
    /// Entry names in tar order.
    pub order: Vec<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Package {
    pub fn read(path: &Path) -> Self {
        let raw = std::fs::read(path).unwrap();
        let tar_bytes = if path.extension().is_some_and(|e| e == "zst") {
            zstd::stream::decode_all(&raw[..]).unwrap()
        } else {
            raw
        };
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut order = Vec::new();
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0, "timestamps must be zero");
            assert_eq!(header.uid().unwrap(), 0);
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert!(
                files.insert(name.clone(), data).is_none(),
                "duplicate entry {name}"
            );
            order.push(name);
        }
        Self { order, files }
    }

    pub fn json(&self, name: &str) -> serde_json::Value {
        serde_json::from_slice(&self.files[name]).unwrap()
    }

    pub fn index(&self) -> Vec<serde_json::Value> {
        self.json("images/index.json")["manifests"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The blob named by `digest` (`sha256:<hex>`).
    pub fn blob(&self, digest: &str) -> Option<&Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.files.get(&format!("images/blobs/sha256/{hex}"))
    }

    pub fn blob_names(&self) -> Vec<&String> {
        self.files
            .keys()
            .filter(|n| n.starts_with("images/blobs/sha256/"))
            .collect()
    }

    /// The index.json entry whose ref name is `reference`.
    pub fn entry(&self, reference: &str) -> serde_json::Value {
        self.index()
            .into_iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == reference)
            .unwrap_or_else(|| panic!("no index.json entry for {reference}"))
    }
}
