//! The upstream SAN-list verifier on certificates minted here: a tiny DER writer and
//! ring's ECDSA P-256, so the tests need no tool and commit no key.

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use std::time::Duration;

const SPIFFE_APP: &str = "spiffe://cluster.local/ns/default/sa/app";
const ISTIO_SNI: &str = "outbound_.80_._.app.default.svc.cluster.local";

// ---- DER ---------------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An OID from its DER content bytes.
fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

fn name(cn: &str) -> Vec<u8> {
    seq(&[tlv(
        0x31,
        &seq(&[oid(COMMON_NAME), tlv(0x0c, cn.as_bytes())]),
    )])
}

fn extension(id: &[u8], critical: bool, value: Vec<u8>) -> Vec<u8> {
    let mut parts = vec![oid(id)];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(tlv(0x04, &value));
    seq(&parts)
}

/// A SAN in openssl's notation: `URI:...`, `DNS:...`, `IP:...`.
fn general_name(san: &str) -> Vec<u8> {
    match san.split_once(':') {
        Some(("URI", u)) => tlv(0x86, u.as_bytes()),
        Some(("DNS", d)) => tlv(0x82, d.as_bytes()),
        Some(("IP", ip)) => match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => tlv(0x87, &v4.octets()),
            Ok(std::net::IpAddr::V6(v6)) => tlv(0x87, &v6.octets()),
            Err(e) => panic!("{ip}: {e}"),
        },
        _ => panic!("SAN {san:?}: expected URI:, DNS: or IP:"),
    }
}

// ---- certificates ------------------------------------------------------------------

/// A key pair, its name and the certificate made for it.
struct Minted {
    key: EcdsaKeyPair,
    subject: Vec<u8>,
    der: CertificateDer<'static>,
}

/// A certificate for a new key: self-signed when `issuer` is None. Valid from 2020 to
/// 2049 (UTCTime's last years), so now is inside and a clock in 2096 is past it.
fn mint(cn: &str, issuer: Option<&Minted>, serial: u8, extensions: Vec<Vec<u8>>) -> Minted {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    let subject = name(cn);
    let alg = seq(&[oid(ECDSA_SHA256)]);
    let spki = seq(&[
        seq(&[oid(EC_PUBLIC_KEY), oid(P256)]),
        tlv(0x03, &[&[0u8][..], key.public_key().as_ref()].concat()),
    ]);
    let tbs = seq(&[
        tlv(0xa0, &tlv(0x02, &[2])),
        tlv(0x02, &[serial]),
        alg.clone(),
        issuer.map_or_else(|| subject.clone(), |i| i.subject.clone()),
        seq(&[tlv(0x17, b"200101000000Z"), tlv(0x17, b"491231235959Z")]),
        subject.clone(),
        spki,
        tlv(0xa3, &seq(&extensions)),
    ]);
    let signer = issuer.map_or(&key, |i| &i.key);
    let signature = signer.sign(&rng, &tbs).expect("sign");
    let der = seq(&[
        tbs,
        alg,
        tlv(0x03, &[&[0u8][..], signature.as_ref()].concat()),
    ]);
    Minted {
        key,
        subject,
        der: CertificateDer::from(der),
    }
}

fn ca(cn: &str) -> Minted {
    let is_ca = seq(&[vec![0x01, 0x01, 0xff]]);
    mint(cn, None, 1, vec![extension(BASIC_CONSTRAINTS, true, is_ca)])
}

/// A leaf `ca` signs, with these SANs and extended key usage.
fn leaf_for(ca: &Minted, sans: &[&str], usage: &[u8]) -> CertificateDer<'static> {
    let names = seq(&sans.iter().map(|s| general_name(s)).collect::<Vec<_>>());
    let ext = vec![
        extension(SUBJECT_ALT_NAME, false, names),
        extension(EXT_KEY_USAGE, false, seq(&[oid(usage)])),
    ];
    mint("upstream", Some(ca), 2, ext).der
}

fn leaf(ca: &Minted, sans: &[&str]) -> CertificateDer<'static> {
    leaf_for(ca, sans, SERVER_AUTH)
}

fn verifier(trusted: &Minted, names: &[&str]) -> UpstreamSanList {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.der.clone()).expect("CA");
    UpstreamSanList {
        roots: Arc::new(roots),
        provider: crate::provider(),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// The verdict for `cert` with Istio's SNI as the server name (never in the cert).
fn verify_at(v: &UpstreamSanList, cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let sni = ServerName::try_from(ISTIO_SNI).expect("a DNS name");
    v.verify_server_cert(cert, &[], &sni, &[], now).map(|_| ())
}

fn verify(v: &UpstreamSanList, cert: &CertificateDer<'_>) -> Result<(), Error> {
    verify_at(v, cert, UnixTime::now())
}

// ---- the verifier ------------------------------------------------------------------

#[test]
fn a_listed_spiffe_uri_san_is_accepted_whatever_the_sni() {
    let ca = ca("test CA");
    let v = verifier(&ca, &["spiffe://cluster.local/ns/other/sa/x", SPIFFE_APP]);
    let cert = leaf(&ca, &[&format!("URI:{SPIFFE_APP}")]);
    assert_eq!(verify(&v, &cert), Ok(()));
}

#[test]
fn a_certificate_without_a_listed_san_is_refused_with_its_sans_named() {
    let ca = ca("test CA");
    let v = verifier(&ca, &[SPIFFE_APP]);
    // Another identity, and the SNI name itself: neither is on the list.
    let other = "spiffe://cluster.local/ns/default/sa/other";
    let cert = leaf(&ca, &[&format!("URI:{other}"), &format!("DNS:{ISTIO_SNI}")]);
    let err = verify(&v, &cert).expect_err("not listed");
    assert!(
        matches!(err, Error::InvalidCertificate(CertificateError::Other(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("carries none of match_subject_alt_names")
            && text.contains(SPIFFE_APP)
            && text.contains(&format!("URI:{other}")),
        "{text}"
    );
    // No SAN at all.
    let bare = mint("bare", Some(&ca), 3, vec![]).der;
    assert!(verify(&v, &bare).is_err());
}

#[test]
fn an_untrusted_chain_is_refused_even_with_a_listed_san() {
    let (trusted, stranger) = (ca("trusted CA"), ca("stranger CA"));
    let v = verifier(&trusted, &[SPIFFE_APP]);
    let cert = leaf(&stranger, &[&format!("URI:{SPIFFE_APP}")]);
    assert_eq!(
        verify(&v, &cert),
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
    // A self-signed certificate naming itself is no better.
    let own = mint(
        "self",
        None,
        4,
        vec![extension(
            SUBJECT_ALT_NAME,
            false,
            seq(&[general_name(&format!("URI:{SPIFFE_APP}"))]),
        )],
    );
    assert!(verify(&v, &own.der).is_err());
}

#[test]
fn validity_period_and_usage_are_still_checked() {
    let ca = ca("test CA");
    let v = verifier(&ca, &[SPIFFE_APP]);
    let cert = leaf(&ca, &[&format!("URI:{SPIFFE_APP}")]);
    let in_2096 = UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000));
    let err = verify_at(&v, &cert, in_2096).expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
    // A client-only certificate is no server's, whatever its name.
    let client = leaf_for(&ca, &[&format!("URI:{SPIFFE_APP}")], CLIENT_AUTH);
    let err = verify(&v, &client).expect_err("clientAuth only");
    assert!(err.to_string().contains("extended key usage"), "{err}");
}

#[test]
fn dns_and_ip_names_match_as_for_client_certificates() {
    let ca = ca("test CA");
    let cert = leaf(&ca, &["DNS:*.example.com", "IP:10.0.0.7"]);
    for ok in ["api.example.com", "API.Example.com", "10.0.0.7"] {
        assert_eq!(verify(&verifier(&ca, &[ok]), &cert), Ok(()), "{ok}");
    }
    for bad in ["example.com", "a.b.example.com", "10.0.0.8", "*.other.com"] {
        assert!(verify(&verifier(&ca, &[bad]), &cert).is_err(), "{bad}");
    }
}

#[test]
fn handshake_signatures_use_the_providers_algorithms() {
    let ca = ca("test CA");
    let v = verifier(&ca, &[SPIFFE_APP]);
    let schemes = v.supported_verify_schemes();
    assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
    assert!(schemes.contains(&SignatureScheme::ED25519));
}
