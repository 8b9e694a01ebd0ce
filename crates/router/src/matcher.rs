//! Compiled route matchers: path (prefix, exact, regex or any) and header conditions.

use crate::error::{Location, RouterError};
use crate::RequestView;
use mosn_config as cfg;
use regex::bytes::{Regex, RegexBuilder};

#[derive(Debug)]
pub(crate) enum PathMatch {
    Any,
    Prefix(Box<[u8]>),
    PrefixNoCase(Box<[u8]>),
    Exact(Box<[u8]>),
    ExactNoCase(Box<[u8]>),
    Regex(Regex),
}

impl PathMatch {
    #[inline]
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => path.starts_with(p),
            PathMatch::PrefixNoCase(p) => {
                path.len() >= p.len() && path[..p.len()].eq_ignore_ascii_case(p)
            }
            PathMatch::Exact(p) => path == &p[..],
            PathMatch::ExactNoCase(p) => path.eq_ignore_ascii_case(p),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
}

#[derive(Debug)]
enum ValueMatch {
    Exact(Box<[u8]>),
    Regex(Regex),
}

#[derive(Debug)]
struct HeaderMatch {
    lower_name: Box<str>,
    value: ValueMatch,
}

impl HeaderMatch {
    #[inline]
    fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        match (req.header(&self.lower_name), &self.value) {
            (None, _) => false,
            (Some(v), ValueMatch::Exact(want)) => v == &want[..],
            (Some(v), ValueMatch::Regex(re)) => re.is_match(v),
        }
    }
}

/// Everything a route requires of a request.
#[derive(Debug)]
pub(crate) struct Matcher {
    path: PathMatch,
    headers: Box<[HeaderMatch]>,
}

impl Matcher {
    pub(crate) fn build(m: &cfg::RouteMatch, at: &Location) -> Result<Matcher, RouterError> {
        let case_sensitive = m.case_sensitive.unwrap_or(true);
        let path = match (&m.prefix, &m.path, &m.regex) {
            (None, None, None) => PathMatch::Any,
            (Some(p), None, None) => {
                let p = p.as_bytes().into();
                if case_sensitive {
                    PathMatch::Prefix(p)
                } else {
                    PathMatch::PrefixNoCase(p)
                }
            }
            (None, Some(p), None) => {
                let p = p.as_bytes().into();
                if case_sensitive {
                    PathMatch::Exact(p)
                } else {
                    PathMatch::ExactNoCase(p)
                }
            }
            (None, None, Some(re)) => {
                PathMatch::Regex(full_match_regex(re, !case_sensitive, at, "match.regex")?)
            }
            _ => {
                return Err(RouterError::BadRoute {
                    at: at.boxed(),
                    reason: "set only one of match.prefix, match.path, match.regex",
                })
            }
        };
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if h.name.is_empty() {
                    return Err(RouterError::BadRoute {
                        at: at.boxed(),
                        reason: "a header matcher needs a name",
                    });
                }
                let value = if h.regex {
                    let field = format!("match.headers[{i}].value");
                    ValueMatch::Regex(full_match_regex(&h.value, false, at, &field)?)
                } else {
                    ValueMatch::Exact(h.value.as_bytes().into())
                };
                Ok(HeaderMatch {
                    lower_name: h.name.to_ascii_lowercase().into(),
                    value,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Matcher { path, headers })
    }

    /// `path` is passed in so that a lookup asks the request for it once, not per route.
    #[inline]
    pub(crate) fn matches<R: RequestView + ?Sized>(&self, path: &[u8], req: &R) -> bool {
        self.path.matches(path) && self.headers.iter().all(|h| h.matches(req))
    }
}

/// Compiles `pattern` so that it must match the whole input, as Envoy's regex matchers do.
fn full_match_regex(
    pattern: &str,
    case_insensitive: bool,
    at: &Location,
    field: &str,
) -> Result<Regex, RouterError> {
    let bad = |source| RouterError::BadRegex {
        at: at.boxed(),
        field: field.to_owned(),
        pattern: pattern.to_owned(),
        source,
    };
    // Compile the bare pattern first: wrapping can turn an invalid pattern such as
    // `a)|(b` into a valid one with a different meaning.
    Regex::new(pattern).map_err(bad)?;
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(case_insensitive)
        .build()
        .map_err(bad)
}
