//! Transport sockets: Envoy's Downstream/UpstreamTlsContext into MOSN's
//! `tls_context`. Certificates named by SDS are recorded in the context's
//! `sds_source` (MOSN's key, in MOSN's shape) and listed for the caller; the
//! model's validation refuses a context that still has them, so a config with
//! unfilled secrets never runs (`apply_secrets` fills them).

use super::any;
use super::error::{ConvertError, Ctx};
use super::proto::{self, StrTest};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tcp_stats::v3::Config as TcpStats;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use mosn_config::tls::TlsConfig;
use serde_json::{json, Value};

/// MOSN's `sds_source` keys: the certificate's and the validation context's secret.
pub(crate) const SDS_CERTIFICATE: &str = "CertificateConfig";
pub(crate) const SDS_VALIDATION: &str = "ValidationConfig";

/// A converted TLS context and the SDS secrets it waits for.
#[derive(Debug, Clone)]
pub(crate) struct TlsOut {
    pub tls: TlsConfig,
    pub secrets: Vec<String>,
}

/// ALPN names the model offers.
const ALPN: &[&str] = &["h2", "http/1.1"];

/// A listener filter chain's transport socket; None: plaintext.
pub(crate) fn downstream(
    ts: &TransportSocket,
    ctx: &mut Ctx,
    path: &str,
) -> Result<Option<TlsOut>, ConvertError> {
    let Some(any) = inner_config(ts, ctx, path)? else {
        return Ok(None);
    };
    let cfg: tls::DownstreamTlsContext = any::decode(&any, ctx, &format!("{path}.typed_config"))?;
    let p = format!("{path}.typed_config");
    let mut out = new_out();
    let common = cfg
        .common_tls_context
        .as_ref()
        .ok_or_else(|| ctx.invalid(&p, "common_tls_context with a certificate is required"))?;
    let v = common_context(
        common,
        true,
        ctx,
        &format!("{p}.common_tls_context"),
        &mut out,
    )?;
    if out.tls.cert_chain.is_empty() && sds(&out.tls, SDS_CERTIFICATE).is_none() {
        return Err(ctx.invalid(
            &format!("{p}.common_tls_context"),
            "a listener's TLS context needs tls_certificates or tls_certificate_sds_secret_configs",
        ));
    }
    let require = proto::boolv(&cfg.require_client_certificate).unwrap_or(false);
    if v.any {
        out.tls.verify_client = true;
        out.tls.require_client_cert = require;
    } else if require {
        return Err(ctx.refuse(
            &format!("{p}.require_client_certificate"),
            "requiring a client certificate without a validation context (nothing to verify it against) is not supported",
        ));
    }
    exact_sans(&v.sans, ctx, &p, &mut out.tls)?;
    if proto::boolv(&cfg.require_sni) == Some(true) {
        ctx.warn(
            &format!("{p}.require_sni"),
            "not enforced: connections without SNI get the first certificate",
        );
    }
    if cfg.session_ticket_keys_type.is_some() {
        use tls::downstream_tls_context::SessionTicketKeysType as K;
        if !matches!(
            cfg.session_ticket_keys_type,
            Some(K::DisableStatelessSessionResumption(_))
        ) {
            ctx.warn(
                &format!("{p}.session_ticket_keys"),
                "ignored: rustls draws its own ticket keys",
            );
        }
    }
    if cfg.prefer_client_ciphers {
        ctx.warn(&format!("{p}.prefer_client_ciphers"), "ignored");
    }
    Ok(Some(out))
}

/// A cluster's transport socket; None: plaintext.
pub(crate) fn upstream(
    ts: &TransportSocket,
    ctx: &mut Ctx,
    path: &str,
) -> Result<Option<TlsOut>, ConvertError> {
    let Some(any) = inner_config(ts, ctx, path)? else {
        return Ok(None);
    };
    let p = format!("{path}.typed_config");
    let cfg: tls::UpstreamTlsContext = any::decode(&any, ctx, &p)?;
    let mut out = new_out();
    let v = match &cfg.common_tls_context {
        Some(c) => common_context(c, false, ctx, &format!("{p}.common_tls_context"), &mut out)?,
        None => Validation::default(),
    };
    out.tls.server_name = cfg.sni.clone();
    if cfg.auto_host_sni && !cfg.sni.is_empty() {
        ctx.warn(
            &format!("{p}.auto_host_sni"),
            "sni is set: it is sent instead of the host's name",
        );
    }
    if cfg.allow_renegotiation {
        ctx.warn(
            &format!("{p}.allow_renegotiation"),
            "ignored: rustls never renegotiates",
        );
    }
    if v.accept_untrusted {
        out.tls.insecure_skip = true;
        ctx.warn(
            &format!("{p}.common_tls_context.validation_context.trust_chain_verification"),
            "ACCEPT_UNTRUSTED: the upstream's certificate is not verified",
        );
    } else if !v.any {
        // Envoy verifies nothing without a validation context; the model verifies by
        // default, so say so explicitly.
        out.tls.insecure_skip = true;
        ctx.warn(
            &format!("{p}.common_tls_context"),
            "no validation context: the upstream's certificate is not verified (as in Envoy)",
        );
    } else if v.sans.is_empty() {
        ctx.warn(
            &format!("{p}.common_tls_context"),
            "the upstream's certificate is also verified against the SNI name (sni, else the \
             host's hostname, else its IP) unless its validation secret names subject alt \
             names; Envoy checks only the chain",
        );
    } else {
        // Envoy's rule, and the model's: the list is the name check and the SNI is
        // only sent (Istio's ISTIO_MUTUAL: SPIFFE IDs with an outbound_ SNI).
        exact_sans(&v.sans, ctx, &p, &mut out.tls)?;
    }
    Ok(Some(out))
}

/// The subject alt names a peer certificate must carry (a listener's client, a
/// cluster's upstream): exact matches only, as the model compares them.
fn exact_sans(
    sans: &[(String, StrTest)],
    ctx: &Ctx,
    p: &str,
    tls: &mut TlsConfig,
) -> Result<(), ConvertError> {
    for (i, san) in sans.iter().enumerate() {
        match san {
            (_, StrTest::Exact(name)) => tls.match_subject_alt_names.push(name.clone()),
            (field, other) => {
                return Err(ctx.refuse(
                    &format!("{p}.common_tls_context.validation_context.{field}"),
                    format!(
                    "only exact subject alt name matches are supported, not {other:?} (entry {i})"
                ),
                ))
            }
        }
    }
    Ok(())
}

fn new_out() -> TlsOut {
    TlsOut {
        tls: TlsConfig {
            status: true,
            ..TlsConfig::default()
        },
        secrets: Vec::new(),
    }
}

/// The TLS typed config of a transport socket (Istio's tcp_stats wrapper removed);
/// None for a plaintext socket.
fn inner_config(
    ts: &TransportSocket,
    ctx: &mut Ctx,
    path: &str,
) -> Result<Option<envoy_types::pb::google::protobuf::Any>, ConvertError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        return match ts.name.as_str() {
            "envoy.transport_sockets.raw_buffer" | "raw_buffer" | "" => Ok(None),
            other => Err(ctx.refuse(
                &format!("{path}.name"),
                format!("transport socket {other:?} without typed_config is not supported"),
            )),
        };
    };
    if any::is::<RawBuffer>(any) {
        return Ok(None);
    }
    if any::is::<TcpStats>(any) {
        // Istio's wrapper counts TCP statistics around the real socket.
        let stats: TcpStats = any::decode(any, ctx, &format!("{path}.typed_config"))?;
        ctx.warn(
            &format!("{path}.typed_config"),
            "the tcp_stats wrapper is skipped (its inner transport socket is used)",
        );
        return match &stats.transport_socket {
            Some(inner) => {
                inner_config(inner, ctx, &format!("{path}.typed_config.transport_socket"))
            }
            None => Ok(None),
        };
    }
    if any::is::<tls::DownstreamTlsContext>(any) || any::is::<tls::UpstreamTlsContext>(any) {
        return Ok(Some(any.clone()));
    }
    Err(ctx.refuse(
        &format!("{path}.typed_config"),
        format!(
            "transport socket {:?} ({}) is not supported (TLS or raw_buffer)",
            ts.name,
            any::type_name(&any.type_url)
        ),
    ))
}

/// What a validation context asks for.
#[derive(Debug, Default)]
struct Validation {
    /// Any validation at all (a CA inline or by SDS, the system roots, names).
    any: bool,
    accept_untrusted: bool,
    /// Subject alt name tests, with the field they came from.
    sans: Vec<(String, StrTest)>,
}

fn common_context(
    c: &tls::CommonTlsContext,
    server: bool,
    ctx: &mut Ctx,
    p: &str,
    out: &mut TlsOut,
) -> Result<Validation, ConvertError> {
    if let Some(params) = &c.tls_params {
        tls_params(params, ctx, &format!("{p}.tls_params"), &mut out.tls)?;
    }
    if let Some(first) = c.tls_certificates.first() {
        certificate(
            first,
            ctx,
            &format!("{p}.tls_certificates[0]"),
            &mut out.tls,
        )?;
        if c.tls_certificates.len() > 1 {
            ctx.warn(
                &format!("{p}.tls_certificates"),
                "only the first certificate is used",
            );
        }
    }
    if let Some(first) = c.tls_certificate_sds_secret_configs.first() {
        if !out.tls.cert_chain.is_empty() {
            ctx.warn(
                &format!("{p}.tls_certificate_sds_secret_configs"),
                "ignored: tls_certificates is set",
            );
        } else {
            sds_ref(
                first,
                SDS_CERTIFICATE,
                ctx,
                &format!("{p}.tls_certificate_sds_secret_configs[0]"),
                out,
            )?;
        }
        if c.tls_certificate_sds_secret_configs.len() > 1 {
            ctx.warn(
                &format!("{p}.tls_certificate_sds_secret_configs"),
                "only the first certificate is used",
            );
        }
    }
    #[allow(deprecated)]
    let providers = c.tls_certificate_provider_instance.is_some()
        || c.tls_certificate_certificate_provider.is_some()
        || c.tls_certificate_certificate_provider_instance.is_some();
    if providers {
        return Err(ctx.refuse(
            p,
            "certificate provider instances are not supported (use tls_certificates or SDS)",
        ));
    }
    if c.custom_tls_certificate_selector.is_some() {
        return Err(ctx.refuse(
            &format!("{p}.custom_tls_certificate_selector"),
            "not supported",
        ));
    }
    if c.custom_handshaker.is_some() {
        return Err(ctx.refuse(&format!("{p}.custom_handshaker"), "not supported"));
    }
    if c.key_log.is_some() {
        ctx.warn(&format!("{p}.key_log"), "ignored");
    }
    alpn(
        &c.alpn_protocols,
        ctx,
        &format!("{p}.alpn_protocols"),
        &mut out.tls,
    );

    use tls::common_tls_context::ValidationContextType as V;
    let mut v = Validation::default();
    match &c.validation_context_type {
        None => {}
        Some(V::ValidationContext(vc)) => validation_context(
            vc,
            server,
            ctx,
            &format!("{p}.validation_context"),
            &mut out.tls,
            &mut v,
        )?,
        Some(V::ValidationContextSdsSecretConfig(s)) => {
            sds_ref(
                s,
                SDS_VALIDATION,
                ctx,
                &format!("{p}.validation_context_sds_secret_config"),
                out,
            )?;
            v.any = true;
        }
        Some(V::CombinedValidationContext(cv)) => {
            let cp = format!("{p}.combined_validation_context");
            if let Some(d) = &cv.default_validation_context {
                validation_context(
                    d,
                    server,
                    ctx,
                    &format!("{cp}.default_validation_context"),
                    &mut out.tls,
                    &mut v,
                )?;
            }
            match &cv.validation_context_sds_secret_config {
                Some(s) => {
                    sds_ref(
                        s,
                        SDS_VALIDATION,
                        ctx,
                        &format!("{cp}.validation_context_sds_secret_config"),
                        out,
                    )?;
                    v.any = true;
                }
                None => {
                    return Err(ctx.invalid(&cp, "validation_context_sds_secret_config is required"))
                }
            }
            #[allow(deprecated)]
            if cv.validation_context_certificate_provider.is_some()
                || cv
                    .validation_context_certificate_provider_instance
                    .is_some()
            {
                return Err(ctx.refuse(&cp, "certificate provider instances are not supported"));
            }
        }
        #[allow(deprecated)]
        Some(
            V::ValidationContextCertificateProvider(_)
            | V::ValidationContextCertificateProviderInstance(_),
        ) => return Err(ctx.refuse(p, "certificate provider instances are not supported")),
    }
    Ok(v)
}

/// An SDS validation secret's checks (as an inline context's) and its names.
pub(crate) fn validation_names(
    vc: &tls::CertificateValidationContext,
    ctx: &mut Ctx,
    p: &str,
    t: &mut TlsConfig,
) -> Result<Vec<(String, StrTest)>, ConvertError> {
    let mut v = Validation::default();
    validation_context(vc, false, ctx, p, t, &mut v)?;
    if v.accept_untrusted {
        return Err(ctx.refuse(
            &format!("{p}.trust_chain_verification"),
            "ACCEPT_UNTRUSTED in a validation secret is not supported",
        ));
    }
    Ok(v.sans)
}

fn validation_context(
    vc: &tls::CertificateValidationContext,
    server: bool,
    ctx: &mut Ctx,
    p: &str,
    t: &mut TlsConfig,
    v: &mut Validation,
) -> Result<(), ConvertError> {
    if let Some(ca) = &vc.trusted_ca {
        t.ca_cert = proto::data_source(ca, ctx, &format!("{p}.trusted_ca"))?;
        v.any = true;
    }
    if vc.system_root_certs.is_some() {
        if server {
            return Err(ctx.refuse(
                &format!("{p}.system_root_certs"),
                "client certificates are verified against a trusted_ca only",
            ));
        }
        v.any = true;
    }
    if vc.ca_certificate_provider_instance.is_some() {
        return Err(ctx.refuse(
            &format!("{p}.ca_certificate_provider_instance"),
            "not supported",
        ));
    }
    if vc.watched_directory.is_some() {
        ctx.warn(
            &format!("{p}.watched_directory"),
            "ignored: certificate files are watched anyway",
        );
    }
    for (field, set) in [
        (
            "verify_certificate_spki",
            !vc.verify_certificate_spki.is_empty(),
        ),
        (
            "verify_certificate_hash",
            !vc.verify_certificate_hash.is_empty(),
        ),
        ("crl", vc.crl.is_some()),
        ("allow_expired_certificate", vc.allow_expired_certificate),
        (
            "custom_validator_config",
            vc.custom_validator_config.is_some(),
        ),
        (
            "require_signed_certificate_timestamp",
            proto::boolv(&vc.require_signed_certificate_timestamp) == Some(true),
        ),
    ] {
        if set {
            return Err(ctx.refuse(&format!("{p}.{field}"), "not supported"));
        }
    }
    if vc.max_verify_depth.is_some() {
        ctx.warn(&format!("{p}.max_verify_depth"), "ignored");
    }
    use tls::certificate_validation_context::TrustChainVerification as T;
    if vc.trust_chain_verification == T::AcceptUntrusted as i32 {
        if server {
            return Err(ctx.refuse(
                &format!("{p}.trust_chain_verification"),
                "ACCEPT_UNTRUSTED client certificates are not supported",
            ));
        }
        v.accept_untrusted = true;
    }
    #[allow(deprecated)]
    for (i, m) in vc.match_subject_alt_names.iter().enumerate() {
        let test = proto::string_matcher(m, ctx, &format!("{p}.match_subject_alt_names[{i}]"))?;
        v.sans.push(("match_subject_alt_names".into(), test));
        v.any = true;
    }
    use tls::subject_alt_name_matcher::SanType;
    for (i, m) in vc.match_typed_subject_alt_names.iter().enumerate() {
        let mp = format!("{p}.match_typed_subject_alt_names[{i}]");
        let kind = match SanType::try_from(m.san_type) {
            Ok(SanType::Dns) => "DNS",
            Ok(SanType::Uri) => "URI",
            Ok(SanType::IpAddress) => "IP_ADDRESS",
            _ => {
                return Err(ctx.refuse(
                    &format!("{mp}.san_type"),
                    "only DNS, URI and IP_ADDRESS subject alt names are matched",
                ))
            }
        };
        let Some(sm) = &m.matcher else {
            return Err(ctx.invalid(&format!("{mp}.matcher"), "a matcher is required"));
        };
        let test = proto::string_matcher(sm, ctx, &format!("{mp}.matcher"))?;
        v.sans
            .push((format!("match_typed_subject_alt_names[{kind}]"), test));
        v.any = true;
    }
    Ok(())
}

pub(crate) fn certificate(
    c: &tls::TlsCertificate,
    ctx: &mut Ctx,
    p: &str,
    t: &mut TlsConfig,
) -> Result<(), ConvertError> {
    for (field, set) in [
        ("pkcs12", c.pkcs12.is_some()),
        ("private_key_provider", c.private_key_provider.is_some()),
        ("password", c.password.is_some()),
    ] {
        if set {
            return Err(ctx.refuse(&format!("{p}.{field}"), "not supported"));
        }
    }
    let chain = c
        .certificate_chain
        .as_ref()
        .ok_or_else(|| ctx.invalid(&format!("{p}.certificate_chain"), "required"))?;
    let key = c
        .private_key
        .as_ref()
        .ok_or_else(|| ctx.invalid(&format!("{p}.private_key"), "required"))?;
    t.cert_chain = proto::data_source(chain, ctx, &format!("{p}.certificate_chain"))?;
    t.private_key = proto::data_source(key, ctx, &format!("{p}.private_key"))?;
    if c.ocsp_staple.is_some() || !c.signed_certificate_timestamp.is_empty() {
        ctx.warn(
            p,
            "OCSP staples and signed certificate timestamps are not sent",
        );
    }
    if c.watched_directory.is_some() {
        ctx.warn(
            &format!("{p}.watched_directory"),
            "ignored: certificate files are watched anyway",
        );
    }
    Ok(())
}

fn sds_ref(
    s: &tls::SdsSecretConfig,
    key: &str,
    ctx: &Ctx,
    p: &str,
    out: &mut TlsOut,
) -> Result<(), ConvertError> {
    if s.name.is_empty() {
        return Err(ctx.invalid(&format!("{p}.name"), "an SDS secret needs a name"));
    }
    let mut source = match std::mem::take(&mut out.tls.sds_source) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    source.insert(key.to_owned(), json!({"name": s.name}));
    out.tls.sds_source = Value::Object(source);
    if !out.secrets.contains(&s.name) {
        out.secrets.push(s.name.clone());
    }
    Ok(())
}

/// The SDS secret a context names under `key`, if any.
pub(crate) fn sds<'a>(t: &'a TlsConfig, key: &str) -> Option<&'a str> {
    t.sds_source.get(key)?.get("name")?.as_str()
}

fn alpn(list: &[String], ctx: &mut Ctx, p: &str, t: &mut TlsConfig) {
    let (kept, dropped): (Vec<&String>, Vec<&String>) =
        list.iter().partition(|a| ALPN.contains(&a.as_str()));
    if !dropped.is_empty() {
        ctx.warn(
            p,
            format!("ALPN protocols {dropped:?} are not offered (mosn-rs speaks h2 and http/1.1)"),
        );
    }
    t.alpn = kept
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
}

fn tls_params(
    params: &tls::TlsParameters,
    ctx: &mut Ctx,
    p: &str,
    t: &mut TlsConfig,
) -> Result<(), ConvertError> {
    use tls::tls_parameters::TlsProtocol as V;
    let version = |v: i32, field: &str| -> Result<String, ConvertError> {
        Ok(match V::try_from(v) {
            Ok(V::TlsAuto) => String::new(),
            Ok(V::TlSv10) => "tlsv1_0".into(),
            Ok(V::TlSv11) => "tlsv1_1".into(),
            Ok(V::TlSv12) => "tlsv1_2".into(),
            Ok(V::TlSv13) => "tlsv1_3".into(),
            Err(_) => {
                return Err(ctx.invalid(&format!("{p}.{field}"), format!("unknown TLS version {v}")))
            }
        })
    };
    t.min_version = version(
        params.tls_minimum_protocol_version,
        "tls_minimum_protocol_version",
    )?;
    t.max_version = version(
        params.tls_maximum_protocol_version,
        "tls_maximum_protocol_version",
    )?;
    if matches!(t.max_version.as_str(), "tlsv1_0" | "tlsv1_1") {
        return Err(ctx.refuse(
            &format!("{p}.tls_maximum_protocol_version"),
            "TLS 1.0 and 1.1 are not supported (rustls speaks TLS 1.2 and 1.3)",
        ));
    }
    if matches!(t.min_version.as_str(), "tlsv1_0" | "tlsv1_1") {
        // rustls's floor is 1.2; saying 1.0 would only earn a model warning.
        t.min_version.clear();
        ctx.warn(
            &format!("{p}.tls_minimum_protocol_version"),
            "TLS 1.0 and 1.1 are not supported: TLS 1.2 is the minimum",
        );
    }
    t.cipher_suites = names(
        &params.cipher_suites,
        cipher_name,
        ctx,
        &format!("{p}.cipher_suites"),
        "cipher suite",
    )?
    .join(":");
    t.ecdh_curves = names(
        &params.ecdh_curves,
        curve_name,
        ctx,
        &format!("{p}.ecdh_curves"),
        "curve",
    )?
    .join(",");
    if !params.signature_algorithms.is_empty() {
        ctx.warn(
            &format!("{p}.signature_algorithms"),
            "ignored: rustls's defaults are used",
        );
    }
    if !params.compliance_policies.is_empty() {
        return Err(ctx.refuse(&format!("{p}.compliance_policies"), "not supported"));
    }
    Ok(())
}

/// Maps a list of Envoy (BoringSSL) names, dropping those rustls lacks with a warning;
/// refuses a list left empty (the defaults would be wider than what was asked).
fn names(
    list: &[String],
    map: fn(&str) -> Option<&'static str>,
    ctx: &mut Ctx,
    p: &str,
    what: &str,
) -> Result<Vec<&'static str>, ConvertError> {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for entry in list {
        // BoringSSL's equal-preference groups: "[A|B]".
        for name in entry.trim_matches(|c| c == '[' || c == ']').split('|') {
            match map(name.trim()) {
                Some(n) if !kept.contains(&n) => kept.push(n),
                Some(_) => {}
                None => dropped.push(name.trim().to_owned()),
            }
        }
    }
    if !dropped.is_empty() {
        if kept.is_empty() {
            return Err(ctx.refuse(
                p,
                format!("no {what} left that mosn-rs offers among {dropped:?}"),
            ));
        }
        ctx.warn(p, format!("{what}s {dropped:?} are not offered: skipped"));
    }
    Ok(kept)
}

/// BoringSSL cipher names to the MOSN names rustls offers.
fn cipher_name(envoy: &str) -> Option<&'static str> {
    offered(
        mosn_config::tls::MOSN_CIPHERS,
        match envoy {
            "ECDHE-ECDSA-AES256-GCM-SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305" => "ECDHE-ECDSA-WITH-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305" => "ECDHE-RSA-WITH-CHACHA20-POLY1305",
            "AES256-GCM-SHA384" => "AES256-GCM-SHA384",
            "AES128-GCM-SHA256" => "AES128-GCM-SHA256",
            _ => return None,
        },
    )
}

/// `name` when the model says rustls offers it.
fn offered(known: &[(&'static str, bool)], name: &str) -> Option<&'static str> {
    known
        .iter()
        .find(|(n, ok)| *ok && *n == name)
        .map(|(n, _)| *n)
}

fn curve_name(envoy: &str) -> Option<&'static str> {
    offered(
        mosn_config::tls::MOSN_CURVES,
        match envoy {
            "X25519" => "x25519",
            "P-256" => "p256",
            "P-384" => "p384",
            _ => return None,
        },
    )
}
