//! One admin request (method, path, decoded query, body) and its reply.

use serde_json::{json, Value};

/// A request as the endpoints see it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without its query.
    pub path: &'a str,
    /// Query parameters in order, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// From the request line's method and target; a reason when they are not text.
    pub fn parse(method: &'a [u8], target: &'a [u8], body: &'a [u8]) -> Result<Self, String> {
        let method = std::str::from_utf8(method).map_err(|_| "method is not text".to_string())?;
        let target =
            std::str::from_utf8(target).map_err(|_| "request target is not text".to_string())?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Request {
            method,
            path,
            query,
            body,
        })
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `name`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in query {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("query {s:?} is not UTF-8"))
}

/// What to answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// Runs once the reply has been written (e.g. `/quitquitquit`'s stop).
    pub then: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("allow", &self.allow)
            .finish()
    }
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type,
            body,
            allow: None,
            then: None,
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
        Self::new(status, "application/json", text.into_bytes())
    }

    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            text.into().into_bytes(),
        )
    }

    /// `{"error": reason}`.
    pub fn error(status: u16, reason: impl Into<String>) -> Self {
        Self::json(status, &json!({"error": reason.into()}))
    }

    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    pub fn then(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.then = Some(Box::new(f));
        self
    }

    /// The body as text (tests).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_split_and_decoded() {
        let r = Request::parse(b"GET", b"/x?pattern=a%2A.b&key=A&key=B+C&flag", b"").unwrap();
        assert_eq!(r.path, "/x");
        assert_eq!(r.param("pattern"), Some("a*.b"));
        assert_eq!(r.params("key"), ["A", "B C"]);
        assert_eq!(r.param("flag"), Some(""));
        assert!(Request::parse(b"GET", b"/x?a=%zz", b"").is_err());
    }
}
