//! The one walker of the manifest graph, used by resolve, seal, scan, summary and push.
//!
//! One rule says what a child is: every entry of an index (and of `index.json`) is a
//! manifest, whatever media type its descriptor claims; an image manifest's config and
//! layers are blobs. A `subject` points back at a parent and is never followed.
//!
//! The walk is iterative and breadth-first in declaration order, visits each digest
//! once, and is bounded in depth and in count: exceeding a bound is an error, never a
//! silent stop. The caller drives it (`next`, then `descend` with the parsed manifest),
//! so the same walker serves code that reads manifests from disk and code that fetches
//! them from a registry.

use std::collections::{HashMap, VecDeque};

use super::{Descriptor, Manifest};
use crate::digest::Digest;

/// Bounds on a walk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Manifests below a root: 1 for an image, 2 for an index of images.
    pub depth: usize,
    /// Distinct digests, manifests and blobs together.
    pub nodes: usize,
}

/// Real indexes nest two or three levels and hold hundreds of entries; these leave
/// room for any honest graph while stopping a hostile one early.
pub const LIMITS: Limits = Limits {
    depth: 8,
    nodes: 1 << 20,
};

/// What a node is to the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A manifest or an index: its bytes name further nodes.
    Manifest,
    Config,
    Layer,
}

/// One digest reached by the walk.
#[derive(Debug, Clone)]
pub struct Node {
    pub descriptor: Descriptor,
    pub role: Role,
    /// 0 for a root.
    pub depth: usize,
    /// The root (by the order roots were added) that first reached this node.
    pub root: usize,
}

impl Node {
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("manifest {digest} is nested more than {limit} levels deep")]
    TooDeep { digest: Digest, limit: usize },
    #[error("the manifest graph reaches more than {limit} blobs")]
    TooMany { limit: usize },
    #[error("following every image's manifests takes more than {limit} steps in all")]
    OverBudget { limit: usize },
    #[error("blob {digest} is declared with two sizes, {first} and {second} bytes")]
    SizeConflict {
        digest: Digest,
        first: u64,
        second: u64,
    },
}

pub struct Walk {
    limits: Limits,
    queue: VecDeque<Node>,
    /// Every digest queued so far, with its declared size.
    seen: HashMap<Digest, u64>,
    /// Manifest → its manifest children, for a children-first order.
    children: HashMap<Digest, Vec<Digest>>,
}

impl Walk {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
            seen: HashMap::new(),
            children: HashMap::new(),
        }
    }

    /// A walk from one root manifest.
    pub fn from_root(root: Descriptor) -> Result<Self, WalkError> {
        let mut walk = Self::new(LIMITS);
        walk.add_root(root, 0)?;
        Ok(walk)
    }

    /// Adds a root manifest (an entry of `index.json`, or a resolved reference).
    pub fn add_root(&mut self, descriptor: Descriptor, root: usize) -> Result<(), WalkError> {
        self.enqueue(descriptor, Role::Manifest, 0, root)
    }

    /// The next node, breadth-first.
    pub fn next_node(&mut self) -> Option<Node> {
        self.queue.pop_front()
    }

    /// Queues every child of the manifest at `node`.
    pub fn descend(&mut self, node: &Node, manifest: &Manifest) -> Result<(), WalkError> {
        self.descend_where(node, manifest, |_| true)
    }

    /// Queues the children of the manifest at `node` that `keep` accepts: the caller
    /// may prune (resolve follows one platform), but never decides what is a child.
    pub fn descend_where(
        &mut self,
        node: &Node,
        manifest: &Manifest,
        keep: impl Fn(&Descriptor) -> bool,
    ) -> Result<(), WalkError> {
        let depth = node.depth + 1;
        let children = manifest
            .manifests
            .iter()
            .map(|d| (d, Role::Manifest))
            .chain(manifest.config.iter().map(|d| (d, Role::Config)))
            .chain(manifest.layers.iter().map(|d| (d, Role::Layer)));
        for (descriptor, role) in children {
            if !keep(descriptor) {
                continue;
            }
            if role == Role::Manifest {
                if depth > self.limits.depth {
                    return Err(WalkError::TooDeep {
                        digest: descriptor.digest.clone(),
                        limit: self.limits.depth,
                    });
                }
                self.children
                    .entry(node.digest().clone())
                    .or_default()
                    .push(descriptor.digest.clone());
            }
            self.enqueue(descriptor.clone(), role, depth, node.root)?;
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        descriptor: Descriptor,
        role: Role,
        depth: usize,
        root: usize,
    ) -> Result<(), WalkError> {
        if let Some(&first) = self.seen.get(&descriptor.digest) {
            if first != descriptor.size {
                return Err(WalkError::SizeConflict {
                    digest: descriptor.digest,
                    first,
                    second: descriptor.size,
                });
            }
            return Ok(());
        }
        if self.seen.len() >= self.limits.nodes {
            return Err(WalkError::TooMany {
                limit: self.limits.nodes,
            });
        }
        self.seen.insert(descriptor.digest.clone(), descriptor.size);
        self.queue.push_back(Node {
            descriptor,
            role,
            depth,
            root,
        });
        Ok(())
    }

    /// The manifests descended so far below `root`, each after every manifest it names,
    /// so that a registry has an index's children before the index arrives.
    pub fn children_first(&self, root: &Digest) -> Vec<Digest> {
        let mut order = Vec::new();
        let mut placed = std::collections::HashSet::new();
        // Iterative post-order: (digest, whether its children are already queued).
        let mut stack = vec![(root.clone(), false)];
        while let Some((digest, expanded)) = stack.pop() {
            if expanded {
                if placed.insert(digest.clone()) {
                    order.push(digest);
                }
                continue;
            }
            if placed.contains(&digest) {
                continue;
            }
            stack.push((digest.clone(), true));
            for child in self.children.get(&digest).into_iter().flatten().rev() {
                if !placed.contains(child) {
                    stack.push((child.clone(), false));
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{OCI_INDEX, OCI_MANIFEST};

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn descriptor(n: u8, size: u64) -> Descriptor {
        Descriptor::new(OCI_MANIFEST, digest(n), size)
    }

    fn index(children: &[u8]) -> Manifest {
        Manifest {
            media_type: Some(OCI_INDEX.into()),
            artifact_type: None,
            config: None,
            layers: Vec::new(),
            manifests: children.iter().map(|&n| descriptor(n, 10)).collect(),
            subject: None,
        }
    }

    fn image(config: u8, layers: &[u8]) -> Manifest {
        Manifest {
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: None,
            config: Some(descriptor(config, 10)),
            layers: layers.iter().map(|&n| descriptor(n, 10)).collect(),
            manifests: Vec::new(),
            subject: Some(descriptor(99, 10)),
        }
    }

    /// Nodes as (digest number, role, depth), in walk order.
    type Seen = Vec<(u8, Role, usize)>;

    /// Walks a graph given as digest-number → manifest, returning the nodes in order.
    fn walk_all(
        graph: &HashMap<u8, Manifest>,
        root: u8,
        limits: Limits,
    ) -> Result<(Seen, Walk), WalkError> {
        let by_digest: HashMap<Digest, u8> = (0..=255).map(|n| (digest(n), n)).collect();
        let mut walk = Walk::new(limits);
        walk.add_root(descriptor(root, 10), 0)?;
        let mut seen = Vec::new();
        while let Some(node) = walk.next_node() {
            let n = by_digest[node.digest()];
            seen.push((n, node.role, node.depth));
            if node.role == Role::Manifest {
                if let Some(manifest) = graph.get(&n) {
                    walk.descend(&node, manifest)?;
                }
            }
        }
        Ok((seen, walk))
    }

    #[test]
    fn one_rule_for_children_and_each_digest_once() {
        // 1 = index of {2, 3}; 2 = index of {4}; 3 and 4 are images sharing layer 20.
        let graph = HashMap::from([
            (1, index(&[2, 3])),
            (2, index(&[4])),
            (3, image(10, &[20, 21])),
            (4, image(11, &[20, 22])),
        ]);
        let (seen, walk) = walk_all(&graph, 1, LIMITS).unwrap();
        assert_eq!(
            seen,
            vec![
                (1, Role::Manifest, 0),
                (2, Role::Manifest, 1),
                (3, Role::Manifest, 1),
                (4, Role::Manifest, 2),
                (10, Role::Config, 2),
                (20, Role::Layer, 2),
                (21, Role::Layer, 2),
                (11, Role::Config, 3),
                (22, Role::Layer, 3),
            ],
            "breadth-first, the subject (99) never followed, layer 20 once"
        );
        let order: Vec<Digest> = walk.children_first(&digest(1));
        assert_eq!(order, vec![digest(4), digest(2), digest(3), digest(1)]);
    }

    #[test]
    fn children_first_holds_for_a_child_shared_at_two_depths() {
        // 1 → {3, 2}, 2 → {3}: 3 must come before both 2 and 1.
        let graph = HashMap::from([(1, index(&[3, 2])), (2, index(&[3])), (3, image(10, &[]))]);
        let (_, walk) = walk_all(&graph, 1, LIMITS).unwrap();
        assert_eq!(
            walk.children_first(&digest(1)),
            vec![digest(3), digest(2), digest(1)]
        );
    }

    #[test]
    fn bounds_are_errors_not_silent_stops() {
        // A chain 1 → 2 → 3 → 4 → 5.
        let graph: HashMap<u8, Manifest> = (1..5).map(|n| (n, index(&[n + 1]))).collect();
        let shallow = Limits {
            depth: 3,
            nodes: 100,
        };
        assert!(matches!(
            walk_all(&graph, 1, shallow),
            Err(WalkError::TooDeep { limit: 3, .. })
        ));
        let few = Limits {
            depth: 10,
            nodes: 3,
        };
        assert!(matches!(
            walk_all(&graph, 1, few),
            Err(WalkError::TooMany { limit: 3 })
        ));
        assert!(walk_all(&graph, 1, LIMITS).is_ok());
    }

    #[test]
    fn one_digest_with_two_sizes_is_an_error() {
        let mut two = image(10, &[20]);
        two.layers.push(descriptor(20, 11));
        let graph = HashMap::from([(1, two)]);
        assert!(matches!(
            walk_all(&graph, 1, LIMITS),
            Err(WalkError::SizeConflict {
                first: 10,
                second: 11,
                ..
            })
        ));
    }
}
