//! Reading propagation headers out of a request's `HeaderMap`, and writing them into one.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// W3C baggage (and the loop guard's call path in it).
pub(crate) const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Past this many distinct names, [`first_values`] looks its names up one by one.
pub(crate) const SCAN_MAX: usize = 8;

/// The first value of each of `names` in `headers`: found in one pass over a map of at most
/// [`SCAN_MAX`] names (comparing two `HeaderName`s is a few instructions; a lookup by name
/// hashes it and probes the map, ~100 to ~150 instructions, whether the name is there or not),
/// else looked up by name. The headers of a call between services are a handful.
#[inline]
pub(crate) fn first_values<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [&HeaderName; N],
) -> [Option<&'a HeaderValue>; N] {
    if headers.keys_len() > SCAN_MAX {
        return names.map(|n| headers.get(n));
    }
    let mut found = [None; N];
    for (name, value) in headers {
        if let Some(i) = names.iter().position(|n| *n == name) {
            found[i].get_or_insert(value);
        }
    }
    found
}

/// The header names the propagation formats read, parsed once (statics: `from_static`
/// validates the name when it runs). Looking a header up by a `&str` parses (and lower-cases)
/// the name on every call, as `opentelemetry_http::HeaderExtractor` does: about a hundred
/// instructions per header a format asks for.
fn known(key: &str) -> Option<&'static HeaderName> {
    static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    static UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");
    static B3: HeaderName = HeaderName::from_static("b3");
    static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
    static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
    static B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
    static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
    static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
    static BAGGAGE_NAME: HeaderName = BAGGAGE;
    Some(match key {
        "traceparent" => &TRACEPARENT,
        "tracestate" => &TRACESTATE,
        "baggage" => &BAGGAGE_NAME,
        "uber-trace-id" => &UBER_TRACE_ID,
        "b3" => &B3,
        "x-b3-traceid" => &B3_TRACE_ID,
        "x-b3-spanid" => &B3_SPAN_ID,
        "x-b3-parentspanid" => &B3_PARENT,
        "x-b3-sampled" => &B3_SAMPLED,
        "x-b3-flags" => &B3_FLAGS,
        _ => return None,
    })
}

/// An [`Extractor`] over a request's headers: `opentelemetry_http::HeaderExtractor`'s behaviour
/// (values that are not visible ASCII are skipped), with the formats' header names found
/// without parsing them.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // A repeated `traceparent` is no valid one (see `propagation::Propagator`'s
        // `extract_with_context`, which the layers' extraction does not go through).
        if key == "traceparent" {
            let name = known(key)?;
            let mut found = None;
            if self.0.keys_len() <= SCAN_MAX {
                // One pass over the few headers, as `first_values`: no lookup by name.
                for (n, v) in self.0 {
                    if n == name {
                        if found.is_some() {
                            return None;
                        }
                        found = Some(v);
                    }
                }
            } else {
                let mut all = self.0.get_all(name).iter();
                found = all.next();
                if all.next().is_some() {
                    return None;
                }
            }
            return found.and_then(|v| v.to_str().ok());
        }
        match known(key) {
            Some(name) => {
                let [value] = first_values(self.0, [name]);
                value
            }
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

/// An [`Injector`] into a request's headers: `opentelemetry_http::HeaderInjector`'s behaviour
/// (a name or value that is not a valid header is not written; a header is replaced), with the
/// formats' header names not parsed and the value's bytes taken over, not copied.
pub(crate) struct HeadersMut<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match known(key) {
            Some(name) => name.clone(),
            None => match HeaderName::from_bytes(key.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        // A `baggage` header the request already has (the caller's own) is merged with the
        // context's, not replaced by it.
        let value = if name == BAGGAGE && self.0.contains_key(&BAGGAGE) {
            let existing = self.0.get_all(&BAGGAGE).iter().map(HeaderValue::as_bytes);
            match crate::propagation::merge_header(existing, &value) {
                Some(merged) => merged,
                None => return,
            }
        } else {
            value
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_traceparent_is_none() {
        let tp = "00-12345678901234567890123456789011-1234567890123456-01";
        let mut h = HeaderMap::new();
        h.append("traceparent", HeaderValue::from_static(tp));
        assert_eq!(Headers(&h).get("traceparent"), Some(tp));
        h.append("traceparent", HeaderValue::from_static(tp));
        assert_eq!(Headers(&h).get("traceparent"), None);
        // The same with more headers than one pass looks at.
        for i in 0..SCAN_MAX {
            h.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(Headers(&h).get("traceparent"), None);
        h.remove("traceparent");
        h.insert("traceparent", HeaderValue::from_static(tp));
        assert_eq!(Headers(&h).get("traceparent"), Some(tp));
        // Through the composite propagator, from any extractor.
        let mut map = std::collections::HashMap::new();
        map.insert("traceparent".to_owned(), tp.to_owned());
        use opentelemetry::propagation::TextMapPropagator as _;
        use opentelemetry::trace::TraceContextExt as _;
        let p = crate::propagation::composite(&[crate::propagation::Format::TraceContext]);
        assert!(p.extract(&map).span().span_context().is_valid());
        let mut two = HeaderMap::new();
        two.append("traceparent", HeaderValue::from_static(tp));
        two.append("traceparent", HeaderValue::from_static(tp));
        let cx = p.extract(&opentelemetry_http::HeaderExtractor(&two));
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn a_requests_own_baggage_is_merged_with_the_contexts() {
        let merged = |existing: &[&'static str], ours: &str| {
            let mut h = HeaderMap::new();
            for v in existing {
                h.append(BAGGAGE, HeaderValue::from_static(v));
            }
            HeadersMut(&mut h).set("baggage", ours.to_owned());
            let all: Vec<&str> = h
                .get_all(BAGGAGE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            all.join(" | ")
        };
        // None of the request's own: the context's as it is.
        assert_eq!(merged(&[], "b=9,d=4"), "b=9,d=4");
        // The request's kept (its value wins), the context's others after them, as one value.
        assert_eq!(
            merged(&["a=1, b=2", "c=3;p"], "b=9,d=4;q,a =7"),
            "a=1,b=2,c=3;p,d=4;q"
        );
        // Within the limits: no member of the context's past 64 members or 8 192 bytes.
        let full: String = (0..64)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let full: &'static str = Box::leak(full.into_boxed_str());
        assert_eq!(merged(&[full], "extra=1"), full);
        let long: &'static str = Box::leak(format!("big={}", "x".repeat(8184)).into_boxed_str());
        assert_eq!(merged(&[long], "extra=1,e=2"), format!("{long},e=2"));
        // A value that is not text is left as it is.
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::from_bytes(b"a=\xff").unwrap());
        HeadersMut(&mut h).set("baggage", "b=1".to_owned());
        assert_eq!(h.get(BAGGAGE).unwrap().as_bytes(), b"a=\xff");
    }

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

    #[test]
    fn writes_as_the_header_injector_does() {
        let (mut ours, mut theirs) = (HeaderMap::new(), HeaderMap::new());
        for (key, value) in [
            ("traceparent", "00-a-b-01"),
            ("traceparent", "00-c-d-01"),
            ("baggage", "a=1"),
            ("uberctx-user", "x"),
            ("X-B3-Sampled", "1"),
            ("not a header", "x"),
            ("x-bad-value", "a\nb"),
        ] {
            HeadersMut(&mut ours).set(key, value.to_owned());
            opentelemetry_http::HeaderInjector(&mut theirs).set(key, value.to_owned());
        }
        assert_eq!(ours, theirs);
        assert_eq!(ours.get("traceparent").unwrap(), "00-c-d-01");
        assert_eq!(ours.len(), 4);
    }
}
