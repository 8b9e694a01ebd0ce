//! Header mutations, merged per route at build time so the proxy applies one list.

use mosn_config as cfg;

/// A header to add to a request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAdd {
    /// As configured, so that the proxy can write the case the operator chose.
    pub name: String,
    pub lower_name: String,
    pub value: String,
    /// Append to an existing value (true) or replace it (false).
    pub append: bool,
}

/// The header additions and removals of a route, its virtual host and its router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Most specific level first: route action, route, virtual host, router.
    pub request_add: Vec<HeaderAdd>,
    /// Lower-case, without duplicates.
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.request_add.is_empty()
            && self.request_remove.is_empty()
            && self.response_add.is_empty()
            && self.response_remove.is_empty()
    }

    /// Merges the levels given most specific first. They apply in that order, as in
    /// Envoy: an overwriting add (`append: false`) of a later, more general level
    /// replaces what a more specific level added under that name.
    pub(crate) fn merge(levels: &[&cfg::HeaderMutations]) -> HeaderOps {
        let mut ops = HeaderOps::default();
        for level in levels {
            add_all(&mut ops.request_add, &level.request_headers_to_add);
            add_all(&mut ops.response_add, &level.response_headers_to_add);
            union_lower(&mut ops.request_remove, &level.request_headers_to_remove);
            union_lower(&mut ops.response_remove, &level.response_headers_to_remove);
        }
        ops
    }
}

fn add_all(into: &mut Vec<HeaderAdd>, options: &[cfg::HeaderValueOption]) {
    for add in options.iter().map(header_add) {
        if !add.append {
            into.retain(|a| a.lower_name != add.lower_name);
        }
        into.push(add);
    }
}

fn header_add(option: &cfg::HeaderValueOption) -> HeaderAdd {
    HeaderAdd {
        name: option.header.key.clone(),
        lower_name: option.header.key.to_ascii_lowercase(),
        value: option.header.value.clone(),
        // MOSN and Envoy append unless told otherwise.
        append: option.append.unwrap_or(true),
    }
}

fn union_lower(into: &mut Vec<String>, names: &[String]) {
    for name in names {
        let lower = name.to_ascii_lowercase();
        if !into.contains(&lower) {
            into.push(lower);
        }
    }
}
