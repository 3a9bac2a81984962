//! What a client's requests repeat — where the server is, the scheme, the user agent, the
//! protocol version — is made once per such client on a thread and shared by its requests'
//! SERVER spans (a block the OTLP/gRPC exporter writes as it is, or copied into the span's list
//! for an exporter of the SDK's interface). Requests of several clients interleaved on one
//! thread each get their own values, each attribute once, whichever way they are exported; a
//! value the handler overwrites is the span's alone.

mod common;
#[allow(dead_code)]
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt as _, Empty, Full};
use opentelemetry::KeyValue;
use tower::{Layer as _, Service as _, ServiceExt as _};
use tracer_runtime::http::HttpServerLayer;

/// A request: its method, URI, `Host`, `User-Agent` and version.
struct Req(
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<String>,
    Version,
);

/// A long user agent (past what the thread keeps): its spans' attributes are their own.
fn long_agent() -> String {
    format!("long/{}", "x".repeat(600))
}

/// Attributes a span must have, with their values as text (`None`: must not have).
type Expected = Vec<(&'static str, Option<String>)>;

/// The requests, in order, with the attributes their span must have.
fn cases() -> Vec<(Req, Expected)> {
    let s = |v: &str| Some(v.to_owned());
    let h11 = Version::HTTP_11;
    let alpha = |path: &'static str, agent: Option<&str>| {
        Req(
            "GET",
            path,
            Some("alpha.test:8080"),
            agent.map(str::to_owned),
            h11,
        )
    };
    let expect = |host: &str, port: &str, agent: Option<&str>, version: &str, path: &str| {
        vec![
            ("server.address", s(host)),
            ("server.port", s(port)),
            ("url.scheme", s("http")),
            ("user_agent.original", agent.map(str::to_owned)),
            ("network.protocol.version", s(version)),
            ("url.path", s(path)),
            ("http.response.status_code", s("200")),
            ("http.response.body.size", s("2")),
        ]
    };
    let mut cases = vec![
        (
            alpha("/one", Some("client-a/1")),
            expect("alpha.test", "8080", Some("client-a/1"), "1.1", "/one"),
        ),
        // The same host, another user agent.
        (
            alpha("/two", Some("client-b/2")),
            expect("alpha.test", "8080", Some("client-b/2"), "1.1", "/two"),
        ),
        // Another host (no port: the scheme's), the first user agent.
        (
            Req("POST", "/three", Some("beta.test"), s("client-a/1"), h11),
            expect("beta.test", "80", Some("client-a/1"), "1.1", "/three"),
        ),
        // The first client's host and user agent, another version.
        (
            Req(
                "GET",
                "/four",
                Some("alpha.test:8080"),
                s("client-a/1"),
                Version::HTTP_2,
            ),
            expect("alpha.test", "8080", Some("client-a/1"), "2", "/four"),
        ),
        // An absolute URI: its authority names the server, not `Host`.
        (
            Req(
                "GET",
                "http://gamma.test:9090/five",
                Some("alpha.test:8080"),
                s("client-a/1"),
                h11,
            ),
            expect("gamma.test", "9090", Some("client-a/1"), "1.1", "/five"),
        ),
        // No user agent.
        (
            alpha("/six", None),
            expect("alpha.test", "8080", None, "1.1", "/six"),
        ),
        (
            Req(
                "GET",
                "/seven",
                Some("alpha.test:8080"),
                Some(long_agent()),
                h11,
            ),
            expect("alpha.test", "8080", Some(&long_agent()), "1.1", "/seven"),
        ),
        // The handler overwrites a shared value: on its span alone.
        (
            alpha("/overwrite", Some("client-a/1")),
            expect(
                "alpha.test",
                "8080",
                Some("overwritten"),
                "1.1",
                "/overwrite",
            ),
        ),
        // The first request again: as it was.
        (
            alpha("/eight", Some("client-a/1")),
            expect("alpha.test", "8080", Some("client-a/1"), "1.1", "/eight"),
        ),
    ];
    // More clients than the thread keeps, on two hosts: some take the place of others.
    for i in 0..48 {
        let (host, port) = if i % 3 == 0 {
            ("beta.test:81", "81")
        } else {
            ("alpha.test:8080", "8080")
        };
        let path: &'static str = format!("/client/{i}").leak();
        let agent = format!("client-{}/1", i % 24);
        cases.push((
            Req("GET", path, Some(host), Some(agent.clone()), h11),
            expect(
                &host[..host.len() - port.len() - 1],
                port,
                Some(&agent),
                "1.1",
                path,
            ),
        ));
    }
    cases
}

/// Serves every case through the layer of `service`, one after the other on this thread.
async fn serve_all(service: &'static str) {
    let handler = tower::service_fn(|req: Request<Empty<Bytes>>| async move {
        if req.uri().path() == "/overwrite" {
            tracer_runtime::set_attribute(KeyValue::new("user_agent.original", "overwritten"));
        }
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let mut svc = HttpServerLayer::new(service).layer(handler);
    for (Req(method, uri, host, agent, version), _) in cases() {
        let mut req = Request::builder().method(method).uri(uri).version(version);
        if let Some(h) = host {
            req = req.header(http::header::HOST, h);
        }
        if let Some(a) = agent {
            req = req.header(http::header::USER_AGENT, a);
        }
        let resp = svc
            .ready()
            .await
            .unwrap()
            .call(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap();
    }
}

/// Checks each case's span, given as its attributes (key, value as text), found by `url.path`.
fn check(spans: &[Vec<(String, String)>]) {
    for (Req(method, ..), expected) in cases() {
        let path = expected
            .iter()
            .find(|(k, _)| *k == "url.path")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        let found: Vec<&Vec<(String, String)>> = spans
            .iter()
            .filter(|a| a.iter().any(|(k, v)| k == "url.path" && *v == path))
            .collect();
        assert_eq!(found.len(), 1, "one span of {path}: {spans:#?}");
        let attrs = found[0];
        let by_key: BTreeMap<&str, &str> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(by_key.len(), attrs.len(), "each attribute once: {attrs:#?}");
        assert_eq!(
            by_key.get("http.request.method"),
            Some(&method),
            "{attrs:#?}"
        );
        for (k, v) in &expected {
            assert_eq!(
                by_key.get(k).copied(),
                v.as_deref(),
                "{path} {k}: {attrs:#?}"
            );
        }
    }
}

#[test]
fn through_the_grpc_exporter_each_request_has_its_clients_values() {
    let keep = receiver::Keep::default();
    let (addr, _receiver) = receiver::serve(keep.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = {
        let _rt = rt.enter();
        tracer_runtime::init("repeated-otlp")
            .with_protocol(tracer_runtime::Protocol::Grpc)
            .with_endpoint(format!("http://{addr}"))
            .install()
            .unwrap()
    };
    rt.block_on(serve_all("repeated-otlp"));
    guard.shutdown().expect("every span exported");
    let spans: Vec<Vec<(String, String)>> = keep
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s.kind, 2, "SERVER: {s:#?}");
            s.attributes
                .iter()
                .map(|kv| (kv.key.clone(), receiver::attr(s, &kv.key).unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(spans.len(), cases().len(), "{spans:#?}");
    check(&spans);
}

#[test]
fn through_an_sdk_exporter_each_request_has_its_clients_values() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    common::exporter();
    rt.block_on(serve_all(common::SERVICE));
    let spans: Vec<Vec<(String, String)>> = common::finished()
        .iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .map(|s| {
            s.attributes
                .iter()
                .map(|kv| {
                    let v = match &kv.value {
                        opentelemetry::Value::I64(i) => i.to_string(),
                        other => other.as_str().into_owned(),
                    };
                    (kv.key.as_str().to_owned(), v)
                })
                .collect()
        })
        .collect();
    assert_eq!(spans.len(), cases().len(), "{spans:#?}");
    check(&spans);
}
