//! The package definition: `pkgr.yaml` (and the images part of a Zarf `zarf.yaml`),
//! parsed and fully validated before anything touches the network. Parsing takes
//! three steps: `shape` reads either kind of file into one shape, then `check` checks
//! its metadata and its components.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::Reference;

use crate::nesting::{check_flow_depth, TooDeep, MAX_FLOW_DEPTH};

mod check;
mod shape;

pub use check::is_valid_name;

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

/// One image entry of the definition: its reference as written, and normalized.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub written: String,
    pub reference: Reference,
    /// `platformFromIndex: true` (or `--platform-from-index`): a reference pinned to an
    /// index digest takes the package's platform from that index instead of being
    /// refused.
    pub platform_from_index: bool,
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

impl Definition {
    /// `--platform-from-index`: every image entry takes its platform from a pinned index.
    pub fn take_platforms_from_indexes(&mut self) {
        for image in self.components.iter_mut().flat_map(|c| &mut c.images) {
            image.platform_from_index = true;
        }
    }
}

impl ImageRef {
    /// The fully qualified reference, e.g. `docker.io/library/nginx:1.25`.
    pub fn full(&self) -> String {
        self.reference.whole()
    }
}

/// A definition that cannot be used: the file, and every fault found in it.
#[derive(Debug, thiserror::Error)]
pub struct DefinitionError {
    pub path: PathBuf,
    /// At least one; all that the checks found, in the order of the file.
    pub faults: Vec<Fault>,
}

/// One fault of a definition, pointing at its line, column and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// 1-based line and column, where known.
    pub at: Option<(usize, usize)>,
    pub field: Option<String>,
    pub message: String,
}

impl crate::hint::Hint for DefinitionError {}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [fault] = self.faults.as_slice() {
            return self.write_fault(f, fault);
        }
        write!(
            f,
            "{} has {} problems:",
            self.path.display(),
            self.faults.len()
        )?;
        for fault in &self.faults {
            write!(f, "\n  ")?;
            self.write_fault(f, fault)?;
        }
        Ok(())
    }
}

impl DefinitionError {
    fn one(path: &Path, message: String) -> Self {
        Self {
            path: path.to_owned(),
            faults: vec![Fault {
                at: None,
                field: None,
                message,
            }],
        }
    }

    /// `path:line:column: `field`: message`, as compilers point at a fault.
    fn write_fault(&self, f: &mut fmt::Formatter<'_>, fault: &Fault) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = fault.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &fault.field {
            write!(f, ": `{field}`")?;
        }
        write!(f, ": {}", fault.message)
    }
}

/// Finds the definition in `dir`: `pkgr.yaml`, else `zarf.yaml`.
pub fn find_in(dir: &Path) -> Result<PathBuf, DefinitionError> {
    for name in ["pkgr.yaml", "zarf.yaml"] {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DefinitionError::one(
        &dir.join("pkgr.yaml"),
        "no pkgr.yaml (or zarf.yaml) in this directory".into(),
    ))
}

/// Reads and validates the definition at `path`. `architecture` overrides the file's.
pub fn load(path: &Path, architecture: Option<&str>) -> Result<Definition, DefinitionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| DefinitionError::one(path, format!("cannot read the file: {err}")))?;
    parse(path, &text, architecture)
}

/// Parses and checks the definition `text`, read from `path` (named in its errors).
/// `architecture` overrides the file's.
pub fn parse(
    path: &Path,
    text: &str,
    architecture: Option<&str>,
) -> Result<Definition, DefinitionError> {
    let document = Document { path, text };
    check_flow_depth(text.as_bytes()).map_err(|TooDeep { line, column }| {
        document.error(
            Some((line, column)),
            None,
            format!(
                "nested more than {MAX_FLOW_DEPTH} levels deep, more than any definition needs"
            ),
        )
    })?;
    let written = shape::read(&document)?;
    // Both checked in full, so that one run names every fault.
    let metadata = check::metadata(&document, written.metadata, architecture);
    let components = check::components(&document, written.components);
    let (metadata, components) = match (metadata, components) {
        (Ok(metadata), Ok(components)) => (metadata, components),
        (metadata, components) => {
            let mut faults = metadata.err().unwrap_or_default();
            faults.extend(components.err().unwrap_or_default());
            faults.sort_by_key(|fault| fault.at);
            return Err(DefinitionError {
                path: path.to_owned(),
                faults,
            });
        }
    };
    let mut warnings = written.warnings;
    warnings.sort();
    Ok(Definition {
        metadata,
        components,
        warnings,
        with_signatures: written.with_signatures,
    })
}

/// The definition file being parsed: what its errors point into.
struct Document<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Document<'_> {
    fn error(
        &self,
        at: Option<(usize, usize)>,
        field: Option<&str>,
        message: String,
    ) -> DefinitionError {
        DefinitionError {
            path: self.path.to_owned(),
            faults: vec![self.fault(at, field, message)],
        }
    }

    fn fault(&self, at: Option<(usize, usize)>, field: Option<&str>, message: String) -> Fault {
        Fault {
            at,
            field: field.map(str::to_owned),
            message,
        }
    }

    /// The line and column of the first occurrence of `needle`.
    fn at(&self, needle: &str) -> Option<(usize, usize)> {
        self.nth_at(needle, 1)
    }

    /// The 1-based line and column of `needle` on the `nth` line that contains it.
    fn nth_at(&self, needle: &str, nth: usize) -> Option<(usize, usize)> {
        self.text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                line.find(needle)
                    .map(|at| (i + 1, line[..at].chars().count() + 1))
            })
            .nth(nth.saturating_sub(1))
    }
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
        assert_eq!(line_of_only(&err), Some(4), "{err}");
    }

    #[test]
    fn unknown_field_names_the_line() {
        let err = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\n  colour: red\ncomponents: []\n",
        )
        .unwrap_err();
        assert_eq!(line_of_only(&err), Some(4), "{err}");
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn bad_reference_names_line_and_field() {
        let err = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\ncomponents:\n  - name: web\n    images:\n      - ok:1\n      - Bad Ref!\n",
        )
        .unwrap_err();
        assert_eq!(err.faults.len(), 1, "{err}");
        assert_eq!(err.faults[0].at, Some((8, 9)));
        assert_eq!(
            err.faults[0].field.as_deref(),
            Some("components[0].images[1]")
        );
    }

    #[test]
    fn every_fault_is_named_at_once_in_file_order_with_line_and_column() {
        let err = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: Demo_1\n  version: \"1 0\"\ncomponents:\n  - name: web\n    images:\n      - ok:1\n      - Bad Ref!\n  - name: Web\n    images:\n      - also bad!\n",
        )
        .unwrap_err();
        let at: Vec<_> = err
            .faults
            .iter()
            .map(|f| (f.at, f.field.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            at,
            [
                (Some((3, 9)), "metadata.name".to_owned()),
                (Some((4, 13)), "metadata.version".to_owned()),
                (Some((9, 9)), "components[0].images[1]".to_owned()),
                (Some((10, 11)), "components[1].name".to_owned()),
                (Some((12, 9)), "components[1].images[0]".to_owned()),
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.starts_with("pkgr.yaml has 5 problems:\n  pkgr.yaml:3:9: `metadata.name`: `Demo_1` is not a valid package name"), "{text}");
        assert_eq!(text.lines().count(), 6, "{text}");
    }

    #[test]
    fn an_image_entry_may_be_a_map_that_takes_the_platform_from_an_index() {
        let def = parse_str(
            "kind: PkgrPackage\nmetadata:\n  name: demo\ncomponents:\n  - name: web\n    images:\n      - ok:1\n      - image: ok@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n        platformFromIndex: true\n      - {image: \"ok:2\"}\n      - 1234\n",
        )
        .unwrap();
        let images: Vec<(String, bool)> = def.components[0]
            .images
            .iter()
            .map(|i| (i.full(), i.platform_from_index))
            .collect();
        assert_eq!(
            images,
            [
                ("docker.io/library/ok:1".to_owned(), false),
                (
                    format!("docker.io/library/ok@sha256:{}", "a".repeat(64)),
                    true
                ),
                ("docker.io/library/ok:2".to_owned(), false),
                ("docker.io/library/1234:latest".to_owned(), false),
            ]
        );
        let mut def = def;
        def.take_platforms_from_indexes();
        assert!(def.components[0]
            .images
            .iter()
            .all(|i| i.platform_from_index));
    }

    #[test]
    fn a_bad_image_map_is_a_fault_at_its_line_and_column() {
        let head = "kind: PkgrPackage\nmetadata:\n  name: demo\ncomponents:\n  - name: web\n    images:\n      - ok:1\n";
        for (entry, at, message) in [
            (
                "      - image: ok:2\n        platform: amd64\n",
                (9, 9),
                "components[0].images[1]: unknown field `platform`, expected `image` or `platformFromIndex`",
            ),
            (
                "      - image: ok:2\n        platformFromIndex: yes\n",
                (9, 28),
                "components[0].images[1].platformFromIndex: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "      - platformFromIndex: true\n",
                (8, 9),
                "components[0].images[1]: missing field `image`",
            ),
        ] {
            let err = parse_str(&format!("{head}{entry}")).unwrap_err();
            assert_eq!(err.faults.len(), 1, "{err}");
            assert_eq!(err.faults[0].at, Some(at), "{err}");
            assert_eq!(err.faults[0].message, message, "{err}");
        }
        let err = parse_str(&format!(
            "{head}      - image: Bad Ref!\n        platformFromIndex: true\n"
        ))
        .unwrap_err();
        assert_eq!(err.faults[0].at, Some((8, 16)), "{err}");
        assert_eq!(
            err.faults[0].field.as_deref(),
            Some("components[0].images[1]")
        );
    }

    #[test]
    fn bad_name_is_refused() {
        let err = parse_str("kind: PkgrPackage\nmetadata:\n  name: Demo_1\ncomponents: []\n")
            .unwrap_err();
        // The empty package is a second fault, after the name's.
        assert_eq!(err.faults[0].field.as_deref(), Some("metadata.name"));
        assert_eq!(err.faults[0].at, Some((3, 9)));
        assert_eq!(err.faults[1].field.as_deref(), Some("components"));
    }

    fn line_of_only(err: &DefinitionError) -> Option<usize> {
        assert_eq!(err.faults.len(), 1, "{err}");
        err.faults[0].at.map(|(line, _)| line)
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

    #[test]
    fn serde_names_the_struct_it_expected_for_either_kind() {
        for (text, expected) in [
            ("kind: PkgrPackage\nmetadata: 5\n", "PkgrMetadata"),
            ("kind: ZarfPackageConfig\nmetadata: 5\n", "ZarfMetadata"),
        ] {
            let err = parse_str(text).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "pkgr.yaml:2:11: metadata: invalid type: integer `5`, expected struct {expected}"
                )
            );
        }
    }
}
