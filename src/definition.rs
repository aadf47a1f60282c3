//! The package definition: `pkgr.yaml` (and the images part of a Zarf `zarf.yaml`),
//! parsed and fully validated before anything touches the network.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::Reference;
use serde::Deserialize;

use crate::nesting::{check_flow_depth, TooDeep, MAX_FLOW_DEPTH};
use crate::reference::parse_reference;

/// A validated package definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub metadata: Metadata,
    pub components: Vec<Component>,
    /// Features of a Zarf package that pkgr does not carry, one sentence each.
    pub warnings: Vec<String>,
    /// `withSignatures: true`: bring each image's signatures, attestations, SBOMs and
    /// referrers (as `--with-signatures` does).
    pub with_signatures: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Metadata {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub images: Vec<ImageRef>,
}

/// One image line of the definition: as written, and normalized.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub written: String,
    pub reference: Reference,
}

impl Definition {
    /// Every registry host the definition pulls from.
    pub fn registries(&self) -> std::collections::BTreeSet<String> {
        self.components
            .iter()
            .flat_map(|c| &c.images)
            .map(|i| i.reference.registry().to_owned())
            .collect()
    }
}

impl ImageRef {
    /// The fully qualified reference, e.g. `docker.io/library/nginx:1.25`.
    pub fn full(&self) -> String {
        self.reference.whole()
    }
}

/// A definition that cannot be used, pointing at the file, line and field.
#[derive(Debug, thiserror::Error)]
pub struct DefinitionError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl crate::hint::Hint for DefinitionError {}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
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
    images: Vec<String>,
}

/// Zarf's schema is large: only what pkgr uses is named, the rest is tolerated.
#[derive(Deserialize)]
struct ZarfFile {
    metadata: ZarfMetadata,
    #[serde(default)]
    components: Vec<ZarfComponent>,
}

#[derive(Deserialize)]
struct ZarfMetadata {
    name: String,
    version: Option<String>,
    architecture: Option<String>,
    description: Option<String>,
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

/// Finds the definition in `dir`: `pkgr.yaml`, else `zarf.yaml`.
pub fn find_in(dir: &Path) -> Result<PathBuf, DefinitionError> {
    for name in ["pkgr.yaml", "zarf.yaml"] {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DefinitionError {
        path: dir.join("pkgr.yaml"),
        line: None,
        field: None,
        message: "no pkgr.yaml (or zarf.yaml) in this directory".into(),
    })
}

/// Reads and validates the definition at `path`. `architecture` overrides the file's.
pub fn load(path: &Path, architecture: Option<&str>) -> Result<Definition, DefinitionError> {
    let text = std::fs::read_to_string(path).map_err(|err| DefinitionError {
        path: path.to_owned(),
        line: None,
        field: None,
        message: format!("cannot read the file: {err}"),
    })?;
    parse(path, &text, architecture)
}

pub fn parse(
    path: &Path,
    text: &str,
    architecture: Option<&str>,
) -> Result<Definition, DefinitionError> {
    let err_at = |line: Option<usize>, field: Option<&str>, message: String| DefinitionError {
        path: path.to_owned(),
        line,
        field: field.map(str::to_owned),
        message,
    };
    let yaml_err = |err: serde_yaml_ng::Error| {
        let line = err.location().map(|loc| loc.line());
        // serde_yaml_ng appends "at line X column Y" itself; keep only the first clause.
        let message = err.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        err_at(line, None, message)
    };

    check_flow_depth(text.as_bytes()).map_err(|TooDeep { line }| {
        err_at(
            Some(line),
            None,
            format!(
                "nested more than {MAX_FLOW_DEPTH} levels deep, more than any definition needs"
            ),
        )
    })?;
    let kind: KindOnly = serde_yaml_ng::from_str(text).map_err(yaml_err)?;
    let mut with_signatures = false;
    let (meta, components, mut warnings) = match kind.kind.as_deref() {
        Some("PkgrPackage") => {
            let file: PkgrFile = serde_yaml_ng::from_str(text).map_err(yaml_err)?;
            debug_assert_eq!(file.kind, "PkgrPackage");
            with_signatures = file.with_signatures;
            let meta = (
                file.metadata.name,
                file.metadata.version,
                file.metadata.architecture,
                file.metadata.description,
            );
            let components = file
                .components
                .into_iter()
                .map(|c| (c.name, c.images))
                .collect::<Vec<_>>();
            (meta, components, Vec::new())
        }
        Some("ZarfPackageConfig") => {
            let file: ZarfFile = serde_yaml_ng::from_str(text).map_err(yaml_err)?;
            let meta = (
                file.metadata.name,
                file.metadata.version,
                file.metadata.architecture,
                file.metadata.description,
            );
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
                components.push((component.name, component.images));
            }
            (meta, components, warnings)
        }
        Some(other) => {
            return Err(err_at(
                line_of(text, "kind:"),
                Some("kind"),
                format!(
                "unknown kind `{other}`; expected `PkgrPackage` (or a Zarf `ZarfPackageConfig`)"
            ),
            ))
        }
        None => {
            return Err(err_at(
                None,
                Some("kind"),
                "missing `kind: PkgrPackage`".into(),
            ))
        }
    };

    let (name, version, file_arch, description) = meta;
    if !is_valid_name(&name) {
        return Err(err_at(
            line_of(text, &name),
            Some("metadata.name"),
            format!("`{name}` is not a valid package name (use lowercase letters, digits and '-', starting with a letter or digit)"),
        ));
    }
    if let Some(version) = &version {
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-+_".contains(c))
        {
            return Err(err_at(
                line_of(text, version),
                Some("metadata.version"),
                format!("`{version}` is not a valid version (use letters, digits, '.', '-', '+' and '_')"),
            ));
        }
    }
    let architecture = architecture
        .map(str::to_owned)
        .or(file_arch)
        .unwrap_or_else(host_architecture);
    if architecture.is_empty()
        || !architecture
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '/')
    {
        return Err(err_at(
            line_of(text, &architecture),
            Some("metadata.architecture"),
            format!(
                "`{architecture}` is not a valid architecture (for example amd64, arm64 or arm/v7)"
            ),
        ));
    }

    let mut seen_components = std::collections::HashSet::new();
    let mut validated = Vec::new();
    for (index, (component_name, images)) in components.into_iter().enumerate() {
        let field = format!("components[{index}].name");
        if !is_valid_name(&component_name) {
            return Err(err_at(
                line_of(text, &component_name),
                Some(&field),
                format!("`{component_name}` is not a valid component name (use lowercase letters, digits and '-')"),
            ));
        }
        if !seen_components.insert(component_name.clone()) {
            return Err(err_at(
                nth_line_of(text, &format!("name: {component_name}"), 2),
                Some(&field),
                format!("component `{component_name}` is defined twice"),
            ));
        }
        let mut refs = Vec::new();
        for (image_index, written) in images.into_iter().enumerate() {
            let field = format!("components[{index}].images[{image_index}]");
            let reference = parse_reference(&written)
                .map_err(|e| err_at(line_of(text, &written), Some(&field), e.to_string()))?;
            refs.push(ImageRef { written, reference });
        }
        validated.push(Component {
            name: component_name,
            images: refs,
        });
    }
    if validated.iter().all(|c| c.images.is_empty()) {
        return Err(err_at(
            line_of(text, "components:"),
            Some("components"),
            "the package lists no images".into(),
        ));
    }
    warnings.sort();
    Ok(Definition {
        metadata: Metadata {
            name,
            version,
            architecture,
            description,
        },
        components: validated,
        warnings,
        with_signatures,
    })
}

/// A package name as pkgr and Zarf accept it: it becomes part of a file name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// The architecture of this machine, in OCI's words.
pub fn host_architecture() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
    .to_owned()
}

fn line_of(text: &str, needle: &str) -> Option<usize> {
    nth_line_of(text, needle, 1)
}

/// The 1-based line of the `nth` line that contains `needle`.
fn nth_line_of(text: &str, needle: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .nth(nth.saturating_sub(1))
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Definition, DefinitionError> {
        parse(Path::new("pkgr.yaml"), text, None)
    }

    #[test]
    fn reads_a_valid_definition() {
        let def = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\n  architecture: arm64\ncomponents:\n  - name: web\n    images:\n      - nginx:1.25\n",
        )
        .unwrap();
        assert_eq!(def.metadata.architecture, "arm64");
        assert_eq!(
            def.components[0].images[0].full(),
            "docker.io/library/nginx:1.25"
        );
    }

    #[test]
    fn with_signatures_is_read_at_package_level_and_must_be_a_boolean() {
        let images = "components:\n  - name: web\n    images:\n      - nginx:1.25\n";
        let head = "kind: PkgrPackage\nmetadata:\n  name: demo\n";
        assert!(
            !parse_str(&format!("{head}{images}"))
                .unwrap()
                .with_signatures
        );
        let def = parse_str(&format!("{head}withSignatures: true\n{images}")).unwrap();
        assert!(def.with_signatures);
        let err = parse_str(&format!("{head}withSignatures: maybe\n{images}")).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
    }

    #[test]
    fn unknown_field_names_the_line() {
        let err = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\n  colour: red\ncomponents: []\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn bad_reference_names_line_and_field() {
        let err = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\ncomponents:\n  - name: web\n    images:\n      - ok:1\n      - Bad Ref!\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(8));
        assert_eq!(err.field.as_deref(), Some("components[0].images[1]"));
    }

    #[test]
    fn bad_name_is_refused() {
        let err = parse_str("kind: PkgrPackage\nmetadata:\n  name: Demo_1\ncomponents: []\n")
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("metadata.name"));
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn zarf_images_are_read_and_charts_warned() {
        let def = parse(
            Path::new("zarf.yaml"),
            "kind: ZarfPackageConfig\nmetadata:\n  name: z\n  architecture: amd64\ncomponents:\n  - name: a\n    required: true\n    charts:\n      - name: x\n    images:\n      - registry.local/app:1\n",
            None,
        )
        .unwrap();
        assert_eq!(def.components[0].images.len(), 1);
        assert_eq!(def.warnings.len(), 1);
        assert!(def.warnings[0].contains("charts"));
    }
}
