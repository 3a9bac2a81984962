//! The `grpc-timeout` deadline: a server span whose call is dropped once it passed records
//! DEADLINE_EXCEEDED instead of `tracer.cancelled`.

use std::time::{Duration, Instant};

/// When a request with these headers runs out of time, as the server sees it.
pub(crate) fn deadline(headers: &http::HeaderMap) -> Option<Instant> {
    // Parsed once: a `&str` name is parsed on every lookup.
    static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    let [timeout] = crate::stack::headers::first_values(headers, [&GRPC_TIMEOUT]);
    timeout
        .and_then(|v| v.to_str().ok())
        .and_then(parse_timeout)
        .map(|t| Instant::now() + deadline_seen(t))
}

/// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long after the request arrives a server that is dropped unanswered takes its
/// `grpc-timeout` to have passed: 90 % of it.
///
/// The caller's clock started before ours (by the request's transit), and tonic's channel
/// cuts the call when *its* deadline passes, so the reset can reach us a little before our
/// own copy of the deadline; a call cut in the last tenth of its time was cut by the deadline,
/// one cut earlier was cancelled by the caller (`tracer.cancelled`).
fn deadline_seen(timeout: Duration) -> Duration {
    timeout - timeout / 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("123456789m"), None);
        assert_eq!(parse_timeout("5x"), None);
    }
}
