//! X-Forwarded-Client-Cert (Envoy's header and modes): an mTLS client's identity
//! passed to the upstream, and a client's own claim of one dropped unless trusted.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use mosn_config::filters::{ClientCertDetails, ForwardClientCertDetails as Mode};
use mosn_tls::Stream;

pub const HEADER: &str = "x-forwarded-client-cert";

/// What to do with the header on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Keep,
    Remove,
    /// Append this element to the client's header (or send it alone).
    Append(&'a str),
    /// Replace the client's header with this element.
    Set(&'a str),
}

/// A connection's part: whether it is mTLS, and its element when the mode needs it.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    mtls: bool,
    element: Option<Box<str>>,
}

impl ClientCert {
    /// Reads the client certificate of a TLS connection (computing the element only
    /// for the modes that send it).
    pub fn of(stream: &Stream, mode: Mode, details: &ClientCertDetails) -> ClientCert {
        let Some(cert) = stream.peer_certificates().and_then(|c| c.first()) else {
            return ClientCert::default();
        };
        let element = matches!(mode, Mode::AppendForward | Mode::SanitizeSet).then(|| {
            mosn_tls::Identity::xfcc_element(cert, details.subject, details.uri, details.dns)
                .into_boxed_str()
        });
        ClientCert {
            mtls: true,
            element,
        }
    }

    /// Envoy's rules: SANITIZE drops the header; FORWARD_ONLY, APPEND_FORWARD and
    /// SANITIZE_SET act on mTLS connections and drop it on others; ALWAYS_FORWARD_ONLY
    /// keeps it.
    pub fn action(&self, mode: Mode) -> Action<'_> {
        match (mode, self.mtls, self.element.as_deref()) {
            (Mode::AlwaysForwardOnly, _, _) | (Mode::ForwardOnly, true, _) => Action::Keep,
            (Mode::AppendForward, true, Some(e)) => Action::Append(e),
            (Mode::SanitizeSet, true, Some(e)) => Action::Set(e),
            _ => Action::Remove,
        }
    }
}

/// Applies `action` to an HTTP/2 request's headers.
pub fn apply(headers: &mut HeaderMap, action: Action<'_>) {
    let name = HeaderName::from_static(HEADER);
    let value = match action {
        Action::Keep => return,
        Action::Remove => {
            headers.remove(&name);
            return;
        }
        Action::Set(e) => e.to_string(),
        Action::Append(e) => {
            let prior: Vec<&str> = headers
                .get_all(&name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if prior.is_empty() {
                e.to_string()
            } else {
                format!("{},{e}", prior.join(","))
            }
        }
    };
    headers.remove(&name);
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_rules() {
        let plain = ClientCert::default();
        let mtls = ClientCert {
            mtls: true,
            element: Some("Hash=ab".into()),
        };
        assert_eq!(plain.action(Mode::Sanitize), Action::Remove);
        assert_eq!(mtls.action(Mode::Sanitize), Action::Remove);
        assert_eq!(plain.action(Mode::ForwardOnly), Action::Remove);
        assert_eq!(mtls.action(Mode::ForwardOnly), Action::Keep);
        assert_eq!(plain.action(Mode::AppendForward), Action::Remove);
        assert_eq!(mtls.action(Mode::AppendForward), Action::Append("Hash=ab"));
        assert_eq!(mtls.action(Mode::SanitizeSet), Action::Set("Hash=ab"));
        assert_eq!(plain.action(Mode::AlwaysForwardOnly), Action::Keep);
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("By=x;Hash=00"));
        apply(&mut h, Action::Append("Hash=ab"));
        assert_eq!(h[HEADER], "By=x;Hash=00,Hash=ab");
        apply(&mut h, Action::Set("Hash=cd"));
        assert_eq!(h[HEADER], "Hash=cd");
        apply(&mut h, Action::Remove);
        assert!(h.get(HEADER).is_none());
    }
}
