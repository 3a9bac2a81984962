//! Defects found by a review of the call-loop guard, the switch endpoint and the RED metrics,
//! each shown by a test that failed before its fix.

#[path = "support/loops.rs"]
mod loops;
#[path = "support/http.rs"]
mod http_support;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use loops::*;
use tracer_runtime::LoopGuard;

/// Distinct services whose names differ only after their 64th byte, or only in characters a
/// path cannot hold, are distinct services: a chain through them (each visited once) is no
/// loop. They were written in the path as one name (cut at 64 bytes; `!`, `*`, `+` all `_`),
/// so the third one counted itself twice and refused the call (508).
#[tokio::test]
async fn distinct_services_whose_names_collide_in_the_path_are_not_a_loop() {
    let long = |suffix: &str| format!("rg-{}-{suffix}", "namespace".repeat(8));
    let chains = [
        [long("orders"), long("payments"), long("ledger")],
        [
            "rg!orders".to_owned(),
            "rg*orders".to_owned(),
            "rg+orders".to_owned(),
        ],
    ];
    for names in &chains {
        let protos = [Proto::Http, Proto::Grpc, Proto::Http];
        for (name, proto) in names.iter().zip(protos) {
            install(name);
            // Each service visited at most once: a single repeat already allowed is plenty.
            node(name, proto, LoopGuard::new().max_repeats(1)).await;
        }
        let plan = format!("{},{}", names[1], names[2]);
        let answer = call(&names[0], &plan, false).await;
        assert!(
            answer.is_ok(),
            "a chain of three distinct services is no loop: {answer:?}"
        );
    }
}

/// `method` on `url` with a bearer token and a body; returns the status.
async fn switch_call(method: &str, url: &str, token: &str, body: &str) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = http_support::plain_client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

/// A token read from a file or a secret (`TRACER_SWITCH_TOKEN="$(cat token)"` aside, Kubernetes
/// secrets and `read_to_string` keep the trailing newline) could never be given: the token
/// sent is trimmed, the one configured was not, so every request was refused (401) and the
/// operator locked out with no error anywhere.
#[tokio::test]
async fn a_configured_token_with_a_trailing_newline_is_usable() {
    let service = "rg-switch-newline";
    let guard = tracer_runtime::init(service)
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("127.0.0.1:0")
        .with_switch_endpoint(Some("s3cret\n".to_owned()))
        .install()
        .unwrap();
    let base = format!("http://{}", guard.metrics_addr().unwrap());
    let status = switch_call("PUT", &format!("{base}/tracer/{service}"), "s3cret", "off").await;
    assert_eq!(status, 200, "the token, as an operator can send it");
    assert!(!tracer_runtime::is_enabled(service));
    // Still refused without it.
    let status = switch_call("PUT", &format!("{base}/tracer/{service}"), "wrong", "on").await;
    assert_eq!(status, 401);
    assert!(!tracer_runtime::is_enabled(service));
    drop(guard);
}
