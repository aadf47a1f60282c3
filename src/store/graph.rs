//! The graph check of an OCI layout: every descriptor reachable from `index.json` is
//! present with the size it declares, and every manifest among them can be read and
//! followed. The seal stops at the first fault; the scan of a package lists them all.
//! Where the blobs are (a directory, a package's tar) is the caller's [`Blobs`], and so
//! is which configs and layers a differential package leaves out: those are expected
//! on the target, not missing (a manifest is never left out).

use std::collections::BTreeMap;

use super::layout::LayoutIndex;
use crate::digest::Digest;
use crate::manifest::walk::{Node, Role, Walk, WalkError, LIMITS};
use crate::manifest::Manifest;

/// How many faults the check looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// Stops at the first.
    First,
    /// Goes on past each one; a node that is missing, of the wrong size or unreadable
    /// is not followed. A graph that cannot be followed stops the walk all the same.
    All,
}

/// The layout's blobs, as the check reads them.
pub trait Blobs {
    /// Why a manifest could not be read.
    type Unreadable;
    /// The size of the blob, or `None` when the layout lacks it.
    fn size(&self, digest: &Digest) -> Option<u64>;
    /// The manifest stored under `digest`, parsed.
    fn manifest(&self, digest: &Digest) -> Result<Manifest, Self::Unreadable>;
    /// The size of a config or layer the layout leaves out on purpose (a differential
    /// package's base holds it), or `None` when it is not one of those.
    fn left_out(&self, _digest: &Digest) -> Option<u64> {
        None
    }
}

/// One thing wrong with the graph, named by the `index.json` entry that reached it.
#[derive(Debug)]
pub enum Fault<U> {
    Missing {
        reference: String,
        digest: Digest,
    },
    WrongSize {
        reference: String,
        digest: Digest,
        declared: u64,
        actual: u64,
    },
    ManifestUnreadable {
        reference: String,
        digest: Digest,
        reason: U,
    },
    Unfollowable {
        reference: String,
        source: WalkError,
    },
}

/// What the check found.
#[derive(Debug)]
pub struct Checked<U> {
    /// Every node found present with its size, and what it is to the graph.
    pub reached: BTreeMap<Digest, Role>,
    /// In the order the walk met them; at most one when asked for [`Faults::First`].
    pub faults: Vec<Fault<U>>,
    /// Configs and layers reached that the layout leaves out on purpose, with their size.
    pub left_out: BTreeMap<Digest, u64>,
}

/// Walks the graph from every entry of `index` and checks each node against `blobs`.
pub fn check<B: Blobs>(index: &LayoutIndex, blobs: &B, faults: Faults) -> Checked<B::Unreadable> {
    let mut checked = Checked {
        reached: BTreeMap::new(),
        faults: Vec::new(),
        left_out: BTreeMap::new(),
    };
    let mut walk = Walk::new(LIMITS);
    for (n, entry) in index.manifests.iter().enumerate() {
        if let Err(source) = walk.add_root(entry.descriptor(), n) {
            checked.faults.push(Fault::Unfollowable {
                reference: index.reference_of(n),
                source,
            });
            if faults == Faults::First {
                return checked;
            }
        }
    }
    while let Some(node) = walk.next_node() {
        let Err(fault) = visit(&mut walk, &node, blobs, &mut checked) else {
            continue;
        };
        let unfollowable = matches!(fault, NodeFault::Unfollowable(_));
        checked
            .faults
            .push(fault.named(index.reference_of(node.root), node.digest()));
        if unfollowable || faults == Faults::First {
            break;
        }
    }
    checked
}

/// A fault at one node, before it is named by its root's reference.
enum NodeFault<U> {
    Missing,
    WrongSize { declared: u64, actual: u64 },
    ManifestUnreadable(U),
    Unfollowable(WalkError),
}

impl<U> NodeFault<U> {
    fn named(self, reference: String, digest: &Digest) -> Fault<U> {
        let digest = digest.clone();
        match self {
            Self::Missing => Fault::Missing { reference, digest },
            Self::WrongSize { declared, actual } => Fault::WrongSize {
                reference,
                digest,
                declared,
                actual,
            },
            Self::ManifestUnreadable(reason) => Fault::ManifestUnreadable {
                reference,
                digest,
                reason,
            },
            Self::Unfollowable(source) => Fault::Unfollowable { reference, source },
        }
    }
}

/// Checks one node; a manifest's children are queued once it reads.
fn visit<B: Blobs>(
    walk: &mut Walk,
    node: &Node,
    blobs: &B,
    checked: &mut Checked<B::Unreadable>,
) -> Result<(), NodeFault<B::Unreadable>> {
    let (actual, left_out) = match blobs.size(node.digest()) {
        Some(size) => (size, false),
        None if node.role != Role::Manifest => {
            let size = blobs.left_out(node.digest()).ok_or(NodeFault::Missing)?;
            (size, true)
        }
        None => return Err(NodeFault::Missing),
    };
    if actual != node.descriptor.size {
        return Err(NodeFault::WrongSize {
            declared: node.descriptor.size,
            actual,
        });
    }
    if left_out {
        checked.left_out.insert(node.digest().clone(), actual);
        return Ok(());
    }
    checked.reached.insert(node.digest().clone(), node.role);
    if node.role == Role::Manifest {
        let manifest = blobs
            .manifest(node.digest())
            .map_err(NodeFault::ManifestUnreadable)?;
        walk.descend(node, &manifest)
            .map_err(NodeFault::Unfollowable)?;
    }
    Ok(())
}
