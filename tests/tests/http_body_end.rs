//! When an HTTP span's body ends: a response sent whole is not a cancellation, even when hyper
//! drops its body unread (HEAD, 304, a body cut at its `Content-Length`); a server body that
//! fails is the server's error, not the client going away; a client span records the protocol
//! version the exchange used. Real hyper servers and clients on 127.0.0.1. (Found by a review;
//! each test failed before its fix.)

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;

use bytes::Bytes;
use common::*;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioExecutor;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

type IoBody = BoxBody<Bytes, std::io::Error>;

async fn app(req: Request<Incoming>) -> Result<Response<IoBody>, Infallible> {
    let full = |s: &'static str| {
        Full::new(Bytes::from_static(s.as_bytes()))
            .map_err(|e| match e {})
            .boxed()
    };
    let stream = |frames: Vec<Result<Frame<Bytes>, std::io::Error>>| {
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    };
    Ok(match req.uri().path() {
        // A GET handler that also answers HEAD (as most do): hyper sends no body for HEAD.
        "/head" => Response::new(full("hello")),
        // A 304 whose handler left a body on it: hyper sends none.
        "/not-modified" => {
            let mut r = Response::new(full("cached"));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        }
        // The server's own body fails after a first chunk (a file read error, say).
        "/body-fails" => Response::new(stream(vec![
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err(std::io::Error::other("disk read failed")),
        ])),
        // A streamed body whose length the handler knows: sent with its Content-Length.
        "/sized-stream" => {
            let mut r = Response::new(stream(vec![
                Ok(Frame::data(Bytes::from_static(b"hello"))),
                Ok(Frame::data(Bytes::from_static(b"world"))),
            ]));
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("10"));
            r
        }
        _ => Response::new(full("ok")),
    })
}

#[tokio::test]
async fn head_and_304_responses_are_not_cancellations() {
    exporter();
    let addr = http_support::serve_with(HttpServerLayer::new(SERVICE), app).await;
    let client = http_support::plain_client();
    let req = Request::head(format!("http://{addr}/head"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    let req = Request::get(format!("http://{addr}/not-modified"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 304);
    resp.into_body().collect().await.unwrap();
    let head = server_span("/head").await;
    let not_modified = server_span("/not-modified").await;
    for s in [&head, &not_modified] {
        assert_eq!(
            attr(s, "tracer.cancelled"),
            None,
            "{:?}: the whole answer was sent",
            attr_str(s, "url.path")
        );
        assert!(!is_error(s));
        assert_eq!(attr(s, "http.response.body.size"), Some(&Value::I64(0)));
    }
}

#[tokio::test]
async fn a_fully_sent_body_with_content_length_is_not_a_cancellation() {
    exporter();
    let addr = http_support::serve_with(HttpServerLayer::new(SERVICE), app).await;
    let (status, body, _) =
        http_support::get_plain(&format!("http://{addr}/sized-stream"), &[]).await;
    assert_eq!((status, body.as_str()), (200, "helloworld"));
    let s = server_span("/sized-stream").await;
    assert_eq!(attr(&s, "http.response.body.size"), Some(&Value::I64(10)));
    assert_eq!(
        attr(&s, "tracer.cancelled"),
        None,
        "all 10 bytes were sent and read: {:?}",
        s.attributes
    );
}

#[tokio::test]
async fn a_server_body_error_is_not_a_client_cancellation() {
    exporter();
    let addr = http_support::serve_with(HttpServerLayer::new(SERVICE), app).await;
    let req = Request::get(format!("http://{addr}/body-fails"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    // The client sees the answer cut short (hyper aborts the connection).
    let got = match http_support::plain_client().request(req).await {
        Ok(resp) => resp
            .into_body()
            .collect()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(got.is_err());
    let s = server_span("/body-fails").await;
    assert!(is_error(&s));
    assert_eq!(attr_str(&s, "error.type").as_deref(), Some("body"));
    assert_eq!(
        attr(&s, "tracer.cancelled"),
        None,
        "the server's own body failed; the client did not go away: {:?}",
        s.attributes
    );
}

#[tokio::test]
async fn client_records_the_protocol_version_actually_used() {
    exporter();
    let addr = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    // HTTP/2 with prior knowledge: the request keeps http's default version, HTTP/1.1.
    let h2 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let svc = tower::ServiceBuilder::new()
        .layer(HttpClientLayer::new())
        .service(h2);
    let url = format!("http://{addr}/ok/h2");
    let (version, spans) = in_root_async(async {
        let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        let v = resp.version();
        resp.into_body().collect().await.unwrap();
        v
    })
    .await;
    assert_eq!(version, http::Version::HTTP_2, "the exchange was HTTP/2");
    let s = server_span("/ok/h2").await;
    assert_eq!(
        attr_str(&s, "network.protocol.version").as_deref(),
        Some("2")
    );
    let client: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(client.len(), 1, "{:?}", names(&spans));
    let versions: Vec<String> = client[0]
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str() == "network.protocol.version")
        .map(|kv| kv.value.to_string())
        .collect();
    assert_eq!(versions, ["2"], "the negotiated version, once");
}
