//! The checks a definition's metadata and components pass before anything touches
//! the network: names, version, architecture, image references, and at least one
//! image. Every check runs, and each fault found points at its line, column and field.

use std::collections::HashSet;

use super::shape::{WrittenImage, WrittenMetadata};
use super::{host_architecture, Component, Document, Fault, ImageRef, Metadata};
use crate::reference::parse_reference;

/// Checks the name and version, and settles the architecture: `architecture` if
/// given, else the file's, else this machine's.
pub(super) fn metadata(
    document: &Document,
    written: WrittenMetadata,
    architecture: Option<&str>,
) -> Result<Metadata, Vec<Fault>> {
    let WrittenMetadata {
        name,
        version,
        architecture: file_arch,
        description,
    } = written;
    let mut faults = Vec::new();
    if !is_valid_name(&name) {
        faults.push(document.fault(
            document.at(&name),
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
            faults.push(document.fault(
                document.at(version),
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
        faults.push(document.fault(
            document.at(&architecture),
            Some("metadata.architecture"),
            format!(
                "`{architecture}` is not a valid architecture (for example amd64, arm64 or arm/v7)"
            ),
        ));
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(Metadata {
        name,
        version,
        architecture,
        description,
    })
}

/// Checks each component's name (valid, and not taken twice) and image references,
/// and that the package lists at least one image.
pub(super) fn components(
    document: &Document,
    written: Vec<(String, Vec<WrittenImage>)>,
) -> Result<Vec<Component>, Vec<Fault>> {
    let mut seen_components = HashSet::new();
    let mut validated = Vec::new();
    let mut faults = Vec::new();
    let mut listed = 0;
    for (index, (component_name, images)) in written.into_iter().enumerate() {
        let field = format!("components[{index}].name");
        if !is_valid_name(&component_name) {
            faults.push(document.fault(
                document.at(&component_name),
                Some(&field),
                format!("`{component_name}` is not a valid component name (use lowercase letters, digits and '-')"),
            ));
        } else if !seen_components.insert(component_name.clone()) {
            faults.push(document.fault(
                document.nth_at(&format!("name: {component_name}"), 2),
                Some(&field),
                format!("component `{component_name}` is defined twice"),
            ));
        }
        listed += images.len();
        let mut refs = Vec::new();
        for (image_index, image) in images.into_iter().enumerate() {
            let field = format!("components[{index}].images[{image_index}]");
            let WrittenImage {
                written,
                platform_from_index,
            } = image;
            match parse_reference(&written) {
                Ok(reference) => refs.push(ImageRef {
                    written,
                    reference,
                    platform_from_index,
                }),
                Err(e) => {
                    faults.push(document.fault(document.at(&written), Some(&field), e.to_string()))
                }
            }
        }
        validated.push(Component {
            name: component_name,
            images: refs,
        });
    }
    if listed == 0 {
        faults.push(document.fault(
            document.at("components:"),
            Some("components"),
            "the package lists no images".into(),
        ));
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(validated)
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
