//! A route's `match`: path specifier, case sensitivity, header and query parameter
//! matchers. Envoy's string tests the model lacks (case-insensitive ones, suffixes
//! of query values) become whole-value regexes, which both match in full.

use super::error::{ConvertError, Ctx};
use super::proto::{self, StrTest};
use envoy_types::pb::envoy::config::route::v3 as rt;
use mosn_config::{HeaderMatcher, QueryParameterMatcher, RouteMatch};

pub(crate) fn route_match(
    m: &rt::RouteMatch,
    ctx: &mut Ctx,
    p: &str,
) -> Result<RouteMatch, ConvertError> {
    use rt::route_match::PathSpecifier as P;
    let case_sensitive = proto::boolv(&m.case_sensitive).unwrap_or(true);
    let mut out = RouteMatch::default();
    match &m.path_specifier {
        Some(P::Prefix(s)) => out.prefix = Some(s.clone()),
        Some(P::Path(s)) => out.path = Some(s.clone()),
        // Envoy ignores case_sensitive for regexes; so does this conversion.
        Some(P::SafeRegex(r)) => out.regex = Some(r.regex.clone()),
        Some(P::PathSeparatedPrefix(s)) => {
            // The prefix, then the end of the path or a '/': as a whole-path regex.
            let flags = if case_sensitive { "" } else { "(?i)" };
            out.regex = Some(format!("{flags}{}(/.*)?", regex::escape(s)));
        }
        Some(P::ConnectMatcher(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.connect_matcher"),
                "CONNECT routes are not supported",
            ))
        }
        Some(P::PathMatchPolicy(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.path_match_policy"),
                "path templates are not supported",
            ))
        }
        None => {
            return Err(ctx.invalid(p, "a path specifier (prefix, path, safe_regex) is required"))
        }
    }
    if !case_sensitive && (out.prefix.is_some() || out.path.is_some()) {
        out.case_sensitive = Some(false);
    }
    if let Some(pct) = proto::runtime_percent(m.runtime_fraction.as_ref()) {
        if pct < 100.0 {
            return Err(ctx.refuse(
                &format!("{p}.runtime_fraction"),
                format!("matching {pct}% of requests is not supported"),
            ));
        }
    }
    for (field, set) in [
        ("cookies", !m.cookies.is_empty()),
        ("tls_context", m.tls_context.is_some()),
        ("dynamic_metadata", !m.dynamic_metadata.is_empty()),
        ("filter_state", !m.filter_state.is_empty()),
    ] {
        if set {
            return Err(ctx.refuse(&format!("{p}.{field}"), "matching on it is not supported"));
        }
    }
    for (i, h) in m.headers.iter().enumerate() {
        out.headers
            .push(header(h, ctx, &format!("{p}.headers[{i}]"))?);
    }
    if m.grpc.is_some() {
        // Envoy's gRPC match is the content type's prefix.
        out.headers.push(HeaderMatcher {
            name: "content-type".into(),
            prefix_match: Some("application/grpc".into()),
            ..Default::default()
        });
    }
    for (i, q) in m.query_parameters.iter().enumerate() {
        out.query_parameters
            .push(query(q, ctx, &format!("{p}.query_parameters[{i}]"))?);
    }
    Ok(out)
}

pub(crate) fn header(
    h: &rt::HeaderMatcher,
    ctx: &Ctx,
    p: &str,
) -> Result<HeaderMatcher, ConvertError> {
    use rt::header_matcher::HeaderMatchSpecifier as S;
    if h.name.is_empty() {
        return Err(ctx.invalid(&format!("{p}.name"), "a header matcher needs a name"));
    }
    if h.treat_missing_header_as_empty {
        return Err(ctx.refuse(
            &format!("{p}.treat_missing_header_as_empty"),
            "not supported",
        ));
    }
    let mut out = HeaderMatcher {
        name: h.name.clone(),
        invert_match: h.invert_match,
        ..Default::default()
    };
    #[allow(deprecated)]
    let test = match &h.header_match_specifier {
        // Envoy: no test means the header must be present.
        None => {
            out.present_match = Some(true);
            return Ok(out);
        }
        Some(S::PresentMatch(b)) => {
            out.present_match = Some(*b);
            return Ok(out);
        }
        Some(S::RangeMatch(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.range_match"),
                "range matches are not supported",
            ))
        }
        Some(S::ExactMatch(s)) => StrTest::Exact(s.clone()),
        Some(S::PrefixMatch(s)) => StrTest::Prefix(s.clone()),
        Some(S::SuffixMatch(s)) => StrTest::Suffix(s.clone()),
        Some(S::ContainsMatch(s)) => StrTest::Contains(s.clone()),
        Some(S::SafeRegexMatch(r)) => StrTest::Regex(r.regex.clone()),
        Some(S::StringMatch(sm)) => proto::string_matcher(sm, ctx, &format!("{p}.string_match"))?,
    };
    match test {
        StrTest::Exact(s) => out.exact_match = Some(s),
        StrTest::Prefix(s) => out.prefix_match = Some(s),
        StrTest::Suffix(s) => out.suffix_match = Some(s),
        StrTest::Contains(s) => out.contains_match = Some(s),
        StrTest::Regex(r) => {
            out.value = Some(r);
            out.regex = true;
        }
    }
    Ok(out)
}

fn query(
    q: &rt::QueryParameterMatcher,
    ctx: &Ctx,
    p: &str,
) -> Result<QueryParameterMatcher, ConvertError> {
    use rt::query_parameter_matcher::QueryParameterMatchSpecifier as S;
    if q.name.is_empty() {
        return Err(ctx.invalid(
            &format!("{p}.name"),
            "a query parameter matcher needs a name",
        ));
    }
    let mut out = QueryParameterMatcher {
        name: q.name.clone(),
        ..Default::default()
    };
    match &q.query_parameter_match_specifier {
        None | Some(S::PresentMatch(true)) => {}
        Some(S::PresentMatch(false)) => {
            return Err(ctx.refuse(
                &format!("{p}.present_match"),
                "matching an absent query parameter is not supported",
            ))
        }
        Some(S::StringMatch(sm)) => {
            match proto::string_matcher(sm, ctx, &format!("{p}.string_match"))? {
                StrTest::Exact(s) => out.value = Some(s),
                other => {
                    out.value = Some(other.as_regex());
                    out.regex = true;
                }
            }
        }
    }
    Ok(out)
}
