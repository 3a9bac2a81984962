//! The call-loop guard, on real HTTP and gRPC servers on 127.0.0.1: cycles of two and three
//! services stopped at the configured repeats, `max_hops` on a long acyclic chain, a path from a
//! caller that is not tracer, legitimate nesting, tracing switched off, bad path values; and the
//! gRPC server layer's public-endpoint option and `traceresponse` metadata.

#[path = "support/loops.rs"]
mod loops;

use std::collections::HashSet;

use loops::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracer_runtime::LoopGuard;

/// Starts one node per `(name, proto)`, each installed as a service with its own exporter.
async fn network(nodes: &[(&str, Proto)], guard: LoopGuard) -> Vec<InMemorySpanExporter> {
    let mut out = Vec::new();
    for (name, proto) in nodes {
        out.push(install(name));
        node(name, *proto, guard).await;
    }
    out
}

fn is_error(s: &SpanData) -> bool {
    status_message(s).is_some()
}

/// A cycle of `nodes`, entered at the first by a caller that is not tracer, with `max_repeats`:
/// the first node refuses its visit number `max_repeats + 2`, after `k * (max_repeats + 1)`
/// calls; every span on the way back is Error; one trace.
async fn cycle(nodes: &[(&str, Proto)], guard: LoopGuard, max_repeats: usize) {
    let exporters = network(nodes, guard).await;
    let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
    let plan = format!("cycle:{}", names.join(","));
    let err = call(names[0], &plan, false)
        .await
        .expect_err("the loop is stopped, and reported as a failure");
    let k = names.len();
    let cycle_text = format!("{} > {} > …", names.join(" > "), names[0]);
    let message = format!("call loop: {cycle_text}");
    assert!(err.contains(&message), "{err}");

    let mut all = Vec::new();
    for (i, e) in exporters.iter().enumerate() {
        let visits = max_repeats + 1 + usize::from(i == 0);
        let spans = server_spans(e, visits).await;
        assert_eq!(spans.len(), visits, "{}: {spans:#?}", names[i]);
        assert!(spans.iter().all(is_error), "{}: {spans:#?}", names[i]);
        all.extend(spans);
    }
    let hops = k * (max_repeats + 1);
    let s = refused(&all);
    let expected_path = (0..hops)
        .map(|i| names[i % k])
        .chain([names[0]])
        .collect::<Vec<_>>()
        .join(" > ");
    assert_eq!(
        attr(s, "tracer.loop.path"),
        Some(Value::from(expected_path))
    );
    assert_eq!(attr(s, "tracer.loop.hops"), Some(Value::I64(hops as i64)));
    assert_eq!(status_message(s).as_deref(), Some(message.as_str()));
    assert_eq!(exception_message(s).as_deref(), Some(message.as_str()));
    assert_eq!(
        exception_attr(s, "exception.type").as_deref(),
        Some("CallLoop")
    );
    match nodes[0].1 {
        Proto::Http => {
            assert_eq!(attr(s, "http.response.status_code"), Some(Value::I64(508)));
            assert!(err.contains("answered 508"), "{err}");
        }
        Proto::Grpc => {
            assert_eq!(attr(s, "rpc.grpc.status_code"), Some(Value::I64(9)));
            assert_eq!(
                attr(s, "error.type"),
                Some(Value::from("FAILED_PRECONDITION"))
            );
            assert!(err.contains("answered FailedPrecondition"), "{err}");
        }
    }
    // One trace, bounded: every server span in it, each visit after the first the child of a
    // CLIENT span.
    let traces: HashSet<_> = all.iter().map(|s| s.span_context.trace_id()).collect();
    assert_eq!(traces.len(), 1, "{all:#?}");
    assert_eq!(s.span_kind, SpanKind::Server);
}

#[tokio::test]
async fn http_cycle_of_two_is_stopped_at_max_repeats() {
    let nodes = [("h2-a", Proto::Http), ("h2-b", Proto::Http)];
    cycle(&nodes, LoopGuard::new().max_repeats(2), 2).await;
}

#[tokio::test]
async fn grpc_cycle_of_two_is_stopped_at_max_repeats() {
    let nodes = [("g2-a", Proto::Grpc), ("g2-b", Proto::Grpc)];
    cycle(&nodes, LoopGuard::new().max_repeats(2), 2).await;
}

#[tokio::test]
async fn cycle_of_three_http_grpc_http_is_stopped_at_the_default_repeats() {
    let nodes = [
        ("m3-a", Proto::Http),
        ("m3-b", Proto::Grpc),
        ("m3-c", Proto::Http),
    ];
    cycle(&nodes, LoopGuard::new(), 4).await;
}

#[tokio::test]
async fn cycle_of_three_grpc_http_grpc_is_stopped_at_max_repeats() {
    let nodes = [
        ("n3-a", Proto::Grpc),
        ("n3-b", Proto::Http),
        ("n3-c", Proto::Grpc),
    ];
    cycle(&nodes, LoopGuard::new().max_repeats(1), 1).await;
}

#[tokio::test]
async fn cycle_of_one_with_no_repeats_allowed() {
    cycle(
        &[("self-a", Proto::Http)],
        LoopGuard::new().max_repeats(0),
        0,
    )
    .await;
}

/// A chain of distinct services, `max_hops` 3: the fifth node, four calls in, refuses.
async fn chain(proto: Proto, prefix: &str) {
    let names: Vec<String> = (0..6).map(|i| format!("{prefix}{i}")).collect();
    let nodes: Vec<(&str, Proto)> = names.iter().map(|n| (n.as_str(), proto)).collect();
    let exporters = network(&nodes, LoopGuard::new().max_hops(3)).await;
    let plan = names[1..].join(",");
    let err = call(&names[0], &plan, false).await.unwrap_err();
    let message = format!(
        "call chain too long: 4 calls (at most 3): {}",
        names[..5].join(" > ")
    );
    assert!(err.contains(&message), "{err}");
    let refusing = server_spans(&exporters[4], 1).await;
    let s = refused(&refusing);
    assert_eq!(status_message(s).as_deref(), Some(message.as_str()));
    assert_eq!(attr(s, "tracer.loop.hops"), Some(Value::I64(4)));
    assert_eq!(
        attr(s, "tracer.loop.path"),
        Some(Value::from(names[..5].join(" > ")))
    );
    // Never called.
    assert!(server_spans(&exporters[5], 1).await.is_empty());
    for e in &exporters[..4] {
        let spans = server_spans(e, 1).await;
        assert_eq!(spans.len(), 1);
        assert!(is_error(&spans[0]), "{spans:#?}");
        assert_eq!(attr(&spans[0], "tracer.loop.path"), None);
    }
}

#[tokio::test]
async fn max_hops_trips_on_a_long_acyclic_http_chain() {
    chain(Proto::Http, "hc").await;
}

#[tokio::test]
async fn max_hops_trips_on_a_long_acyclic_grpc_chain() {
    chain(Proto::Grpc, "gc").await;
}

#[tokio::test]
async fn legitimate_nesting_passes_and_the_path_is_carried() {
    // a → b → a → b → c → b → c, over both protocols: b called three times, a twice.
    let nodes = [
        ("ln-a", Proto::Http),
        ("ln-b", Proto::Grpc),
        ("ln-c", Proto::Http),
    ];
    let exporters = network(&nodes, LoopGuard::new()).await;
    let answer = call("ln-a", "ln-b,ln-a,ln-b,ln-c,ln-b,ln-c", false)
        .await
        .expect("nesting is no loop");
    assert_eq!(
        answer,
        "ln-a>ln-b>ln-a>ln-b>ln-c>ln-b>ln-c@6:ln-a>ln-b>ln-a>ln-b>ln-c>ln-b"
    );
    for (e, visits) in exporters.iter().zip([2, 3, 2]) {
        let spans = server_spans(e, visits).await;
        assert_eq!(spans.len(), visits);
        assert!(spans.iter().all(|s| !is_error(s)), "{spans:#?}");
    }
}

#[tokio::test]
async fn a_path_from_a_caller_that_is_not_tracer_is_honoured() {
    let guard = LoopGuard::new().max_repeats(1);
    let e = network(
        &[
            ("pl-h", Proto::Http),
            ("pl-g", Proto::Grpc),
            ("pl-leaf", Proto::Http),
        ],
        guard,
    )
    .await;
    // Once before: passes, and the path goes on with this node added.
    for (node, text) in [("pl-h", "2:pl-h>x"), ("pl-g", "2:pl-g>x")] {
        let bag = format!("other=1,tracer.path={text}");
        let answer = call_with(node, "pl-leaf", false, &[("baggage", &bag)])
            .await
            .unwrap();
        assert_eq!(answer, format!("{node}>pl-leaf@3:{}>{node}", &text[2..]));
    }
    // Twice before: refused, plain or percent-encoded (`:` is %3A, `>` %3E).
    for node in ["pl-h", "pl-g"] {
        for bag in [
            format!("tracer.path=4:{node}>x>{node}>x"),
            format!("k=v, tracer.path = 4%3A{node}%3Ex%3E{node}%3Ex;prop=1"),
        ] {
            let err = call_with(node, "pl-leaf", false, &[("baggage", &bag)])
                .await
                .unwrap_err();
            assert!(
                err.contains(&format!("call loop: {node} > x > {node} > …")),
                "{err}"
            );
        }
    }
    let h = server_spans(&e[0], 3).await;
    assert_eq!(h.iter().filter(|s| is_error(s)).count(), 2, "{h:#?}");
    assert!(
        h.iter()
            .filter(|s| is_error(s))
            .all(|s| attr(s, "tracer.loop.hops") == Some(Value::I64(4)))
    );
}

#[tokio::test]
async fn malformed_or_oversized_paths_are_ignored_and_a_fresh_path_starts() {
    network(
        &[
            ("bad-h", Proto::Http),
            ("bad-g", Proto::Grpc),
            ("bad-leaf", Proto::Http),
        ],
        LoopGuard::new().max_repeats(0),
    )
    .await;
    let long = format!("tracer.path=1:{}", "a".repeat(3000));
    let too_many = format!("tracer.path=40:{}", vec!["bad-h"; 33].join(">"));
    let huge = format!("tracer.path=3:bad-h>bad-h>bad-h,{}", "k=v,".repeat(2100));
    for node in ["bad-h", "bad-g"] {
        for bag in [
            "tracer.path=garbage",
            "tracer.path=",
            "tracer.path=99999999999:bad-h",
            "tracer.path=1:bad-h>bad-h",
            "tracer.path=3:bad-h>>bad-h",
            "tracer.path=3:bad-h%zz",
            "tracer.path=3:bad-h%FF",
            "tracer.path=3:b a d",
            "tracer.path",
            "=;,,;=",
            long.as_str(),
            too_many.as_str(),
            huge.as_str(),
        ] {
            let answer = call_with(node, "bad-leaf", false, &[("baggage", bag)])
                .await
                .unwrap_or_else(|e| panic!("{node} with {bag:.60}: {e}"));
            assert_eq!(answer, format!("{node}>bad-leaf@1:{node}"), "{bag:.60}");
        }
    }
}

#[tokio::test]
async fn the_guard_works_with_tracing_switched_off() {
    let nodes = [
        ("off-a", Proto::Http),
        ("off-b", Proto::Grpc),
        ("off-c", Proto::Http),
    ];
    let exporters = network(&nodes, LoopGuard::new().max_repeats(1)).await;
    for (n, _) in nodes {
        tracer_runtime::set_enabled(n, false);
    }
    // Nesting still passes, the path carried with no span.
    let answer = call("off-a", "off-b,off-a,off-c", false).await.unwrap();
    assert_eq!(answer, "off-a>off-b>off-a>off-c@3:off-a>off-b>off-a");
    // A loop is stopped, by the first node on its third visit.
    let err = call("off-a", "cycle:off-a,off-b,off-c", false)
        .await
        .unwrap_err();
    assert!(
        err.contains("off-a answered 508: call loop: off-a > off-b > off-c > off-a > …"),
        "{err}"
    );
    let err = call("off-b", "cycle:off-b,off-a", false).await.unwrap_err();
    assert!(
        err.contains("off-b answered FailedPrecondition: call loop: off-b > off-a > off-b > …"),
        "{err}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for e in &exporters {
        assert_eq!(
            e.get_finished_spans().unwrap().len(),
            0,
            "no span while off"
        );
    }
}

#[tokio::test]
async fn the_guard_can_be_switched_off_per_layer() {
    let e = network(
        &[("lo-a", Proto::Http), ("lo-b", Proto::Grpc)],
        LoopGuard::off(),
    )
    .await;
    // Nine times round already, and served; the clients (guard on) still carry the path.
    let answer = call_with(
        "lo-a",
        "lo-b",
        false,
        &[(
            "baggage",
            "tracer.path=9:lo-a>lo-a>lo-a>lo-a>lo-a>lo-a>lo-a>lo-a>lo-a",
        )],
    )
    .await
    .unwrap();
    assert!(answer.starts_with("lo-a>lo-b@10:lo-a>"), "{answer}");
    assert_eq!(server_spans(&e[0], 1).await.len(), 1);
}

mod grpc_parity {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    async fn unary(
        addr: std::net::SocketAddr,
        headers: &[(&str, &str)],
    ) -> (tonic::metadata::MetadataMap, Result<String, tonic::Status>) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let mut req = tonic::Request::new(pb::Msg {
            text: String::new(),
            ..Default::default()
        });
        for (k, v) in headers {
            req.metadata_mut().insert(
                tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match pb::echo_client::EchoClient::new(channel).unary(req).await {
            Ok(r) => (r.metadata().clone(), Ok(r.into_inner().text)),
            Err(s) => (s.metadata().clone(), Err(s)),
        }
    }

    #[tokio::test]
    async fn grpc_server_returns_the_trace_id_as_traceresponse_metadata() {
        let spans = install("tr-g");
        let addr = node("tr-g", Proto::Grpc, LoopGuard::new().max_repeats(0)).await;
        let (md, answer) = unary(addr, &[("traceparent", PARENT)]).await;
        assert_eq!(answer.unwrap(), "tr-g");
        let s = &server_spans(&spans, 1).await[0];
        let sc = s.span_context.clone();
        assert_eq!(
            md.get("traceresponse").unwrap().to_str().unwrap(),
            format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
        );
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // Also on a refused call (trailers-only response).
        let (md, answer) = unary(addr, &[("baggage", "tracer.path=1:tr-g")]).await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::FailedPrecondition);
        let refused_span = refused(&server_spans(&spans, 2).await).clone();
        assert_eq!(
            md.get("traceresponse").unwrap().to_str().unwrap(),
            format!(
                "00-{}-{}-01",
                refused_span.span_context.trace_id(),
                refused_span.span_context.span_id()
            )
        );
    }

    #[tokio::test]
    async fn grpc_public_endpoint_links_the_incoming_context_and_drops_its_baggage() {
        let spans = install("pub-g");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = tracer_runtime::grpc::GrpcServerLayer::new("pub-g")
            .with_public_endpoint(true)
            .with_loop_guard(LoopGuard::new().max_repeats(0));
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(pb::echo_server::EchoServer::new(Baggage))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        // A path that would be a loop, and other baggage: neither reaches the handler.
        let (_, answer) = unary(
            addr,
            &[
                ("traceparent", PARENT),
                ("baggage", "user=bob,tracer.path=3:pub-g>pub-g>pub-g"),
            ],
        )
        .await;
        assert_eq!(answer.unwrap(), "");
        let s = &server_spans(&spans, 1).await[0];
        assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert_ne!(
            s.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(s.links.len(), 1);
        assert_eq!(
            s.links[0].span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    /// Answers with the baggage its handler sees.
    struct Baggage;

    type MsgStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::Msg, tonic::Status>> + Send>>;

    #[tonic::async_trait]
    impl pb::echo_server::Echo for Baggage {
        async fn unary(
            &self,
            _req: tonic::Request<pb::Msg>,
        ) -> Result<tonic::Response<pb::Msg>, tonic::Status> {
            use opentelemetry::baggage::BaggageExt as _;
            let cx = opentelemetry::Context::current();
            let items: Vec<String> = cx
                .baggage()
                .iter()
                .map(|(k, (v, _))| format!("{k}={v}"))
                .collect();
            Ok(tonic::Response::new(pb::Msg {
                text: items.join(","),
                ..Default::default()
            }))
        }

        type ServerStreamStream = MsgStream;

        async fn server_stream(
            &self,
            _req: tonic::Request<pb::Msg>,
        ) -> Result<tonic::Response<MsgStream>, tonic::Status> {
            Err(tonic::Status::unimplemented(""))
        }

        async fn client_stream(
            &self,
            _req: tonic::Request<tonic::Streaming<pb::Msg>>,
        ) -> Result<tonic::Response<pb::Msg>, tonic::Status> {
            Err(tonic::Status::unimplemented(""))
        }

        type BidiStream = MsgStream;

        async fn bidi(
            &self,
            _req: tonic::Request<tonic::Streaming<pb::Msg>>,
        ) -> Result<tonic::Response<MsgStream>, tonic::Status> {
            Err(tonic::Status::unimplemented(""))
        }
    }
}
