//! SDS: Envoy's `Secret` into what a `tls_context` takes, and the filling of the
//! contexts that name secrets (their `sds_source`) once the secrets are known.

use super::error::{ConvertError, Converted, Ctx};
use super::proto::{self, StrTest};
use super::tls::{self as tls_conv, SDS_CERTIFICATE, SDS_VALIDATION};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, Secret};
use mosn_config::tls::TlsConfig;
use mosn_config::{ClusterConfig, ListenerConfig};
use serde_json::Value;
use std::collections::HashMap;

/// What an SDS secret gives a `tls_context`. Certificates and CAs are PEM text (from
/// `inline_bytes`/`inline_string`) or file paths (from `filename`), as MOSN's
/// `tls_context` takes them.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretOut {
    /// `tls_certificate`: `cert_chain` and `private_key`.
    Certificate {
        cert_chain: String,
        private_key: String,
    },
    /// `validation_context`: `ca_cert` (`trusted_ca`) and the exact subject alt names
    /// a peer certificate must carry (empty: any).
    Validation {
        ca_cert: String,
        match_subject_alt_names: Vec<String>,
    },
}

pub fn secret(s: &Secret) -> Result<Converted<SecretOut>, ConvertError> {
    let mut ctx = Ctx::new("secret", &s.name);
    if s.name.is_empty() {
        return Err(ctx.invalid("name", "a secret needs a name"));
    }
    let out = match &s.r#type {
        Some(secret::Type::TlsCertificate(c)) => {
            let mut t = TlsConfig::default();
            tls_conv::certificate(c, &mut ctx, "tls_certificate", &mut t)?;
            SecretOut::Certificate {
                cert_chain: t.cert_chain,
                private_key: t.private_key,
            }
        }
        Some(secret::Type::ValidationContext(vc)) => {
            let p = "validation_context";
            let Some(ca) = &vc.trusted_ca else {
                return Err(ctx.refuse(
                    &format!("{p}.trusted_ca"),
                    "a validation context secret without trusted_ca is not supported",
                ));
            };
            let ca_cert = proto::data_source(ca, &ctx, &format!("{p}.trusted_ca"))?;
            // The remaining fields are checked as in an inline context; only the
            // names are kept, and only exact ones.
            let mut t = TlsConfig::default();
            let sans = tls_conv::validation_names(vc, &mut ctx, p, &mut t)?;
            let mut names = Vec::new();
            for (field, test) in sans {
                match test {
                    StrTest::Exact(n) => names.push(n),
                    other => {
                        return Err(ctx.refuse(
                            &format!("{p}.{field}"),
                            format!(
                                "only exact subject alt name matches are supported, not {other:?}"
                            ),
                        ))
                    }
                }
            }
            SecretOut::Validation {
                ca_cert,
                match_subject_alt_names: names,
            }
        }
        Some(secret::Type::SessionTicketKeys(_)) => {
            return Err(ctx.refuse(
                "session_ticket_keys",
                "not supported: rustls draws its own ticket keys",
            ))
        }
        Some(secret::Type::GenericSecret(_)) => {
            return Err(ctx.refuse(
                "generic_secret",
                "not supported (no filter of mosn-rs reads one)",
            ))
        }
        None => {
            return Err(ctx.invalid(
                "type",
                "a secret needs a tls_certificate or validation_context",
            ))
        }
    };
    Ok(ctx.finish(out))
}

/// A config whose TLS contexts may name SDS secrets: a listener or a cluster.
pub trait TlsHolder {
    /// How errors name it (`listener "x"`, `cluster "y"`).
    fn resource(&self) -> String;
    /// Each TLS context with the path of its field.
    fn tls_contexts(&mut self) -> Vec<(String, &mut TlsConfig)>;
    /// The same, to read.
    fn tls_refs(&self) -> Vec<&TlsConfig>;
}

impl TlsHolder for ListenerConfig {
    fn resource(&self) -> String {
        format!("listener {:?}", self.name)
    }

    fn tls_refs(&self) -> Vec<&TlsConfig> {
        self.filter_chains
            .iter()
            .flat_map(|c| c.tls_context.iter().chain(&c.tls_context_set))
            .collect()
    }

    fn tls_contexts(&mut self) -> Vec<(String, &mut TlsConfig)> {
        let mut out = Vec::new();
        for (ci, chain) in self.filter_chains.iter_mut().enumerate() {
            if let Some(t) = &mut chain.tls_context {
                out.push((format!("filter_chains[{ci}].tls_context"), t));
            }
            for (ti, t) in chain.tls_context_set.iter_mut().enumerate() {
                out.push((format!("filter_chains[{ci}].tls_context_set[{ti}]"), t));
            }
        }
        out
    }
}

impl TlsHolder for ClusterConfig {
    fn resource(&self) -> String {
        format!("cluster {:?}", self.name)
    }

    fn tls_refs(&self) -> Vec<&TlsConfig> {
        self.tls_context.iter().collect()
    }

    fn tls_contexts(&mut self) -> Vec<(String, &mut TlsConfig)> {
        self.tls_context
            .iter_mut()
            .map(|t| ("tls_context".to_owned(), t))
            .collect()
    }
}

/// The SDS secrets a converted listener or cluster still waits for.
pub fn pending_secrets(target: &impl TlsHolder) -> Vec<String> {
    let mut names = Vec::new();
    for t in target.tls_refs() {
        for key in [SDS_CERTIFICATE, SDS_VALIDATION] {
            if let Some(n) = tls_conv::sds(t, key) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_owned());
                }
            }
        }
    }
    names
}

/// Fills every TLS context of a converted listener or cluster from the SDS secrets it
/// names, and removes the references (`sds_source`). Keep the converted config and
/// apply to a fresh clone whenever a secret changes: the filled copy no longer says
/// which fields came from which secret. A validation context (a listener's or a
/// cluster's) keeps its own subject alt names and takes the secret's when it has none
/// (Envoy's combined validation context).
pub fn apply_secrets(
    target: &mut impl TlsHolder,
    secrets: &HashMap<String, SecretOut>,
) -> Result<(), ConvertError> {
    let resource = target.resource();
    for (path, t) in target.tls_contexts() {
        let wanted = |key: &str| tls_conv::sds(t, key).map(str::to_owned);
        let (cert, validation) = (wanted(SDS_CERTIFICATE), wanted(SDS_VALIDATION));
        let lookup = |name: &str| {
            secrets
                .get(name)
                .ok_or_else(|| ConvertError::MissingSecret {
                    resource: resource.clone(),
                    path: format!("{path}.sds_source"),
                    name: name.to_owned(),
                })
        };
        let wrong = |name: &str, want: &str| ConvertError::Invalid {
            resource: resource.clone(),
            path: format!("{path}.sds_source"),
            message: format!("SDS secret {name:?} is not a {want}"),
        };
        if let Some(name) = &cert {
            match lookup(name)? {
                SecretOut::Certificate {
                    cert_chain,
                    private_key,
                } => {
                    t.cert_chain = cert_chain.clone();
                    t.private_key = private_key.clone();
                }
                SecretOut::Validation { .. } => return Err(wrong(name, "tls_certificate")),
            }
        }
        if let Some(name) = &validation {
            match lookup(name)? {
                SecretOut::Validation {
                    ca_cert,
                    match_subject_alt_names,
                } => {
                    t.ca_cert = ca_cert.clone();
                    // ACCEPT_UNTRUSTED (insecure_skip) lets any certificate through in
                    // Envoy, names included: nothing to check them against then.
                    if t.match_subject_alt_names.is_empty() && !t.insecure_skip {
                        t.match_subject_alt_names = match_subject_alt_names.clone();
                    }
                }
                SecretOut::Certificate { .. } => return Err(wrong(name, "validation_context")),
            }
        }
        t.sds_source = Value::Null;
    }
    Ok(())
}
