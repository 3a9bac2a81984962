//! RED metrics from spans, with a sampler that keeps nothing (`traceidratio`, 0): every HTTP,
//! gRPC (unary and streaming), Redis, MySQL and `#[traced(metrics)]` operation is still counted,
//! with the semantic-convention labels and `error_type` exactly on failures; the label sets past
//! the cap go to the overflow series; `/metrics` serves valid text and is not counted itself.

#[path = "support/grpc.rs"]
mod grpc_support;
#[path = "support/http.rs"]
mod http_support;
#[path = "support/prom.rs"]
mod prom;

use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use grpc_support::pb::Msg;
use http_body_util::BodyExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SimpleSpanProcessor};
use prom::{all, scrape, value, wait_count};
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::traced;

const SERVICE: &str = "metrics";
/// A second service, with a cap of 3 label sets per instrument.
const CAPPED: &str = "metrics-capped";

struct Pipeline {
    spans: InMemorySpanExporter,
    metrics_addr: std::net::SocketAddr,
    _guards: Vec<tracer_runtime::Guard>,
}

static PIPELINE: OnceLock<Pipeline> = OnceLock::new();

/// Installs both services on first use: a sampler that drops every span, metrics on a free port.
fn pipeline() -> &'static Pipeline {
    PIPELINE.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let main = tracer_runtime::init(SERVICE)
            .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
            .with_sampler(Sampler::TraceIdRatioBased(0.0))
            .with_prometheus("127.0.0.1:0")
            .install()
            .expect("install the metrics pipeline");
        let capped = tracer_runtime::init(CAPPED)
            .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
            .with_sampler(Sampler::TraceIdRatioBased(0.0))
            .with_metrics_cardinality_limit(3)
            .install()
            .expect("install the capped pipeline");
        Pipeline {
            spans,
            metrics_addr: main.metrics_addr().expect("with_prometheus serves"),
            _guards: vec![main, capped],
        }
    })
}

/// Nothing was sampled: whatever was counted, no span reached the exporter.
fn assert_nothing_sampled() {
    assert_eq!(
        pipeline().spans.get_finished_spans().unwrap().len(),
        0,
        "the sampler keeps nothing"
    );
}

/// Runs `fut` under a (sampled-out) root span, as a request handler would.
async fn in_root<F: std::future::Future>(fut: F) -> F::Output {
    let tracer = opentelemetry::global::tracer("metrics-test");
    let cx = opentelemetry::Context::current().with_span(tracer.start("root"));
    fut.with_context(cx).await
}

const HTTP_SERVER: &str = "http_server_request_duration_seconds_count";
const HTTP_CLIENT: &str = "http_client_request_duration_seconds_count";

#[tokio::test]
async fn http_server_and_client_requests_are_all_counted_with_errors_labelled() {
    pipeline();
    let addr = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    for _ in 0..3 {
        let (status, ..) = http_support::get(&client, &format!("http://{addr}/ok"), &[]).await;
        assert_eq!(status, 200);
    }
    for _ in 0..2 {
        let (status, ..) = http_support::get(&client, &format!("http://{addr}/fail"), &[]).await;
        assert_eq!(status, 500);
    }
    for id in [7, 8] {
        let (status, ..) =
            http_support::get(&client, &format!("http://{addr}/users/{id}"), &[]).await;
        assert_eq!(status, 200);
    }
    let (status, ..) = http_support::get(&client, &format!("http://{addr}/missing"), &[]).await;
    assert_eq!(status, 404);

    let ok = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
    ];
    wait_count(SERVICE, HTTP_SERVER, &ok, 3.0).await;
    let fail = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "500"),
        ("error_type", "500"),
    ];
    wait_count(SERVICE, HTTP_SERVER, &fail, 2.0).await;
    // The route template, never the raw path.
    let users = [
        ("http_request_method", "GET"),
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "200"),
    ];
    wait_count(SERVICE, HTTP_SERVER, &users, 2.0).await;
    // A 404 is no server error.
    let missing = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "404"),
    ];
    wait_count(SERVICE, HTTP_SERVER, &missing, 1.0).await;

    let samples = scrape(SERVICE);
    for s in all(&samples, HTTP_SERVER) {
        assert!(
            !s.labels
                .values()
                .any(|v| v.contains("/users/7") || v == "/ok"),
            "a raw path became a label: {s:?}"
        );
    }
    let client_labels = |code: &'static str, err: Option<&'static str>| {
        let mut l = vec![
            ("http_request_method", "GET"),
            ("server_address", "127.0.0.1"),
            ("http_response_status_code", code),
        ];
        l.extend(err.map(|e| ("error_type", e)));
        l
    };
    // The client sees 5xx and 4xx as errors.
    wait_count(SERVICE, HTTP_CLIENT, &client_labels("200", None), 5.0).await;
    wait_count(
        SERVICE,
        HTTP_CLIENT,
        &client_labels("500", Some("500")),
        2.0,
    )
    .await;
    wait_count(
        SERVICE,
        HTTP_CLIENT,
        &client_labels("404", Some("404")),
        1.0,
    )
    .await;
    let sum = value(&samples, "http_server_request_duration_seconds_sum", &ok).expect("a sum");
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
    // The buckets are cumulative, as the exposition format has them: `+Inf` is the count, none
    // is above it, none below the one before, and three quick requests are all under a second.
    let count = value(&samples, HTTP_SERVER, &ok).expect("a count");
    let mut buckets: Vec<(f64, f64)> = all(&samples, "http_server_request_duration_seconds_bucket")
        .into_iter()
        .filter(|s| {
            let mut l = s.labels.clone();
            l.remove("le");
            l.len() == ok.len()
                && ok
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| {
            let le = s.labels["le"].as_str();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.last().map(|b| b.1), Some(count), "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert!(buckets.iter().all(|b| b.1 <= count), "{buckets:?}");
    let under_a_second = buckets.iter().find(|b| b.0 == 1.0).map(|b| b.1);
    assert_eq!(under_a_second, Some(count), "{buckets:?}");
    assert_nothing_sampled();
}

const RPC_SERVER: &str = "rpc_server_call_duration_seconds_count";
const RPC_CLIENT: &str = "rpc_client_call_duration_seconds_count";

fn rpc(method: &'static str, code: &'static str, err: bool) -> Vec<(&'static str, &'static str)> {
    let mut l = vec![
        ("rpc_system", "grpc"),
        ("rpc_service", "tracer.test.Echo"),
        ("rpc_method", method),
        ("rpc_response_status_code", code),
    ];
    if err {
        l.push(("error_type", code));
    }
    l
}

#[tokio::test]
async fn grpc_unary_and_streaming_calls_are_all_counted_by_status() {
    pipeline();
    let addr = grpc_support::serve(GrpcServerLayer::new(SERVICE)).await;
    let mut c = grpc_support::client(addr, GrpcClientLayer::new());
    for _ in 0..4 {
        c.unary(grpc_support::msg("hi", 1)).await.unwrap();
    }
    // INVALID_ARGUMENT is the client's fault: an error for the client only.
    let e = c.unary(grpc_support::msg("fail", 1)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // INTERNAL is the server's fault: an error on both sides.
    let e = c.unary(grpc_support::msg("internal", 1)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal);
    // A bidirectional stream: one call, counted when the stream ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(4);
    let mut inbound = c
        .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..3 {
        tx.send(grpc_support::msg("m", i)).await.unwrap();
        inbound.message().await.unwrap().unwrap();
    }
    drop(tx);
    while inbound.message().await.unwrap().is_some() {}

    wait_count(SERVICE, RPC_SERVER, &rpc("Unary", "OK", false), 4.0).await;
    wait_count(SERVICE, RPC_CLIENT, &rpc("Unary", "OK", false), 4.0).await;
    wait_count(
        SERVICE,
        RPC_SERVER,
        &rpc("Unary", "INVALID_ARGUMENT", false),
        1.0,
    )
    .await;
    wait_count(
        SERVICE,
        RPC_CLIENT,
        &rpc("Unary", "INVALID_ARGUMENT", true),
        1.0,
    )
    .await;
    wait_count(SERVICE, RPC_SERVER, &rpc("Unary", "INTERNAL", true), 1.0).await;
    wait_count(SERVICE, RPC_CLIENT, &rpc("Unary", "INTERNAL", true), 1.0).await;
    wait_count(SERVICE, RPC_SERVER, &rpc("Bidi", "OK", false), 1.0).await;
    wait_count(SERVICE, RPC_CLIENT, &rpc("Bidi", "OK", false), 1.0).await;
    assert_nothing_sampled();
}

/// Calls to methods the server does not know (answered UNIMPLEMENTED) are one series with
/// `_OTHER` for service and method: a peer making up method names cannot make series at will,
/// and no made-up name becomes a label.
#[tokio::test]
async fn unknown_grpc_methods_are_one_other_series() {
    pipeline();
    let addr = grpc_support::serve(GrpcServerLayer::new(SERVICE)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    for method in ["Missing", "Absent", "Nowhere"] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path: http::uri::PathAndQuery = format!("/made.up.Service{method}/{method}")
            .parse()
            .unwrap();
        let e = grpc
            .unary(
                tonic::Request::new(grpc_support::msg("x", 1)),
                path,
                tonic_prost::ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }
    let unimplemented = |samples: &[prom::Sample]| -> Vec<prom::Sample> {
        all(samples, RPC_SERVER)
            .into_iter()
            .filter(|s| {
                s.labels.get("rpc_response_status_code").map(String::as_str)
                    == Some("UNIMPLEMENTED")
            })
            .cloned()
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let samples = scrape(SERVICE);
        if unimplemented(&samples).iter().map(|s| s.value).sum::<f64>() >= 3.0
            || std::time::Instant::now() > deadline
        {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let series = unimplemented(&samples);
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].value, 3.0, "{series:?}");
    assert_eq!(
        series[0].labels.get("rpc_method").map(String::as_str),
        Some("_OTHER"),
        "{series:?}"
    );
    let text = tracer_runtime::metrics::text(SERVICE).unwrap();
    assert!(
        !text.contains("made.up"),
        "a made-up name became a label:\n{text}"
    );
}

const DB: &str = "db_client_operation_duration_seconds_count";

#[tokio::test]
async fn redis_commands_are_counted_and_server_errors_labelled() {
    use fred::prelude::*;
    const HOW: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
                       --save \"\" --appendonly no (or run `bash .ci/run`)";
    pipeline();
    if let Err(e) =
        TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(2))
    {
        panic!("Redis is not reachable on 127.0.0.1:6379 ({e}); {HOW}");
    }
    let c = tracer_runtime::redis::Traced::new(
        Builder::from_config(Config::from_url("redis://127.0.0.1:6379/0").unwrap())
            .build()
            .unwrap(),
    );
    c.init()
        .await
        .unwrap_or_else(|e| panic!("Redis on 127.0.0.1:6379: {e}; {HOW}"));
    let key = format!("tracer:metrics:{}", std::process::id());
    in_root(async {
        let _: () = c.set(&key, "a string", None, None, false).await.unwrap();
        for _ in 0..3 {
            let _: Option<String> = c.get(&key).await.unwrap();
        }
        c.lpush::<i64, _, _>(&key, "x").await.unwrap_err();
        let _: i64 = c.del(&key).await.unwrap();
    })
    .await;
    let get = [("db_system_name", "redis"), ("db_operation_name", "GET")];
    wait_count(SERVICE, DB, &get, 3.0).await;
    let lpush = [
        ("db_system_name", "redis"),
        ("db_operation_name", "LPUSH"),
        ("error_type", "WRONGTYPE"),
    ];
    wait_count(SERVICE, DB, &lpush, 1.0).await;
    assert_nothing_sampled();
}

#[tokio::test]
async fn mysql_statements_are_counted_by_table_and_error_code() {
    use mysql_async::prelude::*;
    const HOW: &str = "start it with: start-stop-daemon --start --oknodo --background --exec \
                       /usr/sbin/mariadbd (user root, no password, database `test`; or run `bash .ci/run`)";
    pipeline();
    if let Err(e) =
        TcpStream::connect_timeout(&"127.0.0.1:3306".parse().unwrap(), Duration::from_secs(2))
    {
        panic!("MariaDB/MySQL is not reachable on 127.0.0.1:3306 ({e}); {HOW}");
    }
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"))
        .into();
    let t = format!("tracer_metrics_{}", std::process::id());
    let mut plain = mysql_async::Conn::new(opts.clone())
        .await
        .unwrap_or_else(|e| panic!("MariaDB on 127.0.0.1:3306: {e}; {HOW}"));
    plain
        .query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {t} (id INT PRIMARY KEY)"
        ))
        .await
        .unwrap();
    let pool = tracer_runtime::mysql::TracedPool::new(opts);
    in_root(async {
        let mut c = pool.get_conn().await.unwrap();
        for id in 0..2 {
            c.exec_drop(format!("SELECT id FROM {t} WHERE id = ?"), (id,))
                .await
                .unwrap();
        }
        c.query_drop("SELEC 'oops' FROM nowhere").await.unwrap_err();
    })
    .await;
    plain.query_drop(format!("DROP TABLE {t}")).await.unwrap();
    let select = [
        ("db_system_name", "mysql"),
        ("db_operation_name", "SELECT"),
        ("db_collection_name", t.as_str()),
    ];
    wait_count(SERVICE, DB, &select, 2.0).await;
    let samples = scrape(SERVICE);
    let errors: Vec<_> = all(&samples, DB)
        .into_iter()
        .filter(|s| {
            s.labels.get("db_system_name").map(String::as_str) == Some("mysql")
                && s.labels.get("error_type").map(String::as_str) == Some("1064")
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].value, 1.0);
    for s in all(&samples, DB) {
        assert!(
            !s.labels.values().any(|v| v.contains("oops")),
            "a SQL value became a label: {s:?}"
        );
    }
    assert_nothing_sampled();
}

#[traced(metrics, err)]
fn parse_port(s: &str) -> Result<u16, std::num::ParseIntError> {
    s.parse()
}

#[traced]
fn not_measured() -> u8 {
    1
}

#[tokio::test]
async fn traced_fns_opt_in_with_metrics() {
    pipeline();
    for s in ["80", "443", "x"] {
        let _ = parse_port(s);
    }
    not_measured();
    let samples = scrape(SERVICE);
    let name = "tracer_function_duration_seconds_count";
    assert_eq!(
        value(&samples, name, &[("span_name", "parse_port")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            name,
            &[("span_name", "parse_port"), ("error_type", "ParseIntError")]
        ),
        Some(1.0)
    );
    assert!(
        !all(&samples, name)
            .iter()
            .any(|s| s.labels.get("span_name").map(String::as_str) == Some("not_measured")),
        "a fn without `metrics` is not measured"
    );
    assert_nothing_sampled();
}

#[tokio::test]
async fn label_sets_past_the_cap_are_counted_in_the_overflow_series() {
    pipeline();
    // Every path its own route: a misconfigured route function, the case the cap is for.
    let layer = HttpServerLayer::new(CAPPED).with_route(|_, uri, _| Some(uri.path().to_owned()));
    let addr = http_support::serve(layer).await;
    for i in 0..5 {
        let (status, ..) = http_support::get_plain(&format!("http://{addr}/ok/{i}"), &[]).await;
        assert_eq!(status, 200);
    }
    let overflow = [("otel_metric_overflow", "true")];
    wait_count(CAPPED, HTTP_SERVER, &overflow, 2.0).await;
    let samples = scrape(CAPPED);
    let series = all(&samples, HTTP_SERVER);
    assert_eq!(
        series.len(),
        4,
        "3 label sets and the overflow one: {series:?}"
    );
    assert_eq!(series.iter().map(|s| s.value).sum::<f64>(), 5.0);
    assert_nothing_sampled();
}

#[tokio::test]
async fn the_endpoint_serves_valid_text_and_is_not_counted() {
    let addr = pipeline().metrics_addr;
    let fetch = || async move {
        let resp = http_support::plain_client()
            .get(format!("http://{addr}/metrics").parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (ct, String::from_utf8(body.to_vec()).unwrap())
    };
    let (ct, first) = fetch().await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let samples = prom::parse(&first);
    let target: Vec<_> = all(&samples, "target_info");
    assert_eq!(target.len(), 1, "{first}");
    assert_eq!(target[0].labels["service_name"], SERVICE);
    assert!(
        target[0].labels.contains_key("telemetry_sdk_language"),
        "{first}"
    );
    let started = |s: &[prom::Sample]| value(s, "otel_sdk_span_started_total", &[]).unwrap();
    assert!(value(&samples, "otel_sdk_exporter_span_exported_total", &[]).is_some());
    assert!(
        value(
            &samples,
            "otel_sdk_exporter_span_exported_total",
            &[("error_type", "export_failed")]
        )
        .is_some()
    );
    assert!(value(&samples, "otel_sdk_exporter_operation_failed_total", &[]).is_some());
    let before = started(&samples);
    for _ in 0..3 {
        fetch().await;
    }
    let (_, last) = fetch().await;
    let after = prom::parse(&last);
    // Other tests of this binary may start spans meanwhile, but none of them serves /metrics.
    assert!(
        !all(&after, HTTP_SERVER).iter().any(|s| s
            .labels
            .get("http_route")
            .is_some_and(|r| r.contains("metrics"))),
        "{last}"
    );
    assert!(started(&after) >= before);
    // Anything but /metrics is a 404 (the switch endpoint is off unless enabled).
    let resp = http_support::plain_client()
        .get(format!("http://{addr}/tracer").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
