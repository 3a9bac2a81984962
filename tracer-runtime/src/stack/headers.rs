//! Reading propagation headers out of a request's `HeaderMap`.

use http::HeaderMap;
use http::header::HeaderName;
use opentelemetry::propagation::Extractor;

/// W3C baggage (and the loop guard's call path in it).
pub(crate) const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// The header names the propagation formats read, parsed once. Looking a header up by a `&str`
/// parses (and lower-cases) the name on every call, as `opentelemetry_http::HeaderExtractor`
/// does: about a hundred instructions per header a format asks for.
fn known(key: &str) -> Option<HeaderName> {
    Some(match key {
        "traceparent" => HeaderName::from_static("traceparent"),
        "tracestate" => HeaderName::from_static("tracestate"),
        "baggage" => BAGGAGE,
        "uber-trace-id" => HeaderName::from_static("uber-trace-id"),
        "b3" => HeaderName::from_static("b3"),
        "x-b3-traceid" => HeaderName::from_static("x-b3-traceid"),
        "x-b3-spanid" => HeaderName::from_static("x-b3-spanid"),
        "x-b3-parentspanid" => HeaderName::from_static("x-b3-parentspanid"),
        "x-b3-sampled" => HeaderName::from_static("x-b3-sampled"),
        "x-b3-flags" => HeaderName::from_static("x-b3-flags"),
        _ => return None,
    })
}

/// An [`Extractor`] over a request's headers: `opentelemetry_http::HeaderExtractor`'s behaviour
/// (values that are not visible ASCII are skipped), with the formats' header names found
/// without parsing them.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match known(key) {
            Some(name) => self.0.get(name),
            None => self.0.get(key),
        }
        .and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all = match known(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        let mut values = all.iter().peekable();
        values.peek()?;
        Some(values.filter_map(|v| v.to_str().ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_header_extractor_does() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", "00-a-b-01".parse().unwrap());
        h.append("baggage", "a=1".parse().unwrap());
        h.append("baggage", "b=2".parse().unwrap());
        h.insert("uberctx-user", "x".parse().unwrap());
        h.insert("x-other", http::HeaderValue::from_bytes(b"\xff").unwrap());
        let ours = Headers(&h);
        let theirs = opentelemetry_http::HeaderExtractor(&h);
        for key in [
            "traceparent",
            "TraceParent",
            "tracestate",
            "baggage",
            "uberctx-user",
            "x-other",
            "b3",
            "not a header",
        ] {
            assert_eq!(ours.get(key), theirs.get(key), "{key}");
            assert_eq!(ours.get_all(key), theirs.get_all(key), "{key}");
        }
        assert_eq!(ours.get_all("baggage"), Some(vec!["a=1", "b=2"]));
        let (mut a, mut b) = (ours.keys(), theirs.keys());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }
}
