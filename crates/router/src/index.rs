//! The route index of a virtual host. First match wins, so a lookup must find the
//! lowest-numbered route whose conditions all hold, without trying every route:
//!
//! - case-sensitive `path` routes sit in a hash map keyed by the path;
//! - `prefix` routes sit in a radix tree walked once along the request path
//!   (case-insensitive prefixes and paths in a second tree walked lower-cased);
//! - `regex` routes sit in the same trees under the literal their pattern starts with
//!   (`/api/v[0-9]+` under `/api/v`), so only the regexes whose literal begins the
//!   path run;
//! - routes with no path condition are kept in a list.
//!
//! Each place holds ascending route numbers. A lookup visits the candidate lists the
//! request path selects and, in each, stops at the first route that passes or at the
//! first one numbered above the best found so far. Nothing is allocated.

use crate::domain::DomainHasher;
use crate::matcher::PathKind;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

type ExactMap = HashMap<Box<[u8]>, Box<[u32]>, BuildHasherDefault<DomainHasher>>;

#[derive(Debug, Default)]
struct Node {
    /// The bytes on the edge from the parent (lower-case in the case-insensitive tree).
    label: Box<[u8]>,
    /// First byte of each child's label, ascending, parallel to `children`.
    first: Box<[u8]>,
    children: Box<[u32]>,
    /// Routes whose prefix ends at this node.
    prefix: Box<[u32]>,
    /// Routes whose exact path ends at this node (case-insensitive tree only).
    exact: Box<[u32]>,
    /// Regex routes whose literal prefix ends at this node: their regex must run.
    guarded: Box<[u32]>,
}

/// A radix tree over path bytes.
#[derive(Debug, Default)]
struct Trie {
    nodes: Vec<Node>,
    nocase: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Prefix,
    Exact,
    Guarded,
}

struct Entry {
    key: Box<[u8]>,
    slot: Slot,
    route: u32,
}

/// The routes filed under one key.
#[derive(Default)]
struct Lists {
    prefix: Vec<u32>,
    exact: Vec<u32>,
    guarded: Vec<u32>,
}

impl Trie {
    fn build(mut entries: Vec<Entry>, nocase: bool) -> Trie {
        if entries.is_empty() {
            return Trie {
                nodes: Vec::new(),
                nocase,
            };
        }
        // Stable: routes with one key stay in ascending order.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        // One entry per distinct key.
        let mut keys: Vec<(Box<[u8]>, Lists)> = Vec::new();
        for e in entries {
            let new_key = match keys.last() {
                Some((k, _)) => *k != e.key,
                None => true,
            };
            if new_key {
                keys.push((e.key, Lists::default()));
            }
            if let Some((_, lists)) = keys.last_mut() {
                match e.slot {
                    Slot::Prefix => lists.prefix.push(e.route),
                    Slot::Exact => lists.exact.push(e.route),
                    Slot::Guarded => lists.guarded.push(e.route),
                }
            }
        }
        let mut nodes = vec![Node::default()];
        // Iterative, so that a deep tree cannot overflow the stack: (node, keys, depth).
        let mut work = vec![(0usize, 0..keys.len(), 0usize)];
        while let Some((ni, range, depth)) = work.pop() {
            let mut start = range.start;
            if keys[start].0.len() == depth {
                let lists = std::mem::take(&mut keys[start].1);
                nodes[ni].prefix = lists.prefix.into_boxed_slice();
                nodes[ni].exact = lists.exact.into_boxed_slice();
                nodes[ni].guarded = lists.guarded.into_boxed_slice();
                start += 1;
            }
            let mut first = Vec::new();
            let mut children = Vec::new();
            while start < range.end {
                let byte = keys[start].0[depth];
                let len = keys[start..range.end]
                    .iter()
                    .take_while(|(k, _)| k[depth] == byte)
                    .count();
                let end = start + len;
                // Sorted keys: the group's common prefix is that of its first and last.
                let (a, z) = (&keys[start].0, &keys[end - 1].0);
                let common = depth
                    + a[depth..]
                        .iter()
                        .zip(&z[depth..])
                        .take_while(|(x, y)| x == y)
                        .count();
                let child = nodes.len();
                nodes.push(Node {
                    label: a[depth..common].into(),
                    ..Node::default()
                });
                first.push(byte);
                children.push(child as u32);
                work.push((child, start..end, common));
                start = end;
            }
            nodes[ni].first = first.into_boxed_slice();
            nodes[ni].children = children.into_boxed_slice();
        }
        Trie { nodes, nocase }
    }

    /// Calls `visit` with the prefix routes (`false`: their path is established) and
    /// the guarded routes (`true`: their regex must run) of every node the path passes
    /// through, and with the exact routes of the node where it ends.
    #[inline]
    fn walk(&self, path: &[u8], mut visit: impl FnMut(&[u32], bool)) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let fold = |b: u8| {
            if self.nocase {
                b.to_ascii_lowercase()
            } else {
                b
            }
        };
        let mut at = 0;
        loop {
            if !node.prefix.is_empty() {
                visit(&node.prefix, false);
            }
            if !node.guarded.is_empty() {
                visit(&node.guarded, true);
            }
            let Some(&next) = path.get(at) else {
                if !node.exact.is_empty() {
                    visit(&node.exact, false);
                }
                return;
            };
            let Ok(slot) = node.first.binary_search(&fold(next)) else {
                return;
            };
            let child = &self.nodes[node.children[slot] as usize];
            let label = &child.label[..];
            let Some(rest) = path.get(at..at + label.len()) else {
                return;
            };
            let same = if self.nocase {
                rest.eq_ignore_ascii_case(label)
            } else {
                rest == label
            };
            if !same {
                return;
            }
            at += label.len();
            node = child;
        }
    }
}

/// The routes of a virtual host, indexed by their path condition.
#[derive(Debug, Default)]
pub(crate) struct RouteIndex {
    exact: ExactMap,
    prefixes: Trie,
    nocase: Trie,
    /// Routes without a path condition.
    others: Box<[u32]>,
}

impl RouteIndex {
    pub(crate) fn build<'a>(kinds: impl Iterator<Item = &'a PathKind>) -> RouteIndex {
        let mut exact: HashMap<Box<[u8]>, Vec<u32>, BuildHasherDefault<DomainHasher>> =
            HashMap::default();
        let mut prefixes = Vec::new();
        let mut nocase = Vec::new();
        let mut others = Vec::new();
        for (i, kind) in kinds.enumerate() {
            let route = i as u32;
            match kind {
                PathKind::Exact { key, nocase: false } => {
                    exact.entry(key.clone()).or_default().push(route)
                }
                PathKind::Prefix { key, nocase: false } => prefixes.push(Entry {
                    key: key.clone(),
                    slot: Slot::Prefix,
                    route,
                }),
                PathKind::Exact { key, nocase: true } => nocase.push(Entry {
                    key: key.clone(),
                    slot: Slot::Exact,
                    route,
                }),
                PathKind::Prefix { key, nocase: true } => nocase.push(Entry {
                    key: key.clone(),
                    slot: Slot::Prefix,
                    route,
                }),
                PathKind::Regex { prefix, nocase: n } => {
                    let entry = Entry {
                        key: prefix.clone(),
                        slot: Slot::Guarded,
                        route,
                    };
                    if *n {
                        nocase.push(entry);
                    } else {
                        prefixes.push(entry);
                    }
                }
                PathKind::Any => others.push(route),
            }
        }
        RouteIndex {
            exact: exact
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            prefixes: Trie::build(prefixes, false),
            nocase: Trie::build(nocase, true),
            others: others.into_boxed_slice(),
        }
    }

    /// The lowest route number whose conditions hold. `indexed(i)` checks route `i`'s
    /// conditions other than its path (which the index has established);
    /// `full(i)` checks all of them (for regex routes). Routes without a path
    /// condition take `indexed`.
    #[inline]
    pub(crate) fn find(
        &self,
        path: &[u8],
        indexed: impl Fn(u32) -> bool,
        full: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let mut best = u32::MAX;
        let mut scan = |list: &[u32], check: &dyn Fn(u32) -> bool| {
            for &i in list {
                if i >= best {
                    break;
                }
                if check(i) {
                    best = i;
                    break;
                }
            }
        };
        if !self.exact.is_empty() {
            if let Some(list) = self.exact.get(path) {
                scan(list, &indexed);
            }
        }
        let mut visit = |list: &[u32], guarded: bool| {
            if guarded {
                scan(list, &full)
            } else {
                scan(list, &indexed)
            }
        };
        self.prefixes.walk(path, &mut visit);
        self.nocase.walk(path, &mut visit);
        scan(&self.others, &indexed);
        (best != u32::MAX).then_some(best)
    }
}
