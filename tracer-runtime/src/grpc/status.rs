//! The status of an RPC: `grpc-status` / `grpc-message` in headers or trailers, how a code is
//! recorded on a span, and the trailers the layer answers with.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;

use crate::stack::span::SpanCx;
use opentelemetry_semantic_conventions::attribute as semconv;

/// The codes a server answers for its own faults: Error on the server span (the semantic
/// conventions' table); every other non-OK code is the caller's doing. A code gRPC does not
/// define is one too: its caller takes it for UNKNOWN.
pub(crate) fn is_server_fault(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15) || !(0..=16).contains(&code)
}

/// The status headers' names, parsed once: looking a header up by a `&str` parses the name
/// on every call (see `stack::headers`).
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// `grpc-status` (and `grpc-message`) in a header map.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<(i32, String)> {
    let [status, message] =
        crate::stack::headers::first_values(headers, [&GRPC_STATUS, &GRPC_MESSAGE]);
    let code: i32 = status?.to_str().ok()?.trim().parse().ok()?;
    let message = message
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a `grpc-message` as the gRPC spec asks.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (0x20..=0x7e).contains(&c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The `error.type` of a failed status: the code's name, or the code itself when gRPC does not
/// define it (as `rpc.response.status_code` records it).
pub(crate) fn error_type(code: i32) -> std::borrow::Cow<'static, str> {
    crate::grpc_codes::name(i64::from(code)).map_or_else(|| code.to_string().into(), Into::into)
}

/// Records a final gRPC status on the span of `cx`. `server`: only server-fault codes are Error.
#[allow(deprecated)]
pub(crate) fn record_status(cx: &mut SpanCx, code: i32, message: &str, server: bool) {
    let span = cx;
    let conv = crate::semconv::rpc();
    let name = crate::grpc_codes::name(i64::from(code));
    if conv.old {
        span.set_attribute(KeyValue::new(
            semconv::RPC_GRPC_STATUS_CODE,
            i64::from(code),
        ));
    }
    if conv.new {
        span.set_attribute(KeyValue::new(
            semconv::RPC_RESPONSE_STATUS_CODE,
            name.map_or_else(|| code.to_string(), str::to_owned),
        ));
    }
    let is_error = if server {
        is_server_fault(code)
    } else {
        code != 0
    };
    if is_error {
        // The code as the status attribute has it (its name, or the number gRPC does not name).
        let kind = error_type(code);
        span.set_status(Status::error(if message.is_empty() {
            kind.clone().into_owned()
        } else {
            message.to_owned()
        }));
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind));
    }
}

/// Trailers reporting `code` and `message`.
pub(crate) fn status_trailers(code: i32, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert(GRPC_STATUS.clone(), HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        t.insert(GRPC_MESSAGE.clone(), v);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        assert!(
            is_server_fault(13) && is_server_fault(4) && !is_server_fault(3) && !is_server_fault(5)
        );
        // A code gRPC does not define: a caller takes it for UNKNOWN, a server fault.
        assert!(is_server_fault(42) && is_server_fault(-1));
        assert_eq!(error_type(14), "UNAVAILABLE");
        assert_eq!(error_type(42), "42");
        assert_eq!(
            percent_decode(&percent_encode("bad % thing\nhere é")),
            "bad % thing\nhere é"
        );
    }
}
