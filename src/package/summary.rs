//! What `inspect` shows and `diff` compares, read from the head of a package: the
//! definition, `index.json` and the manifests and configs it names. pkgr writes those
//! first, so layers are never decompressed; a Zarf package may need a longer read. A
//! differential package's summary names its base and what it leaves out (the configs
//! left out are not read, so an image whose config is left out shows no platform
//! unless its index entry has one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::built::{read_definition, BaseRecord, BuiltDefinition, Differential, Unreadable};
use super::kept::Kept;
use super::needed::Needed;
use super::reader::{
    for_each_entry, read_bounded, Entry, Flow, Known, PackageBytes, MAX_METADATA_BYTES,
    MAX_SIGNATURE_BYTES,
};
use super::signature::SignedParts;
use super::PackageError;
use crate::digest::Digest;
use crate::manifest::parsed::ParsedManifests;
use crate::manifest::walk::{Role, Walk, WalkError};
use crate::manifest::{Descriptor, Kind, Manifest, MAX_MANIFEST_BYTES};
use crate::reference::parse_reference;
use crate::store::layout::{IndexEntry, LayoutIndex};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub metadata: SummaryMetadata,
    pub components: Vec<SummaryComponent>,
    pub images: Vec<SummaryImage>,
    /// Files a Zarf package carries besides images: listed, verified, never pushed.
    #[serde(rename = "otherFiles", skip_serializing_if = "Vec::is_empty")]
    pub other_files: Vec<OtherFile>,
    pub totals: Totals,
    /// For a differential package: its base, and what it leaves out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differential: Option<DifferentialSummary>,
    /// What a check of the package's signature needs, as read from its head.
    #[serde(skip)]
    pub signed: SignedParts,
}

/// What a differential package leaves to its base.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DifferentialSummary {
    pub base: BaseRecord,
    /// Configs and layers left out, expected on the target.
    pub left_out_blobs: usize,
    pub left_out_bytes: u64,
}

impl DifferentialSummary {
    fn of(differential: Differential) -> Self {
        Self {
            left_out_blobs: differential.left_out.len(),
            left_out_bytes: differential.left_out_bytes(),
            base: differential.base,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OtherFile {
    pub name: String,
    pub size: u64,
    pub kind: OtherKind,
}

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OtherKind {
    /// `components/<name>.tar`: charts, manifests, files and data of a component.
    Component,
    /// `sboms.tar`.
    Sboms,
    /// `zarf.yaml.sig` or `zarf.bundle.sig`: checked only against a key (`--key`).
    Signature,
}

impl OtherKind {
    fn of(name: &str) -> Self {
        match name {
            "sboms.tar" => Self::Sboms,
            "zarf.yaml.sig" | "zarf.bundle.sig" => Self::Signature,
            _ => Self::Component,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct SummaryMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SummaryComponent {
    pub name: String,
    pub images: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryImage {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub kind: Kind,
    pub platform: Option<String>,
    /// Manifest, children, configs and layers, each counted once.
    pub size: u64,
    pub component: Option<String>,
    /// For a signature, attestation, SBOM or referrer brought with `--with-signatures`:
    /// the digest of the manifest it describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How it relates to its subject (`signature`, `attestation`, `sbom`, `referrer`,
    /// `referrers-tag`, `buildx-attestation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// For an image taken from an index by `platformFromIndex`: the index's digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_index: Option<String>,
    /// Every blob the image reaches (manifests, configs, layers), each once with its
    /// size: what `diff` compares. Not shown: `size` is their sum.
    #[serde(skip)]
    pub blobs: Arc<BTreeMap<Digest, u64>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub images: usize,
    pub blobs: usize,
    pub bytes: u64,
    /// Bytes of blobs that more than one image uses, counted once.
    pub shared_bytes: u64,
}

#[derive(Deserialize)]
struct ZarfDefinition {
    metadata: SummaryMetadata,
    #[serde(default)]
    components: Vec<ZarfComponent>,
}

#[derive(Deserialize)]
struct ZarfComponent {
    name: String,
    #[serde(default)]
    images: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// JSON documents found so far, by digest.
type Docs = BTreeMap<Digest, Vec<u8>>;

pub fn summarize(path: &std::path::Path) -> Result<Summary, PackageError> {
    let mut definition: Option<(bool, Vec<u8>)> = None;
    let mut index: Option<LayoutIndex> = None;
    let mut docs = Docs::new();
    let mut speculative_bytes = 0u64;
    let mut kept = Kept::default();
    let mut needed: Option<Needed> = None;
    let mut other_files = Vec::new();
    let mut signed = SignedParts::default();
    let package = PackageBytes::open(path)?;
    for_each_entry(&package, |entry| {
        let Entry {
            known,
            name,
            size,
            reader,
            ..
        } = entry;
        match known {
            Known::ZarfExtra => other_files.push(OtherFile {
                name: name.to_owned(),
                size,
                kind: OtherKind::of(name),
            }),
            Known::Signature => {
                let bytes = read_bounded(reader, name, size, MAX_SIGNATURE_BYTES)?;
                // A Zarf signature is one of its other files; pkgr's own are not.
                if !name.starts_with("pkgr.") {
                    other_files.push(OtherFile {
                        name: name.to_owned(),
                        size,
                        kind: OtherKind::of(name),
                    });
                }
                signed.signatures.insert(name.to_owned(), bytes);
            }
            Known::Checksums => {
                let bytes = read_bounded(reader, name, size, MAX_METADATA_BYTES)?;
                signed.checksums = Some(Digest::of(&bytes));
            }
            Known::PkgrDefinition | Known::ZarfDefinition => {
                let zarf = known == Known::ZarfDefinition;
                definition = Some((zarf, read_bounded(reader, name, size, MAX_METADATA_BYTES)?));
            }
            Known::Index => {
                let bytes = read_bounded(reader, name, size, MAX_METADATA_BYTES)?;
                let read: LayoutIndex =
                    serde_json::from_slice(&bytes).map_err(PackageError::BadIndex)?;
                needed = Some(Needed::from_index(&read, &docs, left_out_of(&definition)));
                index = Some(read);
            }
            Known::Blob(digest) if size <= MAX_MANIFEST_BYTES => {
                let certain = needed.as_ref().is_some_and(|n| n.wants(&digest));
                // Until every manifest is read, any small blob may be a config that one
                // of them names (other writers than pkgr order blobs freely).
                let speculative = needed.as_ref().is_none_or(Needed::awaits_manifests)
                    && speculative_bytes + size <= SPECULATIVE_BUDGET;
                if certain || speculative {
                    if !certain {
                        speculative_bytes += size;
                    }
                    kept.add(size)?;
                    docs.insert(
                        digest.clone(),
                        read_bounded(reader, name, size, MAX_MANIFEST_BYTES)?,
                    );
                    if let Some(needed) = &mut needed {
                        needed.arrived(&digest, &docs);
                    }
                }
            }
            _ => {}
        }
        // A Zarf package keeps other files anywhere, its signature after zarf.yaml:
        // only a pkgr package, which has none, may be left unread.
        let done = definition.as_ref().is_some_and(|(zarf, _)| !zarf)
            && needed.as_ref().is_some_and(Needed::is_complete);
        Ok(if done { Flow::Stop } else { Flow::Continue })
    })?;
    let (zarf, definition) = definition.ok_or(PackageError::NoDefinition)?;
    let index = index.ok_or(PackageError::NoIndex)?;
    let mut summary = build(zarf, &definition, &index, &docs)?;
    summary.other_files = other_files;
    signed.zarf = zarf;
    signed.definition = Some(definition);
    summary.signed = signed;
    Ok(summary)
}

/// The summary of a package known only by its definition, `index.json` and the
/// documents (manifests and configs, by digest) got so far: a published package read
/// layer by layer. [`documents_needed`] says which documents are still to get; the
/// summary is the one [`summarize`] gives once none is.
pub fn summarize_documents(
    zarf: bool,
    definition: &[u8],
    index: &LayoutIndex,
    docs: &BTreeMap<Digest, Vec<u8>>,
) -> Result<Summary, PackageError> {
    build(zarf, definition, index, docs)
}

/// The manifests and configs a summary of `index` still needs beyond `docs`, as far as
/// the documents in `docs` show (a manifest not yet got may name more).
pub fn documents_needed(
    zarf: bool,
    definition: &[u8],
    index: &LayoutIndex,
    docs: &BTreeMap<Digest, Vec<u8>>,
) -> BTreeSet<Digest> {
    let definition = Some((zarf, definition.to_vec()));
    let needed = Needed::from_index(index, docs, left_out_of(&definition));
    needed.manifests.union(&needed.configs).cloned().collect()
}

/// The blobs a pkgr package's definition, read so far, says it leaves out.
fn left_out_of(definition: &Option<(bool, Vec<u8>)>) -> BTreeSet<Digest> {
    let Some((false, bytes)) = definition else {
        return BTreeSet::new();
    };
    BuiltDefinition::read(bytes)
        .ok()
        .and_then(|d| d.differential)
        .map(|d| d.left_out.into_iter().map(|blob| blob.digest).collect())
        .unwrap_or_default()
}

/// Small blobs kept in memory on the chance that they are configs.
const SPECULATIVE_BUDGET: u64 = 64 * 1024 * 1024;

impl Summary {
    /// Each image that artifacts describe, named by its references (or by its digest
    /// when no entry has it, as for one platform of a kept index), with how each
    /// artifact relates to it, in package order.
    pub fn signed(&self) -> Vec<(String, Vec<&str>)> {
        let mut signed: Vec<(&str, Vec<&str>)> = Vec::new();
        for image in &self.images {
            let (Some(subject), Some(relation)) = (&image.subject, &image.relation) else {
                continue;
            };
            match signed.iter_mut().find(|(s, _)| s == subject) {
                Some((_, relations)) => relations.push(relation),
                None => signed.push((subject, vec![relation])),
            }
        }
        signed
            .into_iter()
            .map(|(subject, relations)| {
                let names: Vec<&str> = self
                    .images
                    .iter()
                    .filter(|i| i.digest.to_string() == subject)
                    .map(|i| i.reference.as_str())
                    .collect();
                let name = if names.is_empty() {
                    subject.to_owned()
                } else {
                    names.join(", ")
                };
                (name, relations)
            })
            .collect()
    }
}

/// Each blob any image reaches: its size, and how many images reach it.
type Users = BTreeMap<Digest, (u64, usize)>;

fn build(
    zarf: bool,
    definition: &[u8],
    index: &LayoutIndex,
    docs: &Docs,
) -> Result<Summary, PackageError> {
    let (metadata, components, differential) = if zarf {
        let (metadata, components) = read_zarf(definition)?;
        (metadata, components, None)
    } else {
        read_pkgr(definition)?
    };
    let (images, users) = summarize_images(index, docs, &components)?;
    Ok(Summary {
        format: if zarf { "zarf" } else { "pkgr" },
        metadata,
        components,
        totals: totals(&images, &users),
        images,
        other_files: Vec::new(),
        differential: differential.map(DifferentialSummary::of),
        signed: SignedParts::default(),
    })
}

fn read_zarf(bytes: &[u8]) -> Result<(SummaryMetadata, Vec<SummaryComponent>), PackageError> {
    let parsed = read_definition(bytes, |d: &ZarfDefinition| &d.metadata.name)
        .map_err(|e| definition_error("zarf.yaml", e))?;
    let components = parsed
        .components
        .into_iter()
        .map(|c| SummaryComponent {
            name: c.name,
            images: c
                .images
                .iter()
                .map(|i| parse_reference(i).map_or_else(|_| i.clone(), |r| r.whole()))
                .collect(),
        })
        .collect();
    Ok((parsed.metadata, components))
}

/// A pkgr package's metadata, components and, for a differential one, its base.
type ReadPkgr = (SummaryMetadata, Vec<SummaryComponent>, Option<Differential>);

fn read_pkgr(bytes: &[u8]) -> Result<ReadPkgr, PackageError> {
    let parsed = BuiltDefinition::read(bytes).map_err(|e| definition_error("pkgr.yaml", e))?;
    let components = parsed
        .components
        .into_iter()
        .map(|c| SummaryComponent {
            name: c.name,
            images: c.images.into_iter().map(|i| i.reference).collect(),
        })
        .collect();
    let m = parsed.metadata;
    let metadata = SummaryMetadata {
        name: m.name,
        version: m.version,
        architecture: Some(m.architecture),
        description: m.description,
    };
    Ok((metadata, components, parsed.differential))
}

pub(crate) fn definition_error(name: &'static str, unreadable: Unreadable) -> PackageError {
    match unreadable {
        Unreadable::TooDeep { line } => PackageError::DefinitionTooDeep { name, line },
        Unreadable::Parse(source) => PackageError::BadDefinition { name, source },
        Unreadable::InvalidName { name: read } => PackageError::InvalidName {
            file: name,
            shown_name: super::reader::shown(read.as_bytes()),
        },
    }
}

/// One summary per entry of `index.json`, and every blob the entries reach.
fn summarize_images(
    index: &LayoutIndex,
    docs: &Docs,
    components: &[SummaryComponent],
) -> Result<(Vec<SummaryImage>, Users), PackageError> {
    let mut users = Users::new();
    let mut images = Vec::new();
    let parsed = ParsedManifests::new(docs);
    // Entries that name one digest (tags of one image) share one walk.
    let mut walked: HashMap<&Digest, Arc<BTreeMap<Digest, u64>>> = HashMap::new();
    for entry in &index.manifests {
        let reference = entry.reference().unwrap_or("(unnamed)").to_owned();
        let manifest = parsed
            .get(&entry.digest)
            .ok_or_else(|| PackageError::MissingManifest {
                reference: reference.clone(),
                digest: entry.digest.clone(),
            })?;
        let blobs = match walked.get(&entry.digest) {
            Some(blobs) => blobs.clone(),
            None => {
                let blobs = Arc::new(reachable(entry.descriptor(), &parsed).map_err(|source| {
                    PackageError::Walk {
                        reference: reference.clone(),
                        source,
                    }
                })?);
                walked.insert(&entry.digest, blobs.clone());
                blobs
            }
        };
        for (digest, size) in blobs.iter() {
            users.entry(digest.clone()).or_insert((*size, 0)).1 += 1;
        }
        images.push(summarize_image(
            entry, reference, manifest, blobs, docs, components,
        ));
    }
    Ok((images, users))
}

fn summarize_image(
    entry: &IndexEntry,
    reference: String,
    manifest: &Manifest,
    blobs: Arc<BTreeMap<Digest, u64>>,
    docs: &Docs,
    components: &[SummaryComponent],
) -> SummaryImage {
    let platform = entry
        .platform
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| config_platform(manifest, docs));
    let component = components
        .iter()
        .find(|c| c.images.contains(&reference))
        .map(|c| c.name.clone());
    SummaryImage {
        media_type: entry.media_type.clone(),
        digest: entry.digest.clone(),
        kind: manifest.kind(),
        platform,
        component,
        reference,
        subject: entry.link().map(|(subject, _)| subject.to_owned()),
        relation: entry.link().map(|(_, relation)| relation.to_owned()),
        from_index: entry.from_index().map(str::to_owned),
        size: blobs.values().fold(0u64, |a, b| a.saturating_add(*b)),
        blobs,
    }
}

fn totals(images: &[SummaryImage], users: &Users) -> Totals {
    Totals {
        images: images.len(),
        blobs: users.len(),
        bytes: users
            .values()
            .fold(0, |a, (size, _)| a.saturating_add(*size)),
        shared_bytes: users
            .values()
            .filter(|(_, n)| *n > 1)
            .fold(0, |a, (size, _)| a.saturating_add(*size)),
    }
}

/// Every blob of an image (manifests, configs, layers) with its size, each once.
fn reachable(
    root: Descriptor,
    parsed: &ParsedManifests<'_>,
) -> Result<BTreeMap<Digest, u64>, WalkError> {
    let mut blobs = BTreeMap::new();
    let mut walk = Walk::from_root(root)?;
    while let Some(node) = walk.next_node() {
        parsed.spend(1)?;
        blobs.insert(node.digest().clone(), node.descriptor.size);
        if node.role != Role::Manifest {
            continue;
        }
        if let Some(manifest) = parsed.get(node.digest()) {
            walk.descend(&node, manifest)?;
        }
    }
    Ok(blobs)
}

fn config_platform(manifest: &Manifest, docs: &Docs) -> Option<String> {
    if manifest.kind() != Kind::ContainerImage {
        return None;
    }
    let config = docs.get(&manifest.config.as_ref()?.digest)?;
    let p: ConfigPlatform = serde_json::from_slice(config).ok()?;
    if p.os.is_empty() || p.architecture.is_empty() {
        return None;
    }
    Some(match p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{digests, fixture_dir, write_fixture_package};

    #[test]
    fn summarizes_kinds_platforms_sizes_and_sharing() {
        let dir = fixture_dir();
        let package = write_fixture_package(dir.path(), true);
        let summary = summarize(&package).unwrap();
        assert_eq!(summary.format, "pkgr");
        assert_eq!(summary.metadata.name, "fixture");
        let images: Vec<(&str, Kind, Option<&str>, Option<&str>)> = summary
            .images
            .iter()
            .map(|i| {
                (
                    i.reference.as_str(),
                    i.kind,
                    i.platform.as_deref(),
                    i.component.as_deref(),
                )
            })
            .collect();
        let multi = format!("registry.test/multi@{}", digests::MULTI);
        assert_eq!(
            images,
            vec![
                (
                    "registry.test/team/web:1.0",
                    Kind::ContainerImage,
                    Some("linux/amd64"),
                    Some("web")
                ),
                (
                    "registry.test/charts/demo:0.1.0",
                    Kind::HelmChart,
                    None,
                    Some("tools")
                ),
                (multi.as_str(), Kind::Index, None, Some("tools")),
            ]
        );
        // Sizes: every blob an image reaches, each once; the totals count each blob
        // once across images, and the base layer and config shared by web and the
        // index's amd64 image are the shared bytes.
        let on_disk = |d: &Digest| {
            std::fs::metadata(crate::testing::blob_path(dir.path(), &d.to_string()))
                .unwrap()
                .len()
        };
        let files: Vec<Digest> = std::fs::read_dir(dir.path().join("images/blobs/sha256"))
            .unwrap()
            .map(|e| Digest::from_hex(&e.unwrap().file_name().to_string_lossy()).unwrap())
            .collect();
        assert_eq!(summary.totals.blobs, 13);
        assert_eq!(summary.totals.bytes, files.iter().map(on_disk).sum::<u64>());
        let web = &summary.images[0];
        let multi = &summary.images[2];
        assert_eq!(
            summary.totals.shared_bytes,
            web.size + multi.size + summary.images[1].size - summary.totals.bytes
        );
    }
}
