//! `OTEL_SEMCONV_STABILITY_OPT_IN` chooses the RPC attribute names: the old ones by default, the
//! new ones with `rpc`, both with `rpc/dup`; `error.type` on every failed span whatever the choice.
//! Each choice runs in a child process, since the variable is read once per process.

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;

use common::*;
use grpc_support::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};

fn probe(value: Option<&str>) {
    run_probe("semconv_probe", &[("OTEL_SEMCONV_STABILITY_OPT_IN", value)]);
}

#[test]
fn each_opt_in_value() {
    probe(None);
    probe(Some("rpc"));
    probe(Some("http,rpc/dup"));
}

#[tokio::test]
#[ignore = "run in a child process by each_opt_in_value"]
async fn semconv_probe() {
    let var = std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").unwrap_or_default();
    let (old, new) = match var.as_str() {
        "" => (true, false),
        "rpc" => (false, true),
        _ => (true, true),
    };
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE)).await;
    let mut c = client(addr, GrpcClientLayer::new());

    let (_, spans) = in_root_async(async { c.unary(msg("ok", 0)).await.unwrap() }).await;
    let cs = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap()
        .clone();
    let ss = server_child(&cs).await;
    for s in [&cs, &ss] {
        assert_eq!(s.name, "tracer.test.Echo/Unary");
        assert_eq!(attr_str(s, "rpc.system").is_some(), old, "{var}");
        assert_eq!(attr_str(s, "rpc.service").is_some(), old, "{var}");
        assert_eq!(
            attr(s, "rpc.grpc.status_code") == Some(&Value::I64(0)),
            old,
            "{var}"
        );
        assert_eq!(
            attr_str(s, "rpc.system.name").as_deref() == Some("grpc"),
            new,
            "{var}"
        );
        assert_eq!(
            attr_str(s, "rpc.response.status_code").as_deref() == Some("OK"),
            new,
            "{var}"
        );
        let method = if new {
            "tracer.test.Echo/Unary"
        } else {
            "Unary"
        };
        assert_eq!(attr_str(s, "rpc.method").as_deref(), Some(method), "{var}");
        assert_eq!(attr_str(s, "error.type"), None);
    }

    let (_, spans) = in_root_async(async { c.unary(msg("internal", 0)).await.unwrap_err() }).await;
    let cs = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap()
        .clone();
    let ss = server_child(&cs).await;
    for s in [&cs, &ss] {
        assert!(is_error(s));
        assert_eq!(attr_str(s, "error.type").as_deref(), Some("INTERNAL"));
        assert_eq!(
            attr(s, "rpc.grpc.status_code") == Some(&Value::I64(13)),
            old
        );
        assert_eq!(
            attr_str(s, "rpc.response.status_code").as_deref() == Some("INTERNAL"),
            new
        );
    }

    // A method the server does not have (answered UNIMPLEMENTED): in the new names, the
    // conventions' `_OTHER` with the caller's name as `rpc.method_original`, the span named
    // after the system; in the old ones, the name as it came.
    {
        use grpc_support::pb::Msg;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let e = grpc
            .unary(
                tonic::Request::new(msg("x", 1)),
                "/made.up.Svc/Nope".parse().unwrap(),
                tonic_prost::ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }
    let ss = wait_for_span("the made-up method's server span", |s| {
        s.span_kind == SpanKind::Server
            && s.attributes
                .iter()
                .any(|kv| kv.value.as_str().contains("made.up.Svc") || kv.value.as_str() == "Nope")
    })
    .await;
    let methods: Vec<String> = ss
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str() == "rpc.method")
        .map(|kv| kv.value.as_str().into_owned())
        .collect();
    if new {
        assert_eq!(methods, ["_OTHER"], "{var}: {:?}", ss.attributes);
        assert_eq!(
            attr_str(&ss, "rpc.method_original").as_deref(),
            Some("made.up.Svc/Nope"),
            "{var}"
        );
        assert_eq!(ss.name, "grpc", "{var}");
    } else {
        assert_eq!(methods, ["Nope"], "{var}: {:?}", ss.attributes);
        assert_eq!(attr_str(&ss, "rpc.method_original"), None, "{var}");
        assert_eq!(ss.name, "made.up.Svc/Nope", "{var}");
    }
}

/// A peer calling hundreds of methods the server does not have (answered UNIMPLEMENTED) cannot
/// use up the names the process keeps for spans and RED labels: a real method called after the
/// flood is still counted under its own name (from its second call on: its first, before any
/// answer showed it is real, is `_OTHER`). In a child process: the table of kept names is the
/// process's. (Found by a review: after ~340 made-up methods, every real one was `_OTHER`.)
#[test]
fn made_up_methods_do_not_use_up_the_real_methods_labels() {
    run_probe("made_up_methods_probe", &[]);
}

#[tokio::test]
#[ignore = "run in a child process by made_up_methods_do_not_use_up_the_real_methods_labels"]
async fn made_up_methods_probe() {
    use grpc_support::pb::Msg;
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    // An untraced peer calling methods the server does not have.
    for i in 0..1500 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path: http::uri::PathAndQuery = format!("/made.up.S{i}/M{i}").parse().unwrap();
        let e = grpc
            .unary(
                tonic::Request::new(msg("x", 1)),
                path,
                tonic_prost::ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }
    // Then a real method, twice.
    let mut c = grpc_support::pb::echo_client::EchoClient::new(channel);
    c.unary(msg("hi", 0)).await.unwrap();
    c.unary(msg("hi", 0)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = tracer_runtime::metrics::text(SERVICE).unwrap();
        let named: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("rpc_server_call_duration_seconds_count{")
                    && l.contains(r#"rpc_method="Unary""#)
                    && l.contains(r#"rpc_service="tracer.test.Echo""#)
            })
            .collect();
        if !named.is_empty() {
            assert!(named.iter().any(|l| l.ends_with(" 1")), "{named:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the real method has no series of its own:\n{}",
            text.lines()
                .filter(|l| l.starts_with("rpc_server_call_duration_seconds_count"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
