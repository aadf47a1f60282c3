//! The two kinds of definition file, `PkgrPackage` (read strictly) and Zarf's
//! `ZarfPackageConfig` (only its images, the rest tolerated and warned about), read
//! into one shape that is not yet checked. A `PkgrPackage` image entry is a reference,
//! or a map `{image: REF, platformFromIndex: true}`.

use serde::Deserialize;

use super::{DefinitionError, Document};

/// A definition as written, whichever kind of file it came from.
pub(super) struct Written {
    pub metadata: WrittenMetadata,
    /// Each component's name and image entries, in file order.
    pub components: Vec<(String, Vec<WrittenImage>)>,
    /// Features of a Zarf package that pkgr does not carry, one sentence each.
    pub warnings: Vec<String>,
    pub with_signatures: bool,
}

/// The metadata fields both kinds share, as a Zarf file is read (a `PkgrPackage` is
/// read strictly, through [`PkgrMetadata`]). serde names the struct it expected in
/// its messages, and a Zarf file's have always said `ZarfMetadata`.
#[derive(Deserialize)]
#[serde(expecting = "struct ZarfMetadata")]
pub(super) struct WrittenMetadata {
    pub name: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PkgrFile {
    kind: String,
    metadata: PkgrMetadata,
    #[serde(default, rename = "withSignatures")]
    with_signatures: bool,
    #[serde(default)]
    components: Vec<PkgrComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PkgrMetadata {
    name: String,
    version: Option<String>,
    architecture: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PkgrComponent {
    name: String,
    #[serde(default)]
    images: Vec<WrittenImage>,
}

/// One image entry as written: its reference, and whether a reference pinned to an
/// index digest takes the package's platform from it.
pub(super) struct WrittenImage {
    pub written: String,
    pub platform_from_index: bool,
}

impl From<String> for WrittenImage {
    fn from(written: String) -> Self {
        Self {
            written,
            platform_from_index: false,
        }
    }
}

/// The map form of an image entry, read strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageMap {
    image: String,
    #[serde(default, rename = "platformFromIndex")]
    platform_from_index: bool,
}

impl<'de> Deserialize<'de> for WrittenImage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ImageVisitor)
    }
}

/// Reads either form of an image entry. A plain scalar that YAML reads as a number or
/// a boolean is taken as its text, as the string form always took it; an empty entry
/// is an empty reference, which the checks name.
struct ImageVisitor;

impl<'de> serde::de::Visitor<'de> for ImageVisitor {
    type Value = WrittenImage;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an image reference, or a map with `image` and `platformFromIndex`")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.to_owned().into())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.to_string().into())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.to_string().into())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.to_string().into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.to_string().into())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(String::new().into())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(String::new().into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let entry = ImageMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(WrittenImage {
            written: entry.image,
            platform_from_index: entry.platform_from_index,
        })
    }
}

/// Zarf's schema is large: only what pkgr uses is named, the rest is tolerated.
#[derive(Deserialize)]
struct ZarfFile {
    metadata: WrittenMetadata,
    #[serde(default)]
    components: Vec<ZarfComponent>,
}

#[derive(Deserialize)]
struct ZarfComponent {
    name: String,
    #[serde(default)]
    images: Vec<String>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
struct KindOnly {
    kind: Option<String>,
}

/// Zarf component features that pkgr knows of but does not carry.
const ZARF_UNCARRIED: &[&str] = &[
    "charts",
    "manifests",
    "files",
    "repos",
    "dataInjections",
    "actions",
];

/// Reads the document by its `kind`.
pub(super) fn read(document: &Document) -> Result<Written, DefinitionError> {
    let kind: KindOnly = from_yaml(document)?;
    match kind.kind.as_deref() {
        Some("PkgrPackage") => from_yaml(document).map(pkgr),
        Some("ZarfPackageConfig") => from_yaml(document).map(zarf),
        Some(other) => Err(document.error(
            document.at("kind:"),
            Some("kind"),
            format!(
                "unknown kind `{other}`; expected `PkgrPackage` (or a Zarf `ZarfPackageConfig`)"
            ),
        )),
        None => Err(document.error(None, Some("kind"), "missing `kind: PkgrPackage`".into())),
    }
}

fn pkgr(file: PkgrFile) -> Written {
    debug_assert_eq!(file.kind, "PkgrPackage");
    let PkgrMetadata {
        name,
        version,
        architecture,
        description,
    } = file.metadata;
    Written {
        metadata: WrittenMetadata {
            name,
            version,
            architecture,
            description,
        },
        components: file
            .components
            .into_iter()
            .map(|c| (c.name, c.images))
            .collect(),
        warnings: Vec::new(),
        with_signatures: file.with_signatures,
    }
}

fn zarf(file: ZarfFile) -> Written {
    let mut warnings = Vec::new();
    let mut components = Vec::new();
    for component in file.components {
        for feature in ZARF_UNCARRIED {
            if component.other.contains_key(*feature) {
                warnings.push(format!(
                    "component `{}` has `{feature}`, which pkgr does not carry; only its images are packaged",
                    component.name
                ));
            }
        }
        let images = component.images.into_iter().map(WrittenImage::from);
        components.push((component.name, images.collect()));
    }
    Written {
        metadata: file.metadata,
        components,
        warnings,
        with_signatures: false,
    }
}

/// Deserializes the whole document, an error pointing at the line serde names.
fn from_yaml<T: serde::de::DeserializeOwned>(document: &Document) -> Result<T, DefinitionError> {
    serde_yaml_ng::from_str(document.text).map_err(|err| {
        let at = err.location().map(|loc| (loc.line(), loc.column()));
        // serde_yaml_ng appends "at line X column Y" itself; keep only the first clause.
        let message = err.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        document.error(at, None, message)
    })
}
