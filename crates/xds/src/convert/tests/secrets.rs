use super::fixtures::*;
use super::*;
use crate::convert::{
    apply_secrets, cluster, listener, pending_secrets, secret, ConvertError, SecretOut,
};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use std::collections::HashMap;

pub(crate) const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
pub(crate) const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
pub(crate) const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";

fn inline_bytes(s: &str) -> Option<core::DataSource> {
    Some(core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineBytes(
            s.as_bytes().to_vec(),
        )),
        ..Default::default()
    })
}

/// Istio's two secrets: the workload certificate and the root CA.
pub(crate) fn istio_secrets() -> HashMap<String, SecretOut> {
    let default = tls::Secret {
        name: "default".into(),
        r#type: Some(tls::secret::Type::TlsCertificate(tls::TlsCertificate {
            certificate_chain: inline_bytes(CERT),
            private_key: inline_bytes(KEY),
            ..Default::default()
        })),
    };
    let root = tls::Secret {
        name: "ROOTCA".into(),
        r#type: Some(tls::secret::Type::ValidationContext(
            tls::CertificateValidationContext {
                trusted_ca: inline_bytes(CA),
                ..Default::default()
            },
        )),
    };
    [default, root]
        .iter()
        .map(|s| (s.name.clone(), secret(s).expect("converts").value))
        .collect()
}

#[test]
fn certificates_and_validation_contexts() {
    let s = istio_secrets();
    assert_eq!(
        s["default"],
        SecretOut::Certificate {
            cert_chain: CERT.into(),
            private_key: KEY.into()
        }
    );
    assert_eq!(
        s["ROOTCA"],
        SecretOut::Validation {
            ca_cert: CA.into(),
            match_subject_alt_names: vec![]
        }
    );
    // Files stay paths; SANs are kept when exact.
    let v = tls::Secret {
        name: "ca".into(),
        r#type: Some(tls::secret::Type::ValidationContext(
            tls::CertificateValidationContext {
                trusted_ca: Some(core::DataSource {
                    specifier: Some(core::data_source::Specifier::Filename(
                        "/etc/certs/root.pem".into(),
                    )),
                    ..Default::default()
                }),
                match_typed_subject_alt_names: vec![spiffe_san("spiffe://cluster.local/ns/a/sa/b")],
                ..Default::default()
            },
        )),
    };
    assert_eq!(
        secret(&v).expect("converts").value,
        SecretOut::Validation {
            ca_cert: "/etc/certs/root.pem".into(),
            match_subject_alt_names: vec!["spiffe://cluster.local/ns/a/sa/b".into()]
        }
    );
}

#[test]
fn refused_secrets() {
    // Inline data that is not PEM would be read as a file name by the model.
    let s = tls::Secret {
        name: "der".into(),
        r#type: Some(tls::secret::Type::TlsCertificate(tls::TlsCertificate {
            certificate_chain: inline_bytes("MIIB..."),
            private_key: inline_bytes(KEY),
            ..Default::default()
        })),
    };
    assert_eq!(
        refusal(secret(&s)),
        "secret \"der\": tls_certificate.certificate_chain: inline data that is not PEM is not supported"
    );
    let s = tls::Secret {
        name: "g".into(),
        r#type: Some(tls::secret::Type::GenericSecret(Default::default())),
    };
    assert!(refusal(secret(&s)).starts_with("secret \"g\": generic_secret: not supported"));
}

#[test]
fn apply_fills_listener_and_cluster_contexts() {
    let secrets = istio_secrets();
    let mut l = listener(&inbound_tls()).expect("converts").value.listener;
    assert_eq!(pending_secrets(&l), vec!["default", "ROOTCA"]);
    let keep = l.clone();
    apply_secrets(&mut l, &secrets).expect("applies");
    assert!(pending_secrets(&l).is_empty());
    let t = l.filter_chains[0].tls_context.as_ref().expect("TLS");
    assert_eq!(
        (
            t.cert_chain.as_str(),
            t.private_key.as_str(),
            t.ca_cert.as_str()
        ),
        (CERT, KEY, CA)
    );
    assert!(t.sds_source.is_null() && t.verify_client);

    let mut c = cluster(&eds_cluster(REVIEWS))
        .expect("converts")
        .value
        .cluster;
    apply_secrets(&mut c, &secrets).expect("applies");
    let t = c.tls_context.as_ref().expect("TLS");
    assert_eq!((t.cert_chain.as_str(), t.ca_cert.as_str()), (CERT, CA));

    // A missing secret names the context waiting for it.
    let mut l = keep;
    let mut partial = secrets.clone();
    partial.remove("ROOTCA");
    let err = apply_secrets(&mut l, &partial).expect_err("ROOTCA is missing");
    assert!(matches!(err, ConvertError::MissingSecret { .. }));
    assert_eq!(
        err.to_string(),
        "listener \"virtualInbound\": filter_chains[0].tls_context.sds_source: SDS secret \"ROOTCA\" is not known (yet)"
    );
    // A certificate where a CA is expected.
    let mut swapped = secrets.clone();
    swapped.insert("ROOTCA".into(), secrets["default"].clone());
    assert!(apply_secrets(&mut l, &swapped)
        .expect_err("wrong kind")
        .to_string()
        .contains("is not a validation_context"));

    // A validation secret's names reach a cluster as a listener's: the upstream's
    // certificate must carry one of them.
    let mut named = secrets.clone();
    named.insert(
        "ROOTCA".into(),
        SecretOut::Validation {
            ca_cert: CA.into(),
            match_subject_alt_names: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
        },
    );
    let mut c = cluster(&eds_cluster(REVIEWS))
        .expect("converts")
        .value
        .cluster;
    apply_secrets(&mut c, &named).expect("applies");
    let t = c.tls_context.as_ref().expect("TLS");
    assert_eq!(
        (t.ca_cert.as_str(), t.match_subject_alt_names.as_slice()),
        (CA, &["spiffe://cluster.local/ns/a/sa/b".to_owned()][..])
    );
}
