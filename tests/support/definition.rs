//! The `pkgr.yaml` a test defines, built the way a user writes one: a name, and
//! components that list images. Every package a test defines is for amd64.

/// A `kind: PkgrPackage` definition. Its YAML keeps the order a user writes:
/// metadata, `withSignatures`, then components.
#[derive(Clone, Debug)]
pub struct Definition {
    name: String,
    version: Option<String>,
    description: Option<String>,
    with_signatures: bool,
    components: Vec<(String, Vec<String>)>,
}

impl Definition {
    /// A package named `name` for amd64, with no component yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: None,
            description: None,
            with_signatures: false,
            components: Vec::new(),
        }
    }

    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.to_owned());
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_owned());
        self
    }

    /// Sets `withSignatures: true` when `on`.
    pub fn with_signatures(mut self, on: bool) -> Self {
        self.with_signatures = on;
        self
    }

    /// Adds `reference` to the last component, or to a first one named `a`.
    pub fn image(self, reference: impl AsRef<str>) -> Self {
        self.images([reference])
    }

    /// Adds `references`, in order, to the last component, or to a first one named `a`.
    pub fn images<I>(mut self, references: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        if self.components.is_empty() {
            self.components.push(("a".to_owned(), Vec::new()));
        }
        let (_, images) = self.components.last_mut().unwrap();
        images.extend(references.into_iter().map(|r| r.as_ref().to_owned()));
        self
    }

    /// Adds a component listing `images`, in order.
    pub fn component<I>(mut self, name: &str, images: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let images = images.into_iter().map(|i| i.as_ref().to_owned()).collect();
        self.components.push((name.to_owned(), images));
        self
    }

    pub fn to_yaml(&self) -> String {
        let mut text = format!("kind: PkgrPackage\nmetadata:\n  name: {}\n", self.name);
        if let Some(version) = &self.version {
            text.push_str(&format!("  version: {version}\n"));
        }
        text.push_str("  architecture: amd64\n");
        if let Some(description) = &self.description {
            text.push_str(&format!("  description: {description}\n"));
        }
        if self.with_signatures {
            text.push_str("withSignatures: true\n");
        }
        text.push_str("components:\n");
        for (name, images) in &self.components {
            text.push_str(&format!("  - name: {name}\n    images:\n"));
            for image in images {
                text.push_str(&format!("      - {image}\n"));
            }
        }
        text
    }
}
