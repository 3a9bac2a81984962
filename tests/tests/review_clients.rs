//! A review of the HTTP and gRPC client layers, the axum integration and the context carried
//! into spawned tasks: each test shows a defect found (and fixed, or marked `#[ignore]`).

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;
#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt as _, Full};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use tower::ServiceExt as _;
use tracer_runtime::grpc::GrpcClientLayer;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

fn client_spans(spans: &[SpanData]) -> Vec<&SpanData> {
    spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect()
}

fn client_span(spans: &[SpanData]) -> &SpanData {
    let c = client_spans(spans);
    assert_eq!(c.len(), 1, "{:?}", names(spans));
    c[0]
}

/// An inner service answering every request `200 ok` after a short wait, in process.
fn answering() -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send {
    tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

/// The HTTP conventions: a client span ends when the response body ends or is dropped; a body
/// dropped before its end is a cancelled call (`tracer.cancelled`), as the gRPC client's is
/// (`grpc.rs`'s `a_client_cancelling_mid_stream`) and as a server's body cut short is. The
/// HTTP client's span ended without the mark: `finish` marked only server spans.
#[tokio::test]
async fn http_client_body_dropped_mid_read_is_cancelled() {
    exporter();
    let addr = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/endless");
    let ((), spans) = in_root_async(async {
        let req = http::Request::get(&url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tower::ServiceBuilder::new()
            .layer(client.clone())
            .service(http_support::plain_client())
            .oneshot(req)
            .await
            .unwrap();
        let mut body = resp.into_body();
        // One frame of an endless body, then the caller stops reading.
        body.frame().await.unwrap().unwrap();
        drop(body);
    })
    .await;
    let c = client_span(&spans);
    assert_eq!(
        attr(c, "tracer.cancelled"),
        Some(&Value::Bool(true)),
        "a body dropped mid-read: {:?}",
        c.attributes
    );
}

/// A body read to its end, or dropped after every byte its `Content-Length` promised, is no
/// cancellation (the guard against the fix above overreaching).
#[tokio::test]
async fn http_client_body_read_whole_is_not_cancelled() {
    exporter();
    let addr = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/ok/whole");
    let ((), spans) = in_root_async(async {
        let (status, body, _) = http_support::get(&client, &url, &[]).await;
        assert_eq!((status, body.as_str()), (200, "hello"));
    })
    .await;
    let c = client_span(&spans);
    assert_eq!(attr(c, "tracer.cancelled"), None, "{:?}", c.attributes);
}

/// `url.full` is an absolute URL (HTTP client conventions: "Absolute URL describing a network
/// resource according to RFC3986"). A request in origin form (`/path`, what a client over
/// hyper's `client::conn` sends, the origin in the `Host` header) was recorded as `/path`.
#[tokio::test]
async fn http_client_url_full_is_absolute_for_an_origin_form_request() {
    exporter();
    let client = HttpClientLayer::new();
    let ((), spans) = in_root_async(async {
        let req = http::Request::get("/users/7?token=s3cret")
            .header(http::header::HOST, "api.example.com:8080")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tower::ServiceBuilder::new()
            .layer(client.clone())
            .service(answering())
            .oneshot(req)
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap();
    })
    .await;
    let c = client_span(&spans);
    assert_eq!(
        attr_str(c, "server.address").as_deref(),
        Some("api.example.com")
    );
    assert_eq!(attr(c, "server.port"), Some(&Value::I64(8080)));
    assert_eq!(
        attr_str(c, "url.full").as_deref(),
        Some("http://api.example.com:8080/users/7?token=REDACTED")
    );

    // The origin given to the layer (a channel below it adds it to the request).
    for (origin, want) in [
        (
            "https://api.example.com",
            "https://api.example.com/v1/x?k=REDACTED",
        ),
        ("http://[::1]:50051", "http://[::1]:50051/v1/x?k=REDACTED"),
        (
            "https://api.example.com:8443",
            "https://api.example.com:8443/v1/x?k=REDACTED",
        ),
    ] {
        let layer = HttpClientLayer::new().with_server_uri(&origin.parse().unwrap());
        let ((), spans) = in_root_async(async {
            let req = http::Request::get("/v1/x?k=v")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = tower::ServiceBuilder::new()
                .layer(layer)
                .service(answering())
                .oneshot(req)
                .await
                .unwrap();
            resp.into_body().collect().await.unwrap();
        })
        .await;
        let c = client_span(&spans);
        assert_eq!(attr_str(c, "url.full").as_deref(), Some(want), "{origin}");
    }
}

/// The RPC conventions: a client span's status code is the one the call ended with. A channel
/// that cannot connect fails the call with UNAVAILABLE (what tonic gives the caller, as every
/// gRPC client does); the span had no status code and `error.type` `transport`.
#[tokio::test]
async fn grpc_client_connect_error_is_unavailable() {
    exporter();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = grpc_support::client(closed, GrpcClientLayer::new());
    let (err, spans) =
        in_root_async(async { c.unary(grpc_support::msg("hi", 0)).await.unwrap_err() }).await;
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let cs = client_span(&spans);
    assert!(is_error(cs));
    assert_eq!(
        attr(cs, "rpc.grpc.status_code"),
        Some(&Value::I64(14)),
        "{:?}",
        cs.attributes
    );
    assert_eq!(
        attr_str(cs, "error.type").as_deref(),
        Some("UNAVAILABLE"),
        "{:?}",
        cs.attributes
    );
}

/// The HTTP span conventions ("Status"): a client's 4xx/5xx sets the span's status to Error,
/// and "Don't set the span status description if the reason can be inferred from
/// `http.response.status_code`". The client span's status said `HTTP 404`.
#[tokio::test]
async fn http_client_error_status_has_no_description() {
    exporter();
    let addr = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/missing");
    let (status, spans) =
        in_root_async(async { http_support::get(&client, &url, &[]).await.0 }).await;
    assert_eq!(status, 404);
    let c = client_span(&spans);
    assert_eq!(attr(c, "http.response.status_code"), Some(&Value::I64(404)));
    assert_eq!(attr_str(c, "error.type").as_deref(), Some("404"));
    assert_eq!(
        c.status,
        opentelemetry::trace::Status::error(""),
        "the reason is the status code"
    );

    // The server's 5xx, under the same rule.
    let url = format!("http://{addr}/fail");
    let (status, _) = in_root_async(async { http_support::get(&client, &url, &[]).await.0 }).await;
    assert_eq!(status, 500);
    let s = server_span("/fail").await;
    assert_eq!(attr_str(&s, "error.type").as_deref(), Some("500"));
    assert_eq!(s.status, opentelemetry::trace::Status::error(""));
}

/// An HTTP/2 server answering every call `200 application/grpc` with one message, then failing
/// its body (hyper resets the stream with INTERNAL_ERROR).
async fn h2_server_failing_mid_stream() -> std::net::SocketAddr {
    grpc_support::h2_server(|_req: http::Request<hyper::body::Incoming>| async {
        let m = prost::Message::encode_to_vec(&grpc_support::msg("one", 1));
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(m.len() as u32).to_be_bytes());
        frame.extend_from_slice(&m);
        let frames = futures_util::stream::unfold(0, move |step| {
            let frame = frame.clone();
            async move {
                let item: Result<http_body::Frame<Bytes>, std::io::Error> = match step {
                    0 => Ok(http_body::Frame::data(Bytes::from(frame))),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(std::io::Error::other("broke mid-stream"))
                    }
                    _ => return None,
                };
                Some((item, step + 1))
            }
        });
        let body = http_body_util::StreamBody::new(frames);
        let mut r = http::Response::new(body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok::<_, Infallible>(r)
    })
    .await
}

/// The RPC conventions: the client span's status code is the call's. A response stream that
/// fails mid-way (the server resets it) ends the call for its caller with the status tonic
/// makes of the failure (INTERNAL for a reset with INTERNAL_ERROR); the span recorded UNKNOWN
/// ("the response ended without a grpc-status", `finish` after `body_failed`).
#[tokio::test]
async fn grpc_client_stream_failing_mid_way_records_the_callers_status() {
    exporter();
    let addr = h2_server_failing_mid_stream().await;
    let mut c = grpc_support::client(addr, GrpcClientLayer::new());
    let ((first, err), spans) = in_root_async(async {
        let mut s = c
            .server_stream(grpc_support::msg("x", 0))
            .await
            .unwrap()
            .into_inner();
        let first = s.message().await;
        let mut err = None;
        loop {
            match s.message().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        (first.map(|m| m.map(|m| m.text)), err)
    })
    .await;
    assert_eq!(first.unwrap().as_deref(), Some("one"));
    let err = err.expect("the stream fails");
    let cs = client_span(&spans);
    assert!(is_error(cs));
    assert_eq!(
        attr(cs, "rpc.grpc.status_code"),
        Some(&Value::I64(err.code() as i64)),
        "the caller got {err:?}; the span: {:?}",
        cs.attributes
    );
    assert_eq!(
        attr_str(cs, "error.type"),
        Some(format!("{:?}", err.code()).to_uppercase()),
    );
}

/// axum: a span is named after axum's `MatchedPath` whether the layer is in `Router::layer` or
/// around the whole router. A router mounted with `nest_service` routes the request itself,
/// after both the server layer and `RouteLayer` have looked for the `MatchedPath` (only a
/// `MatchedNestedPath` is there then): its spans were named `GET`, with no `http.route`, although
/// the README said "nothing to configure". The README and the `axum` module now say what such a
/// router needs, a `RouteLayer` of its own, and these tests show that it is enough, either way.
/// (Nested with `nest`, and axum's fallbacks, need nothing.)
mod axum_routes {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    async fn serve(app: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn api() -> Router {
        Router::new().nest_service(
            "/svc",
            Router::new()
                .route("/things/{id}", get(|| async { "thing" }))
                .layer(tracer_runtime::http::axum::RouteLayer),
        )
    }

    async fn check(app: Router, tag: &str) {
        exporter();
        let addr = serve(app).await;
        let path = format!("/svc/things/{tag}");
        let (status, _, _) = http_support::get_plain(&format!("http://{addr}{path}"), &[]).await;
        assert_eq!(status, 200);
        let s = server_span(&path).await;
        assert_eq!(
            s.name, "GET /svc/things/{id}",
            "{tag}: a nested service's route"
        );
        assert_eq!(
            attr_str(&s, "http.route").as_deref(),
            Some("/svc/things/{id}")
        );
    }

    #[tokio::test]
    async fn nest_service_routes_inside() {
        check(api().layer(HttpServerLayer::new(SERVICE)), "inside").await;
    }

    #[tokio::test]
    async fn nest_service_routes_around() {
        check(
            tracer_runtime::http::axum::wrap_router(api(), HttpServerLayer::new(SERVICE)),
            "around",
        )
        .await;
    }
}
