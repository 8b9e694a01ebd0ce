//! Envoy's small shared messages (durations, addresses, data sources, metadata,
//! header options, string matchers, percentages) in the model's terms.

use super::error::{ConvertError, Ctx};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as types;
use envoy_types::pb::google::protobuf;
use mosn_config::GoDuration;
use serde_json::{Map, Value};
use std::time::Duration;

/// The `filter_metadata` key Envoy's load balancers read.
pub(crate) const ENVOY_LB: &str = "envoy.lb";

pub(crate) fn duration(
    d: &protobuf::Duration,
    ctx: &Ctx,
    path: &str,
) -> Result<Duration, ConvertError> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(ctx.invalid(
            path,
            format!("not a duration: {}s {}ns", d.seconds, d.nanos),
        ));
    }
    // Non-negative by the check above.
    let secs = d.seconds.unsigned_abs();
    Ok(Duration::new(secs, d.nanos.unsigned_abs()))
}

pub(crate) fn go_duration(
    d: &protobuf::Duration,
    ctx: &Ctx,
    path: &str,
) -> Result<GoDuration, ConvertError> {
    duration(d, ctx, path).map(GoDuration)
}

/// An optional duration field; None when absent.
pub(crate) fn opt_duration(
    d: &Option<protobuf::Duration>,
    ctx: &Ctx,
    path: &str,
) -> Result<Option<GoDuration>, ConvertError> {
    d.as_ref().map(|d| go_duration(d, ctx, path)).transpose()
}

/// A socket address as the model writes it: `IP:port`, `[IPv6]:port`, or (with
/// `names`, for DNS clusters) `host:port`.
pub(crate) fn socket_address(
    addr: Option<&core::Address>,
    names: bool,
    ctx: &Ctx,
    path: &str,
) -> Result<String, ConvertError> {
    use core::address::Address as A;
    let sa = match addr.and_then(|a| a.address.as_ref()) {
        Some(A::SocketAddress(sa)) => sa,
        Some(A::Pipe(p)) => {
            return Err(ctx.refuse(
                path,
                format!("unix socket address {:?} is not supported", p.path),
            ))
        }
        Some(A::EnvoyInternalAddress(_)) => {
            return Err(ctx.refuse(path, "Envoy internal addresses are not supported"))
        }
        None => return Err(ctx.invalid(path, "an address is required")),
    };
    if sa.protocol != core::socket_address::Protocol::Tcp as i32 {
        return Err(ctx.refuse(
            &format!("{path}.socket_address.protocol"),
            "only TCP is supported",
        ));
    }
    if !sa.resolver_name.is_empty() {
        return Err(ctx.refuse(
            &format!("{path}.socket_address.resolver_name"),
            format!("custom resolver {:?} is not supported", sa.resolver_name),
        ));
    }
    let port = match &sa.port_specifier {
        Some(core::socket_address::PortSpecifier::PortValue(p)) => *p,
        Some(core::socket_address::PortSpecifier::NamedPort(n)) => {
            return Err(ctx.refuse(
                &format!("{path}.socket_address.named_port"),
                format!("named port {n:?} is not supported"),
            ))
        }
        None => 0,
    };
    let Ok(port) = u16::try_from(port) else {
        return Err(ctx.invalid(
            &format!("{path}.socket_address.port_value"),
            format!("{port} is not a port"),
        ));
    };
    match sa.address.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(std::net::SocketAddr::new(ip, port).to_string()),
        Err(_) if names && !sa.address.is_empty() => Ok(format!("{}:{port}", sa.address)),
        Err(_) => Err(ctx.invalid(
            &format!("{path}.socket_address.address"),
            format!("not an IP address: {:?}", sa.address),
        )),
    }
}

/// A data source as the model's TLS fields take it: PEM text inline, or a file path.
/// Only for PEM material (certificates, keys, CAs).
pub(crate) fn data_source(
    ds: &core::DataSource,
    ctx: &Ctx,
    path: &str,
) -> Result<String, ConvertError> {
    use core::data_source::Specifier as S;
    // The model reads a value without a PEM header as a file path: inline data must
    // be PEM, or it would name a file.
    let pem = |s: String| {
        if mosn_config::tls::is_inline_pem(&s) {
            Ok(s)
        } else {
            Err(ctx.refuse(path, "inline data that is not PEM is not supported"))
        }
    };
    match &ds.specifier {
        Some(S::Filename(f)) if !f.is_empty() => {
            if mosn_config::tls::is_inline_pem(f) {
                return Err(ctx.invalid(path, "a file name that holds PEM text"));
            }
            Ok(f.clone())
        }
        Some(S::InlineString(s)) => pem(s.clone()),
        Some(S::InlineBytes(b)) => match String::from_utf8(b.clone()) {
            Ok(s) => pem(s),
            Err(_) => Err(ctx.refuse(path, "inline data that is not PEM is not supported")),
        },
        Some(S::EnvironmentVariable(v)) => {
            Err(ctx.refuse(path, format!("environment_variable {v:?} is not supported")))
        }
        Some(S::Filename(_)) | None => Err(ctx.invalid(path, "an empty data source")),
    }
}

/// A protobuf Struct as JSON.
pub(crate) fn struct_json(s: &protobuf::Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect()
}

fn value_json(v: &protobuf::Value) -> Value {
    use protobuf::value::Kind as K;
    match &v.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(K::StringValue(s)) => Value::String(s.clone()),
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::StructValue(s)) => Value::Object(struct_json(s)),
        Some(K::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

/// The `envoy.lb` metadata (what subsets and `metadata_match` read), if any.
pub(crate) fn lb_metadata(md: Option<&core::Metadata>) -> Option<Map<String, Value>> {
    md.and_then(|m| m.filter_metadata.get(ENVOY_LB))
        .map(struct_json)
        .filter(|m| !m.is_empty())
}

/// Header additions. Envoy's `%COMMAND%` formatters have no counterpart: refused.
pub(crate) fn header_options(
    list: &[core::HeaderValueOption],
    ctx: &mut Ctx,
    path: &str,
) -> Result<Vec<mosn_config::HeaderValueOption>, ConvertError> {
    use core::header_value_option::HeaderAppendAction as Act;
    let mut out = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(hv) = &h.header else {
            return Err(ctx.invalid(&p, "a header is required"));
        };
        let raw = if hv.value.is_empty() && !hv.raw_value.is_empty() {
            String::from_utf8(hv.raw_value.clone())
                .map_err(|_| ctx.refuse(&format!("{p}.header.raw_value"), "not UTF-8"))?
        } else {
            hv.value.clone()
        };
        let value = literal_header_value(&raw).ok_or_else(|| {
            ctx.refuse(
                &format!("{p}.header.value"),
                format!("{raw:?}: Envoy's %...% formatters are not supported"),
            )
        })?;
        if value.is_empty() && !h.keep_empty_value {
            // Envoy adds no header with an empty value unless told to.
            continue;
        }
        // The deprecated `append` wins when set; else `append_action` (default: append).
        #[allow(deprecated)]
        let append = match (&h.append, Act::try_from(h.append_action)) {
            (Some(b), _) => b.value,
            (None, Ok(Act::AppendIfExistsOrAdd)) => true,
            (None, Ok(Act::OverwriteIfExistsOrAdd)) => false,
            (None, Ok(other)) => {
                return Err(ctx.refuse(
                    &format!("{p}.append_action"),
                    format!(
                        "{} is not supported (APPEND_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS_OR_ADD)",
                        other.as_str_name()
                    ),
                ))
            }
            (None, Err(_)) => {
                return Err(ctx.invalid(
                    &format!("{p}.append_action"),
                    format!("unknown value {}", h.append_action),
                ))
            }
        };
        out.push(mosn_config::HeaderValueOption {
            header: mosn_config::HeaderValue {
                key: hv.key.clone(),
                value,
            },
            append: Some(append),
        });
    }
    Ok(out)
}

/// Envoy header values are format strings: `%%` is a literal `%`, `%NAME%` a command.
/// None when the value holds a command.
fn literal_header_value(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            // A lone trailing '%' is literal in Envoy's parser.
            None => out.push('%'),
            Some(_) => return None,
        }
    }
    Some(out)
}

/// A fractional percent as a percentage (0-100).
pub(crate) fn fraction_percent(f: &types::FractionalPercent) -> f64 {
    use types::fractional_percent::DenominatorType as D;
    let denominator = match D::try_from(f.denominator) {
        Ok(D::TenThousand) => 10_000.0,
        Ok(D::Million) => 1_000_000.0,
        // HUNDRED, and unknown values as protobuf's default.
        _ => 100.0,
    };
    (f64::from(f.numerator) * 100.0 / denominator).min(100.0)
}

/// A runtime fraction: the default value (runtime overrides do not exist here).
pub(crate) fn runtime_percent(r: Option<&core::RuntimeFractionalPercent>) -> Option<f64> {
    r.map(|r| r.default_value.as_ref().map_or(0.0, fraction_percent))
}

/// One of Envoy's string tests in a form the model's matchers take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrTest {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// A regex that must match the whole value.
    Regex(String),
}

/// Envoy's StringMatcher. `ignore_case` becomes a case-insensitive regex (Envoy
/// ignores it for `safe_regex`).
pub(crate) fn string_matcher(
    m: &matcher::StringMatcher,
    ctx: &Ctx,
    path: &str,
) -> Result<StrTest, ConvertError> {
    use matcher::string_matcher::MatchPattern as P;
    let test = match &m.match_pattern {
        Some(P::Exact(s)) => StrTest::Exact(s.clone()),
        Some(P::Prefix(s)) => StrTest::Prefix(s.clone()),
        Some(P::Suffix(s)) => StrTest::Suffix(s.clone()),
        Some(P::Contains(s)) => StrTest::Contains(s.clone()),
        Some(P::SafeRegex(r)) => return Ok(StrTest::Regex(r.regex.clone())),
        Some(P::Custom(c)) => {
            return Err(ctx.refuse(
                &format!("{path}.custom"),
                format!("custom string matcher {:?} is not supported", c.name),
            ))
        }
        None => return Err(ctx.invalid(path, "a string matcher needs a pattern")),
    };
    Ok(if m.ignore_case {
        StrTest::Regex(format!("(?is){}", test.as_regex()))
    } else {
        test
    })
}

impl StrTest {
    /// The same test as a whole-value regex.
    pub(crate) fn as_regex(&self) -> String {
        match self {
            StrTest::Exact(s) => regex::escape(s),
            StrTest::Prefix(s) => format!("{}.*", regex::escape(s)),
            StrTest::Suffix(s) => format!(".*{}", regex::escape(s)),
            StrTest::Contains(s) => format!(".*{}.*", regex::escape(s)),
            StrTest::Regex(r) => r.clone(),
        }
    }
}

pub(crate) fn percent(p: &types::Percent) -> f64 {
    p.value
}

/// `Some(v)` of an optional wrapper.
pub(crate) fn u32v(v: &Option<protobuf::UInt32Value>) -> Option<u32> {
    v.as_ref().map(|v| v.value)
}

pub(crate) fn boolv(v: &Option<protobuf::BoolValue>) -> Option<bool> {
    v.as_ref().map(|v| v.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_keep_literals_and_refuse_commands() {
        assert_eq!(literal_header_value("a%%b").as_deref(), Some("a%b"));
        assert_eq!(literal_header_value("100%").as_deref(), Some("100%"));
        assert_eq!(literal_header_value("%DOWNSTREAM_REMOTE_ADDRESS%"), None);
    }

    #[test]
    fn string_tests_become_regexes() {
        let ctx = Ctx::new("test", "t");
        let m = matcher::StringMatcher {
            ignore_case: true,
            match_pattern: Some(matcher::string_matcher::MatchPattern::Prefix("A.b".into())),
        };
        let t = string_matcher(&m, &ctx, "m").unwrap();
        assert_eq!(t, StrTest::Regex("(?is)A\\.b.*".into()));
        let re = regex::Regex::new(&format!("^(?:{})$", t.as_regex())).unwrap();
        assert!(re.is_match("a.BCD"));
        assert!(!re.is_match("axb"));
    }

    #[test]
    fn fractions_are_percentages() {
        let f = types::FractionalPercent {
            numerator: 2500,
            denominator: types::fractional_percent::DenominatorType::TenThousand as i32,
        };
        assert_eq!(fraction_percent(&f), 25.0);
    }
}
