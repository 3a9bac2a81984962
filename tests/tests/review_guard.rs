//! Defects found by a review of the call-loop guard, the switch endpoint and the RED metrics,
//! each shown by a test that failed before its fix.

#[path = "support/http.rs"]
mod http_support;
#[path = "support/loops.rs"]
mod loops;

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

/// Runs `promtool check metrics` on `text`: its parse error, if any (lint complaints, exit
/// code 3, aside).
fn promtool_error(text: &str) -> Option<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code() == Some(1)).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A scraper that asks for the classic text format (`Accept: text/plain;version=0.0.4`, as
/// Prometheus does with `scrape_protocols: [PrometheusText0.0.4]`, or curl's `*/*` piped into
/// `promtool check metrics`) was served OpenMetrics anyway, whose `# TYPE target info` that
/// format's parser rejects: the whole scrape failed. Label values with `"`, `\` and newlines
/// (a route template, resource attributes) are escaped either way.
#[tokio::test]
async fn a_scrape_asking_for_the_classic_text_format_gets_text_promtool_accepts() {
    use opentelemetry::KeyValue;
    use tracer_runtime::http::{HttpServerLayer, Route};
    let service = "rg-prom\"svc\\\n";
    let guard = tracer_runtime::init(service)
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("127.0.0.1:0")
        .with_resource_attributes([KeyValue::new("deployment.environment", "a\"b\\c\nd")])
        .install()
        .unwrap();
    let app = http_support::serve_with(HttpServerLayer::new(service), |_req| async {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"ok")));
        r.extensions_mut()
            .insert(Route("/a\"b\\c\nd/{id}".to_owned().into()));
        Ok::<_, std::convert::Infallible>(r)
    })
    .await;
    http_support::get_plain(&format!("http://{app}/x"), &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let url = format!("http://{}/metrics", guard.metrics_addr().unwrap());
    for accept in [
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "*/*",
        "text/plain",
    ] {
        let (status, text, headers) = http_support::get_plain(&url, &[("accept", accept)]).await;
        assert_eq!(status, 200);
        assert!(
            text.contains(r#"http_route="/a\"b\\c\nd/{id}""#),
            "{accept}: {text}"
        );
        if let Some(e) = promtool_error(&text) {
            panic!(
                "Accept: {accept}, served as {:?}; promtool check metrics: {e}\n{text}",
                headers.get("content-type")
            );
        }
    }
    // Asked for (or not asked at all): OpenMetrics, as before.
    let (_, _, headers) = http_support::get_plain(
        &url,
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    drop(guard);
}

/// The authentication scheme is case-insensitive (RFC 9110 §11.1): `bearer <token>`, as some
/// clients and proxies write it, was refused (401).
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let service = "rg-switch-scheme";
    let guard = tracer_runtime::init(service)
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("127.0.0.1:0")
        .with_switch_endpoint(Some("t0ken".to_owned()))
        .install()
        .unwrap();
    let url = format!("http://{}/tracer", guard.metrics_addr().unwrap());
    for auth in ["bearer t0ken", "BEARER t0ken", "Bearer t0ken"] {
        let (status, _, _) = http_support::get_plain(&url, &[("authorization", auth)]).await;
        assert_eq!(status, 200, "{auth}");
    }
    for auth in ["bearer t0ke", "Basic t0ken", "t0ken", "Bearert0ken"] {
        let (status, _, _) = http_support::get_plain(&url, &[("authorization", auth)]).await;
        assert_eq!(status, 401, "{auth}");
    }
    drop(guard);
}

/// Anyone who can reach the endpoint (no token needed to connect) could hold connections open
/// forever by sending a request's headers slowly, or nothing at all: each one a file
/// descriptor of the application's process, until it can accept nothing more. A connection
/// that has not sent a request's headers within a few seconds is closed.
#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let guard = tracer_runtime::init("rg-slowloris")
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("127.0.0.1:0")
        .install()
        .unwrap();
    let addr = guard.metrics_addr().unwrap();
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 1024];
        // Closed: EOF (or a 408 first, then EOF), within the limit.
        tokio::time::timeout(std::time::Duration::from_secs(15), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    };
    let (silent, slow) = tokio::join!(closed(silent), closed(slow));
    assert!(
        silent,
        "a connection that sent nothing is still open after 15 s"
    );
    assert!(
        slow,
        "a connection that sent half a request is still open after 15 s"
    );
    drop(guard);
}
