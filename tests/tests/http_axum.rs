//! The server layer fits axum: `Router::layer`, the route template from `MatchedPath`, a
//! panicking handler turned into a 500.

mod common;

use axum::Router;
use axum::extract::{MatchedPath, Path};
use axum::routing::get;
use common::*;
use opentelemetry::Value;
use tracer_runtime::http::HttpServerLayer;

async fn user(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

async fn explode() -> &'static str {
    panic!("axum handler exploded")
}

#[tokio::test]
async fn axum_router_with_matched_path() {
    exporter();
    let layer = HttpServerLayer::new(SERVICE)
        .with_route(|_, _, ext| ext.get::<MatchedPath>().map(|p| p.as_str().to_owned()));
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/explode", get(explode))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (status, body, _) = http_get(&format!("http://{addr}/users/42")).await;
    assert_eq!((status, body.as_str()), (200, "user 42"));
    let s = server_span("/users/42").await;
    assert_eq!(s.name, "GET /users/{id}");
    assert_eq!(attr_str(&s, "http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::I64(200))
    );

    let (status, _, _) = http_get(&format!("http://{addr}/explode")).await;
    assert_eq!(status, 500);
    let s = server_span("/explode").await;
    assert_eq!(error_message(&s).as_deref(), Some("axum handler exploded"));
    assert_eq!(
        http_get(&format!("http://{addr}/users/1")).await.0,
        200,
        "still serving"
    );
}

async fn http_get(url: &str) -> (u16, String, http::HeaderMap) {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

/// Serves `app` and returns the span name of `GET /users/7`.
async fn name_of_users_route(app: Router, tag: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let path = format!("/users/{tag}");
    let (status, _, _) = http_get(&format!("http://{addr}/users/{tag}")).await;
    assert_eq!(status, 200);
    let s = server_span(&path).await;
    assert_eq!(attr_str(&s, "http.route").as_deref(), Some("/users/{id}"));
    s.name.to_string()
}

fn users() -> Router {
    Router::new().route("/users/{id}", get(user))
}

#[tokio::test]
async fn axum_routes_are_named_with_the_layer_inside_the_router() {
    exporter();
    // No `with_route`: the `axum` feature reads `MatchedPath` itself.
    let app = users().layer(HttpServerLayer::new(SERVICE));
    assert_eq!(name_of_users_route(app, "101").await, "GET /users/{id}");
}

#[tokio::test]
async fn axum_routes_are_named_with_the_layer_around_the_router() {
    exporter();
    let app = tracer_runtime::http::axum::wrap_router(users(), HttpServerLayer::new(SERVICE));
    assert_eq!(name_of_users_route(app, "102").await, "GET /users/{id}");
}

#[tokio::test]
async fn axum_service_builder_form_serves_with_axum_serve() {
    exporter();
    // The README's form: a ServiceBuilder stack in `Router::layer`, served by `axum::serve`.
    let app = users().layer(
        tower::ServiceBuilder::new().layer(HttpServerLayer::new(SERVICE).with_trace_response(true)),
    );
    assert_eq!(name_of_users_route(app, "103").await, "GET /users/{id}");
}
