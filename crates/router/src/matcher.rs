//! Compiled route conditions: the path condition (used by the index, see `index.rs`)
//! and the header, query parameter and variable conditions checked per candidate.

use crate::error::{Location, RouterError};
use crate::util::{self, decoded_eq, with_decoded};
use crate::RequestView;
use memchr::memmem;
use mosn_config as cfg;
use regex::bytes::{Regex, RegexBuilder};

/// How a route matches the path. `Prefix`/`Exact` keys of case-insensitive routes are
/// stored lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathKind {
    Any,
    Prefix {
        key: Box<[u8]>,
        nocase: bool,
    },
    Exact {
        key: Box<[u8]>,
        nocase: bool,
    },
    /// `prefix`: a literal every matching path starts with (lower-case when `nocase`),
    /// possibly empty; the index files the route under it.
    Regex {
        prefix: Box<[u8]>,
        nocase: bool,
    },
}

/// A path condition with its regex, when it has one.
#[derive(Debug)]
pub(crate) struct PathMatch {
    pub(crate) kind: PathKind,
    pub(crate) regex: Option<Regex>,
}

impl PathMatch {
    pub(crate) fn build(m: &cfg::RouteMatch, at: &Location) -> Result<PathMatch, RouterError> {
        let nocase = !m.case_sensitive.unwrap_or(true);
        let key = |s: &str| -> Box<[u8]> {
            if nocase {
                s.as_bytes().to_ascii_lowercase().into()
            } else {
                s.as_bytes().into()
            }
        };
        let (kind, regex) = match (&m.prefix, &m.path, &m.regex) {
            (None, None, None) => (PathKind::Any, None),
            (Some(p), None, None) => (
                PathKind::Prefix {
                    key: key(p),
                    nocase,
                },
                None,
            ),
            (None, Some(p), None) => (
                PathKind::Exact {
                    key: key(p),
                    nocase,
                },
                None,
            ),
            (None, None, Some(re)) => {
                let regex = full_match_regex(re, nocase, at, "match.regex")?;
                let prefix = literal_prefix(re, nocase).into_bytes().into_boxed_slice();
                (PathKind::Regex { prefix, nocase }, Some(regex))
            }
            _ => {
                return Err(RouterError::BadRoute {
                    at: at.boxed(),
                    reason: "set only one of match.prefix, match.path, match.regex",
                })
            }
        };
        Ok(PathMatch { kind, regex })
    }

    /// The full path check; the index uses it only for routes it does not index.
    #[inline]
    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        match (&self.kind, &self.regex) {
            (PathKind::Any, _) => true,
            (PathKind::Prefix { key, nocase: false }, _) => path.starts_with(key),
            (PathKind::Prefix { key, nocase: true }, _) => {
                path.len() >= key.len() && path[..key.len()].eq_ignore_ascii_case(key)
            }
            (PathKind::Exact { key, nocase: false }, _) => path == &key[..],
            (PathKind::Exact { key, nocase: true }, _) => path.eq_ignore_ascii_case(key),
            (PathKind::Regex { .. }, Some(re)) => re.is_match(path),
            (PathKind::Regex { .. }, None) => false,
        }
    }
}

/// Where a header condition or hash policy reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderSource {
    /// `:method`, or MOSN's `method`.
    Method,
    /// `:authority`.
    Authority,
    /// `:scheme`.
    Scheme,
    /// Any other name, lower-case (`:path` included: the proxy answers it).
    Named(Box<str>),
}

impl HeaderSource {
    pub(crate) fn new(name: &str) -> HeaderSource {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            ":method" | "method" => HeaderSource::Method,
            ":authority" => HeaderSource::Authority,
            ":scheme" => HeaderSource::Scheme,
            _ => HeaderSource::Named(lower.into()),
        }
    }

    #[inline]
    pub(crate) fn get<'r, R: RequestView + ?Sized>(&self, req: &'r R) -> Option<&'r [u8]> {
        match self {
            HeaderSource::Method => Some(req.method()),
            HeaderSource::Authority => Some(req.host()),
            HeaderSource::Scheme => Some(req.scheme()),
            HeaderSource::Named(name) => req.header(name),
        }
    }
}

/// A condition on a string value.
#[derive(Debug)]
enum StrMatch {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<memmem::Finder<'static>>),
    Regex(Regex),
}

impl StrMatch {
    #[inline]
    fn matches(&self, v: &[u8]) -> bool {
        match self {
            StrMatch::Exact(want) => v == &want[..],
            StrMatch::Prefix(p) => v.starts_with(p),
            StrMatch::Suffix(s) => v.ends_with(s),
            StrMatch::Contains(f) => f.find(v).is_some(),
            StrMatch::Regex(re) => re.is_match(v),
        }
    }

    /// Matches the percent-decoded form of `raw`.
    #[inline]
    fn matches_decoded(&self, raw: &[u8]) -> bool {
        match self {
            StrMatch::Exact(want) => decoded_eq(raw, want),
            other => with_decoded(raw, |v| other.matches(v)),
        }
    }
}

#[derive(Debug)]
enum HeaderTest {
    Value(StrMatch),
    /// true: present; false: absent.
    Present(bool),
    /// Present with a non-empty value (MOSN's RPC rule ".*").
    NonEmpty,
}

#[derive(Debug)]
struct HeaderMatch {
    source: HeaderSource,
    test: HeaderTest,
    invert: bool,
}

impl HeaderMatch {
    fn build(h: &cfg::HeaderMatcher, i: usize, at: &Location) -> Result<Self, RouterError> {
        if h.name.is_empty() {
            return Err(RouterError::BadRoute {
                at: at.boxed(),
                reason: "a header matcher needs a name",
            });
        }
        let field = |name: &str| format!("match.headers[{i}].{name}");
        let bytes = |s: &str| -> Box<[u8]> { s.as_bytes().into() };
        let non_empty = |s: &str, name: &str| -> Result<(), RouterError> {
            if s.is_empty() {
                return Err(RouterError::BadField {
                    at: at.boxed(),
                    field: field(name),
                    reason: "must not be empty".into(),
                });
            }
            Ok(())
        };
        let mut tests = Vec::with_capacity(1);
        if let Some(v) = &h.value {
            tests.push(if h.regex {
                HeaderTest::Value(StrMatch::Regex(full_match_regex(
                    v,
                    false,
                    at,
                    &field("value"),
                )?))
            } else {
                HeaderTest::Value(StrMatch::Exact(bytes(v)))
            });
        } else if h.regex {
            return Err(RouterError::BadField {
                at: at.boxed(),
                field: field("regex"),
                reason: "regex needs a value".into(),
            });
        }
        if let Some(v) = &h.exact_match {
            tests.push(HeaderTest::Value(StrMatch::Exact(bytes(v))));
        }
        if let Some(v) = &h.prefix_match {
            non_empty(v, "prefix_match")?;
            tests.push(HeaderTest::Value(StrMatch::Prefix(bytes(v))));
        }
        if let Some(v) = &h.suffix_match {
            non_empty(v, "suffix_match")?;
            tests.push(HeaderTest::Value(StrMatch::Suffix(bytes(v))));
        }
        if let Some(v) = &h.contains_match {
            non_empty(v, "contains_match")?;
            let finder = memmem::Finder::new(v.as_bytes()).into_owned();
            tests.push(HeaderTest::Value(StrMatch::Contains(Box::new(finder))));
        }
        if let Some(present) = h.present_match {
            tests.push(HeaderTest::Present(present));
        }
        if tests.len() > 1 {
            return Err(RouterError::BadRoute {
                at: at.boxed(),
                reason: "a header matcher takes only one of value, exact_match, prefix_match, suffix_match, contains_match, present_match",
            });
        }
        // MOSN reads an absent value as "", which only an empty header value equals.
        let test = tests
            .pop()
            .unwrap_or(HeaderTest::Value(StrMatch::Exact(Box::default())));
        Ok(HeaderMatch {
            source: HeaderSource::new(&h.name),
            test,
            invert: h.invert_match,
        })
    }

    #[inline]
    fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        let value = self.source.get(req);
        let hit = match (&self.test, value) {
            (HeaderTest::Present(want), v) => v.is_some() == *want,
            (HeaderTest::NonEmpty, v) => v.is_some_and(|v| !v.is_empty()),
            (HeaderTest::Value(m), Some(v)) => m.matches(v),
            // A missing header fails a value test, inverted or not (Envoy 1.40, checked
            // by tests/xds_differential.rs): only presence tests speak of absence.
            (HeaderTest::Value(_), None) => return false,
        };
        hit != self.invert
    }
}

#[derive(Debug)]
struct QueryMatch {
    name: Box<[u8]>,
    /// None: presence is enough.
    value: Option<StrMatch>,
}

impl QueryMatch {
    fn build(q: &cfg::QueryParameterMatcher, i: usize, at: &Location) -> Result<Self, RouterError> {
        if q.name.is_empty() {
            return Err(RouterError::BadRoute {
                at: at.boxed(),
                reason: "a query parameter matcher needs a name",
            });
        }
        let value = match (&q.value, q.regex) {
            (Some(v), true) => Some(StrMatch::Regex(full_match_regex(
                v,
                false,
                at,
                &format!("match.query_parameters[{i}].value"),
            )?)),
            (Some(v), false) => Some(StrMatch::Exact(v.as_bytes().into())),
            (None, true) => {
                return Err(RouterError::BadField {
                    at: at.boxed(),
                    field: format!("match.query_parameters[{i}].regex"),
                    reason: "regex needs a value".into(),
                })
            }
            (None, false) => None,
        };
        Ok(QueryMatch {
            name: q.name.as_bytes().into(),
            value,
        })
    }

    #[inline]
    fn matches(&self, query: &[u8]) -> bool {
        match (util::query_param(query, &self.name), &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(raw), Some(m)) => m.matches_decoded(raw),
        }
    }
}

/// Where a MOSN variable's value comes from for an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VarSource {
    Method,
    Host,
    Path,
    Query,
    Scheme,
    /// Path and query as received (the `:path` the proxy answers).
    Uri,
    Header(Box<str>),
    /// A query parameter, percent-decoded.
    Arg(Box<[u8]>),
    Cookie(Box<[u8]>),
    /// Anything else: asked of [`RequestView::variable`].
    Other(Box<str>),
}

impl VarSource {
    /// Resolves MOSN's variable names for HTTP requests (`x-mosn-*`, and the
    /// `Http1_`/`Http2_` protocol variables with their `request_header_`,
    /// `request_arg_` and `cookie_` prefixes).
    pub(crate) fn new(name: &str) -> VarSource {
        match name {
            "x-mosn-method" => return VarSource::Method,
            "x-mosn-host" | "authority" => return VarSource::Host,
            "x-mosn-path" | "x-mosn-path-original" => return VarSource::Path,
            "x-mosn-querystring" => return VarSource::Query,
            "x-mosn-scheme" => return VarSource::Scheme,
            _ => {}
        }
        let Some(rest) = name
            .strip_prefix("Http1_")
            .or_else(|| name.strip_prefix("Http2_"))
        else {
            return VarSource::Other(name.into());
        };
        match rest {
            "request_method" => VarSource::Method,
            "request_scheme" => VarSource::Scheme,
            "request_path" | "request_path_original" => VarSource::Path,
            "request_arg" => VarSource::Query,
            "request_uri" => VarSource::Uri,
            _ => {
                if let Some(h) = rest.strip_prefix("request_header_") {
                    VarSource::Header(h.to_ascii_lowercase().into())
                } else if let Some(a) = rest.strip_prefix("request_arg_") {
                    VarSource::Arg(a.as_bytes().into())
                } else if let Some(c) = rest.strip_prefix("cookie_") {
                    VarSource::Cookie(c.as_bytes().into())
                } else {
                    VarSource::Other(name.into())
                }
            }
        }
    }

    /// The raw value; `Arg` values are still percent-encoded.
    #[inline]
    pub(crate) fn get<'r, R: RequestView + ?Sized>(&self, req: &'r R) -> Option<&'r [u8]> {
        match self {
            VarSource::Method => Some(req.method()),
            VarSource::Host => Some(req.host()),
            VarSource::Path => Some(req.path()),
            VarSource::Query => Some(req.query()),
            VarSource::Scheme => Some(req.scheme()),
            VarSource::Uri => req.header(":path"),
            VarSource::Header(h) => req.header(h),
            VarSource::Arg(a) => util::query_param(req.query(), a),
            VarSource::Cookie(c) => req.header("cookie").and_then(|v| util::cookie(v, c)),
            VarSource::Other(name) => req.variable(name),
        }
    }
}

#[derive(Debug)]
struct VarMatch {
    source: VarSource,
    /// None: neither value nor regex, which never matches (as in MOSN).
    test: Option<StrMatch>,
}

impl VarMatch {
    #[inline]
    fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        let Some(test) = &self.test else {
            return false;
        };
        // MOSN compares a missing variable as "".
        let raw = self.source.get(req).unwrap_or_default();
        if matches!(self.source, VarSource::Arg(_)) {
            test.matches_decoded(raw)
        } else {
            test.matches(raw)
        }
    }
}

/// Everything a route requires of a request besides its path.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    headers: Box<[HeaderMatch]>,
    query: Box<[QueryMatch]>,
    /// MOSN's `model`: groups joined by "or", the matchers of a group by "and".
    variables: Box<[Box<[VarMatch]>]>,
}

impl Conditions {
    pub(crate) fn build(m: &cfg::RouteMatch, at: &Location) -> Result<Conditions, RouterError> {
        let mut headers: Box<[HeaderMatch]> = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatch::build(h, i, at))
            .collect::<Result<_, _>>()?;
        // MOSN's RPC rule (pkg/router/rpc_rule.go): a route matched by one `service`
        // header alone, no path, reads the value ".*" as "any service" (its Bolt and
        // Dubbo sample configs rely on it).
        let rpc_rule = m.prefix.is_none() && m.path.is_none() && m.regex.is_none();
        if let ([only], [h]) = (&mut headers[..], &m.headers[..]) {
            if rpc_rule && h.name == "service" && h.value.as_deref() == Some(".*") {
                only.test = HeaderTest::NonEmpty;
            }
        }
        let query = m
            .query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| QueryMatch::build(q, i, at))
            .collect::<Result<_, _>>()?;
        let mut groups: Vec<Box<[VarMatch]>> = Vec::new();
        let mut group = Vec::new();
        for (i, v) in m.variables.iter().enumerate() {
            if v.name.is_empty() {
                return Err(RouterError::BadRoute {
                    at: at.boxed(),
                    reason: "a variable matcher needs a name",
                });
            }
            // As in MOSN, a regex wins over a value; the regex must match the whole value
            // like every regex of mosn-rs.
            let test = if !v.regex.is_empty() {
                let field = format!("match.variables[{i}].regex");
                Some(StrMatch::Regex(full_match_regex(
                    &v.regex, false, at, &field,
                )?))
            } else if !v.value.is_empty() {
                Some(StrMatch::Exact(v.value.as_bytes().into()))
            } else {
                None
            };
            group.push(VarMatch {
                source: VarSource::new(&v.name),
                test,
            });
            match v.model.to_ascii_lowercase().as_str() {
                "" | "and" => {}
                "or" => groups.push(std::mem::take(&mut group).into_boxed_slice()),
                _ => {
                    return Err(RouterError::BadField {
                        at: at.boxed(),
                        field: format!("match.variables[{i}].model"),
                        reason: format!("unknown model {:?} (and, or)", v.model),
                    })
                }
            }
        }
        if !group.is_empty() {
            groups.push(group.into_boxed_slice());
        }
        Ok(Conditions {
            headers,
            query,
            variables: groups.into_boxed_slice(),
        })
    }

    #[inline]
    pub(crate) fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        if !self.headers.iter().all(|h| h.matches(req)) {
            return false;
        }
        if !self.query.is_empty() {
            let query = req.query();
            if !self.query.iter().all(|q| q.matches(query)) {
                return false;
            }
        }
        self.variables.is_empty()
            || self
                .variables
                .iter()
                .any(|group| group.iter().all(|v| v.matches(req)))
    }
}

/// A literal that every string `pattern` matches in full starts with: the leading
/// literal characters, up to the first metacharacter (one fewer when a `?`, `*` or
/// `{` makes the last one optional), or "" when the pattern has a top-level `|`.
/// Conservative by construction: a shorter prefix only costs speed, never a match.
/// Case-insensitive: ASCII only, lower-cased, and stopping at `k` and `s`, which
/// Unicode case folding also matches with non-ASCII characters (K, ſ).
pub(crate) fn literal_prefix(pattern: &str, nocase: bool) -> String {
    if has_top_level_alternation(pattern) {
        return String::new();
    }
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            '?' | '*' | '{' => {
                out.pop();
                break;
            }
            '.' | '+' | '(' | ')' | '|' | '[' | ']' | '}' | '^' | '$' => break,
            c => c,
        };
        if !literal.is_ascii() || (nocase && matches!(literal.to_ascii_lowercase(), 'k' | 's')) {
            break;
        }
        out.push(if nocase {
            literal.to_ascii_lowercase()
        } else {
            literal
        });
    }
    out
}

/// Does `pattern` have an alternation outside every group and class?
fn has_top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => {
                // Skip the class; `]` right after `[` or `[^` is a literal.
                let mut first = true;
                let mut nested = 1usize;
                while let Some(k) = chars.next() {
                    match k {
                        '\\' => {
                            chars.next();
                        }
                        '^' if first => continue,
                        ']' if first => {}
                        '[' => nested += 1,
                        ']' => {
                            nested -= 1;
                            if nested == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    first = false;
                }
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Compiles `pattern` so that it must match the whole input, as Envoy's regex matchers do.
pub(crate) fn full_match_regex(
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
