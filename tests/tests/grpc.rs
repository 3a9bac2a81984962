//! gRPC against a real tonic server and client on 127.0.0.1: every RPC kind, parent/child,
//! message events, statuses from trailers, errors mid-stream, cancellation, deadlines, panics,
//! per-message spans in a bidirectional stream.

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;

use std::time::Duration;

use common::*;
use grpc_support::pb::Msg;
use grpc_support::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use tonic::Code;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer, MessageEvents, send_message_span};

async fn server() -> (std::net::SocketAddr, TracedClient) {
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE)).await;
    (addr, client(addr, GrpcClientLayer::new()))
}

fn client_span(spans: &[SpanData]) -> &SpanData {
    let c: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(c.len(), 1, "{:?}", names(spans));
    c[0]
}

/// `rpc.message` events of a span: (type, id) in order.
fn messages(s: &SpanData) -> Vec<(String, i64)> {
    s.events
        .iter()
        .filter(|e| e.name == "rpc.message")
        .map(|e| {
            let get = |k: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.clone())
            };
            let id = match get("rpc.message.id") {
                Some(Value::I64(i)) => i,
                other => panic!("rpc.message.id: {other:?}"),
            };
            assert!(get("rpc.message.uncompressed_size").is_some());
            (get("rpc.message.type").unwrap().as_str().into_owned(), id)
        })
        .collect()
}

/// Reads a response stream to its end: the messages read, and the error that ended it if any.
async fn drain(s: &mut tonic::Streaming<Msg>) -> (usize, Option<tonic::Status>) {
    let mut got = 0;
    loop {
        match s.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn count(s: &SpanData, kind: &str) -> usize {
    messages(s).iter().filter(|(t, _)| t == kind).count()
}

fn code(s: &SpanData) -> Option<i64> {
    match attr(s, "rpc.grpc.status_code") {
        Some(Value::I64(c)) => Some(*c),
        _ => None,
    }
}

#[tokio::test]
async fn unary_parent_child_attributes_and_messages() {
    let (addr, mut c) = server().await;
    let (reply, spans) =
        in_root_async(async { c.unary(msg("hello", 0)).await.unwrap().into_inner() }).await;
    assert_eq!(reply.text, "HELLO");
    let cs = client_span(&spans);
    assert_child_of(cs, root(&spans));
    assert_eq!(cs.name, "tracer.test.Echo/Unary");
    assert_eq!(attr_str(cs, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attr_str(cs, "rpc.service").as_deref(),
        Some("tracer.test.Echo")
    );
    assert_eq!(attr_str(cs, "rpc.method").as_deref(), Some("Unary"));
    assert_eq!(attr_str(cs, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(cs, "server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );
    assert_eq!(code(cs), Some(0));
    // A unary call gets no `rpc.message` events by default (the span says it all).
    assert_eq!(messages(cs), []);

    let ss = server_child(cs).await;
    assert_eq!(ss.name, "tracer.test.Echo/Unary");
    assert_eq!(code(&ss), Some(0));
    assert_eq!(
        attr_str(&ss, "network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(messages(&ss), []);
    assert!(!is_error(&ss) && !is_error(cs));
    assert!(
        ss.events
            .iter()
            .chain(cs.events.iter())
            .all(|e| e.name != "rpc.message.payload"),
        "payloads are not recorded by default"
    );
    // The handler's own #[traced] fn nests under the server span.
    let handled = spans_of(ss.span_context.trace_id());
    let h = handled
        .iter()
        .find(|s| s.name == "handle_message")
        .expect("handle_message span");
    assert_child_of(h, &ss);
}

#[tokio::test]
async fn server_streaming_status_from_trailers() {
    let (_, mut c) = server().await;
    let (items, spans) = in_root_async(async {
        let mut s = c.server_stream(msg("", 5)).await.unwrap().into_inner();
        let mut n = 0;
        while s.message().await.unwrap().is_some() {
            n += 1;
        }
        n
    })
    .await;
    assert_eq!(items, 5);
    let cs = client_span(&spans);
    assert_eq!(count(cs, "RECEIVED"), 5);
    assert_eq!(count(cs, "SENT"), 1);
    assert_eq!(code(cs), Some(0), "the OK status came in the trailers");
    let ss = server_child(cs).await;
    assert_eq!(count(&ss, "SENT"), 5);
    assert_eq!(code(&ss), Some(0));
    let ids: Vec<i64> = messages(&ss)
        .into_iter()
        .filter(|(t, _)| t == "SENT")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn client_streaming() {
    let (_, mut c) = server().await;
    let (reply, spans) = in_root_async(async {
        let out = futures_util::stream::iter((0..4).map(|i| msg("up", i)));
        c.client_stream(out).await.unwrap().into_inner()
    })
    .await;
    assert_eq!(reply.count, 4);
    let cs = client_span(&spans);
    assert_eq!(count(cs, "SENT"), 4);
    assert_eq!(count(cs, "RECEIVED"), 1);
    let ss = server_child(cs).await;
    assert_eq!(count(&ss, "RECEIVED"), 4);
    assert_eq!(count(&ss, "SENT"), 1);
}

#[tokio::test]
async fn bidirectional_with_one_span_per_message() {
    let (_, mut c) = server().await;
    const N: i32 = 4;
    let (replies, spans) = in_root_async(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(8);
        let mut inbound = c
            .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut replies = Vec::new();
        for i in 0..N {
            let mut m = msg(&format!("m{i}"), i);
            let sent = send_message_span("Echo/Bidi send", &mut m.trace_context);
            tx.send(m).await.unwrap();
            drop(sent);
            replies.push(inbound.message().await.unwrap().unwrap().text);
        }
        drop(tx);
        while inbound.message().await.unwrap().is_some() {}
        replies
    })
    .await;
    assert_eq!(replies, ["M0", "M1", "M2", "M3"]);
    let cs = client_span(&spans);
    assert_eq!(count(cs, "SENT"), N as usize);
    assert_eq!(count(cs, "RECEIVED"), N as usize);
    let ss = server_child(cs).await;
    let sends: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "Echo/Bidi send")
        .collect();
    assert_eq!(sends.len(), N as usize);
    let all = spans_of(cs.span_context.trace_id());
    for send in sends {
        assert_eq!(send.span_kind, SpanKind::Producer);
        assert_child_of(send, root(&spans));
        // Its own branch: the receiver's span is the child of this message's span, and the
        // handler's work is under it.
        let recv: Vec<&SpanData> = all
            .iter()
            .filter(|s| {
                s.name == "Echo/Bidi message" && s.parent_span_id == send.span_context.span_id()
            })
            .collect();
        assert_eq!(recv.len(), 1, "one receive span per sent message");
        assert_eq!(recv[0].span_kind, SpanKind::Consumer);
        assert_eq!(
            recv[0].links.links[0].span_context.span_id(),
            ss.span_context.span_id(),
            "linked to the RPC span"
        );
        let work: Vec<_> = all
            .iter()
            .filter(|s| {
                s.name == "handle_message" && s.parent_span_id == recv[0].span_context.span_id()
            })
            .collect();
        assert_eq!(work.len(), 1);
    }
}

/// The server span's events in a bidirectional stream: each message received (read by the
/// request body, which is not the span's owner when the span is on the recorder's short path)
/// comes before the reply it caused, with its own time, the times in order.
#[tokio::test]
async fn bidirectional_server_events_keep_their_order_and_times() {
    let (_, mut c) = server().await;
    const N: i32 = 3;
    let ((), spans) = in_root_async(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(8);
        let mut inbound = c
            .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        for i in 0..N {
            tx.send(msg(&format!("m{i}"), i)).await.unwrap();
            inbound.message().await.unwrap().unwrap();
            // Time between a reply and the next message: the events' times tell them apart.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(tx);
        while inbound.message().await.unwrap().is_some() {}
    })
    .await;
    let ss = server_child(client_span(&spans)).await;
    let expected: Vec<(String, i64)> = (1..=i64::from(N))
        .flat_map(|i| [("RECEIVED".to_owned(), i), ("SENT".to_owned(), i)])
        .collect();
    assert_eq!(messages(&ss), expected);
    let times: Vec<_> = ss
        .events
        .iter()
        .filter(|e| e.name == "rpc.message")
        .map(|e| e.timestamp)
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "event times out of order: {times:?}"
    );
    // Each message after the first came after a 5 ms pause: its own time, not its reply's.
    for pair in times.chunks(2).skip(1) {
        assert!(pair[0] >= times[0] + Duration::from_millis(5), "{times:?}");
    }
    assert!(ss.start_time <= times[0] && times[times.len() - 1] <= ss.end_time);
}

/// An HTTP/2 server answering every request with `status`, `headers` and an empty body: a
/// proxy, or something that is not a gRPC server.
async fn raw_h2_server(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> std::net::SocketAddr {
    use http_body_util::Full;
    h2_server(
        move |_req: http::Request<hyper::body::Incoming>| async move {
            let mut r = http::Response::new(Full::new(bytes::Bytes::new()));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                r.headers_mut()
                    .insert(*k, http::HeaderValue::from_static(v));
            }
            Ok::<_, std::convert::Infallible>(r)
        },
    )
    .await
}

/// A call answered without any `grpc-status` failed for its caller (tonic: UNAVAILABLE for a
/// proxy's 503, UNKNOWN for a 200 that never says): its span says so, with the code the gRPC
/// spec maps the HTTP status to. (Found by a review: the span was not an error.)
#[tokio::test]
async fn a_call_answered_without_grpc_status_is_an_error() {
    exporter();
    for (status, code, name) in [
        (503, Code::Unavailable, "UNAVAILABLE"),
        (200, Code::Unknown, "UNKNOWN"),
    ] {
        let addr = raw_h2_server(status, &[("content-type", "application/grpc")]).await;
        let mut c = client(addr, GrpcClientLayer::new());
        let (err, spans) = in_root_async(async { c.unary(msg("x", 0)).await.unwrap_err() }).await;
        assert_eq!(err.code(), code, "{err:?}");
        let cs = client_span(&spans);
        assert!(
            is_error(cs),
            "HTTP {status}: {:?} {:?}",
            cs.status,
            cs.attributes
        );
        assert_eq!(
            attr_str(cs, "error.type").as_deref(),
            Some(name),
            "HTTP {status}"
        );
        assert_eq!(
            attr(cs, "rpc.grpc.status_code"),
            Some(&Value::I64(code as i64)),
            "HTTP {status}"
        );
    }
}

/// A server stream cut by its caller after the call's `grpc-timeout` ran out is
/// DEADLINE_EXCEEDED on the server span, as a unary call dropped after its deadline is, not a
/// cancellation. (Found by a review: the span said `tracer.cancelled`.)
#[tokio::test]
async fn a_deadline_passing_mid_stream_is_deadline_exceeded() {
    let (_, mut c) = server().await;
    let ((), spans) = in_root_async(async {
        let mut req = tonic::Request::new(msg("slow", 0));
        req.set_timeout(Duration::from_millis(300));
        let mut s = c.server_stream(req).await.unwrap().into_inner();
        // As a client that enforces its deadline on the whole call: cut after the deadline.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(450) {
            s.message().await.unwrap().unwrap();
        }
    })
    .await;
    let ss = server_child(client_span(&spans)).await;
    assert_eq!(
        attr(&ss, "rpc.grpc.status_code"),
        Some(&Value::I64(4)),
        "{:?}",
        ss.attributes
    );
    assert_eq!(attr(&ss, "tracer.cancelled"), None);
    assert!(is_error(&ss));
}

#[tokio::test]
async fn error_statuses_follow_the_conventions() {
    let (_, mut c) = server().await;
    let (err, spans) = in_root_async(async { c.unary(msg("fail", 0)).await.unwrap_err() }).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    let cs = client_span(&spans);
    assert!(is_error(cs), "any non-OK code is an error for the client");
    assert_eq!(code(cs), Some(3));
    let ss = server_child(cs).await;
    assert_eq!(code(&ss), Some(3));
    assert!(!is_error(&ss), "INVALID_ARGUMENT is the caller's fault");

    let (err, spans) =
        in_root_async(async { c.unary(msg("internal", 0)).await.unwrap_err() }).await;
    assert_eq!(err.code(), Code::Internal);
    let ss = server_child(client_span(&spans)).await;
    assert!(is_error(&ss));
    assert_eq!(error_message(&ss).as_deref(), Some("broken inside"));
    assert_eq!(attr_str(&ss, "error.type").as_deref(), Some("INTERNAL"));
}

#[tokio::test]
async fn an_error_returned_mid_stream() {
    let (_, mut c) = server().await;
    let ((got, err), spans) = in_root_async(async {
        let mut s = c
            .server_stream(msg("fail-mid", 0))
            .await
            .unwrap()
            .into_inner();
        drain(&mut s).await
    })
    .await;
    assert_eq!(got, 2);
    assert_eq!(err.unwrap().code(), Code::Internal);
    let cs = client_span(&spans);
    assert_eq!(code(cs), Some(13));
    assert!(is_error(cs));
    let ss = server_child(cs).await;
    assert_eq!(code(&ss), Some(13));
    assert_eq!(error_message(&ss).as_deref(), Some("broke mid-stream"));
}

#[tokio::test]
async fn a_client_cancelling_mid_stream() {
    let (_, mut c) = server().await;
    let (_, spans) = in_root_async(async {
        let mut s = c.server_stream(msg("slow", 0)).await.unwrap().into_inner();
        s.message().await.unwrap();
        s.message().await.unwrap();
        // dropped here: the client stops reading
    })
    .await;
    let cs = client_span(&spans);
    assert_eq!(attr(cs, "tracer.cancelled"), Some(&Value::Bool(true)));
    assert_eq!(count(cs, "RECEIVED"), 2);
    let ss = server_child(cs).await;
    assert_eq!(
        attr(&ss, "tracer.cancelled"),
        Some(&Value::Bool(true)),
        "the server's stream was cut short"
    );
}

/// A server stream cut short by its client: the stream's state is dropped under the server's
/// span (its code ran there), so what its drop runs is the request's, before the span ends.
#[tokio::test]
async fn the_cleanup_of_a_stream_cut_short_is_under_the_server_span() {
    let (_, mut c) = server().await;
    let (_, spans) = in_root_async(async {
        let mut s = c
            .server_stream(msg("slow-cleanup", 0))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap();
        // dropped here: the client stops reading
    })
    .await;
    let cs = client_span(&spans);
    let ss = server_child(cs).await;
    assert_eq!(attr(&ss, "tracer.cancelled"), Some(&Value::Bool(true)));
    let trace = ss.span_context.trace_id();
    let cleanup = wait_for_span("the stream's cleanup", |s| {
        s.name == "stream_cleanup" && s.span_context.trace_id() == trace
    })
    .await;
    assert_child_of(&cleanup, &ss);
}

#[tokio::test]
async fn a_deadline_exceeded() {
    let (_, mut c) = server().await;
    let (err, spans) = in_root_async(async {
        let mut req = tonic::Request::new(msg("slow", 0));
        req.set_timeout(Duration::from_millis(300));
        c.unary(req).await.unwrap_err()
    })
    .await;
    // tonic's server answers an expired grpc-timeout with CANCELLED.
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    let cs = client_span(&spans);
    assert!(is_error(cs));
    assert_eq!(
        code(cs),
        Some(4),
        "the client span says its deadline passed"
    );
    assert_eq!(
        attr_str(cs, "error.type").as_deref(),
        Some("DEADLINE_EXCEEDED")
    );
    let ss = server_child(cs).await;
    assert_eq!(
        code(&ss),
        Some(4),
        "the server span says the deadline passed"
    );
    assert!(is_error(&ss));
    assert_eq!(error_message(&ss).as_deref(), Some("deadline exceeded"));
}

#[tokio::test]
async fn a_caller_giving_up_before_its_deadline_is_a_cancellation() {
    let (_, mut c) = server().await;
    let ((), spans) = in_root_async(async {
        let mut req = tonic::Request::new(msg("slow", 0));
        req.set_timeout(Duration::from_millis(900));
        let gave_up = tokio::time::timeout(Duration::from_millis(100), c.unary(req)).await;
        assert!(gave_up.is_err(), "the slow handler answered within 100 ms");
    })
    .await;
    let cs = client_span(&spans);
    assert_eq!(attr(cs, "tracer.cancelled"), Some(&Value::Bool(true)));
    let ss = server_child(cs).await;
    assert_eq!(
        attr(&ss, "tracer.cancelled"),
        Some(&Value::Bool(true)),
        "cut at 100 ms of 900: the caller cancelled, the deadline had not passed"
    );
    assert_eq!(code(&ss), None);
    assert!(!is_error(&ss));
}

#[tokio::test]
async fn panics_reach_the_caller_as_internal_and_the_server_keeps_serving() {
    let (_, mut c) = server().await;
    let (err, spans) = in_root_async(async { c.unary(msg("panic", 0)).await.unwrap_err() }).await;
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "unary handler exploded");
    let ss = server_child(client_span(&spans)).await;
    assert!(is_error(&ss));
    assert_eq!(
        error_message(&ss).as_deref(),
        Some("unary handler exploded")
    );
    assert_eq!(
        event_attr(&ss, "exception", "exception.message"),
        Some(Value::from("unary handler exploded"))
    );
    assert_eq!(code(&ss), Some(13));
    assert_eq!(
        c.unary(msg("again", 0)).await.unwrap().into_inner().text,
        "AGAIN"
    );

    let ((got, err), spans) = in_root_async(async {
        let mut s = c
            .server_stream(msg("panic", 10))
            .await
            .unwrap()
            .into_inner();
        drain(&mut s).await
    })
    .await;
    // The message before the panic may die with tonic's encoder buffer; never more than one.
    assert!(got <= 1, "{got}");
    let err = err.expect("the stream ends with an error");
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "stream producer exploded");
    let ss = server_child(client_span(&spans)).await;
    assert_eq!(
        error_message(&ss).as_deref(),
        Some("stream producer exploded")
    );
    assert_eq!(
        event_attr(&ss, "exception", "exception.type"),
        Some(Value::from("panic"))
    );
    assert_eq!(
        c.unary(msg("still", 0)).await.unwrap().into_inner().text,
        "STILL"
    );
}

#[tokio::test]
async fn message_events_are_capped() {
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE).with_max_message_events(3)).await;
    let mut c = client(addr, GrpcClientLayer::new().with_max_message_events(2));
    let (_, spans) = in_root_async(async {
        let mut s = c.server_stream(msg("", 10)).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
    })
    .await;
    let cs = client_span(&spans);
    assert_eq!(messages(cs).len(), 2);
    assert_eq!(attr(cs, "rpc.message.events_dropped"), Some(&Value::I64(9)));
    let ss = server_child(cs).await;
    assert_eq!(messages(&ss).len(), 3);
    assert_eq!(
        attr(&ss, "rpc.message.events_dropped"),
        Some(&Value::I64(8))
    );
}

#[tokio::test]
async fn payloads_are_recorded_when_asked() {
    use tracer_runtime::grpc::Payloads;
    exporter();
    let payloads = || Payloads::new().method::<Msg, Msg>("/tracer.test.Echo/Unary");
    let addr = serve(GrpcServerLayer::new(SERVICE).with_payloads(payloads())).await;
    let mut c = client(addr, GrpcClientLayer::new().with_payloads(payloads()));
    let (_, spans) =
        in_root_async(async { c.unary(msg("payload please", 7)).await.unwrap() }).await;
    let payload = |s: &SpanData, kind: &str| -> Option<String> {
        s.events
            .iter()
            .filter(|e| e.name == "rpc.message.payload")
            .find(|e| {
                e.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "rpc.message.type" && kv.value.as_str() == kind)
            })
            .and_then(|e| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "rpc.message.payload")
            })
            .map(|kv| kv.value.as_str().into_owned())
    };
    let cs = client_span(&spans);
    let sent = payload(cs, "SENT").expect("the request payload on the client span");
    assert!(
        sent.contains("text: \"payload please\"") && sent.contains("count: 7"),
        "{sent}"
    );
    let got = payload(cs, "RECEIVED").expect("the response payload");
    assert!(got.contains("PAYLOAD PLEASE"), "{got}");
    let ss = server_child(cs).await;
    assert!(payload(&ss, "RECEIVED").unwrap().contains("payload please"));
    assert!(payload(&ss, "SENT").unwrap().contains("PAYLOAD PLEASE"));
}

#[tokio::test]
async fn unary_message_events_when_asked_for_and_none_when_not() {
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE).with_message_events(MessageEvents::All)).await;
    let mut c = client(
        addr,
        GrpcClientLayer::new().with_message_events(MessageEvents::All),
    );
    let (_, spans) = in_root_async(async { c.unary(msg("hi", 0)).await.unwrap() }).await;
    let cs = client_span(&spans);
    assert_eq!(
        messages(cs),
        [("SENT".to_owned(), 1), ("RECEIVED".to_owned(), 1)]
    );
    let ss = server_child(cs).await;
    assert_eq!(
        messages(&ss),
        [("RECEIVED".to_owned(), 1), ("SENT".to_owned(), 1)]
    );

    let addr = serve(GrpcServerLayer::new(SERVICE).with_message_events(MessageEvents::None)).await;
    let mut c = client(
        addr,
        GrpcClientLayer::new().with_message_events(MessageEvents::None),
    );
    let (_, spans) = in_root_async(async {
        let mut s = c.server_stream(msg("", 3)).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
    })
    .await;
    let cs = client_span(&spans);
    assert_eq!(messages(cs), []);
    assert_eq!(messages(&server_child(cs).await), []);
}

#[tokio::test]
async fn held_back_messages_keep_their_own_times() {
    let (_, mut c) = server().await;
    let (_, spans) = in_root_async(async {
        let mut s = c.server_stream(msg("", 3)).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
    })
    .await;
    let cs = client_span(&spans);
    let times: Vec<_> = cs
        .events
        .iter()
        .filter(|e| e.name == "rpc.message")
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(times.len(), 4, "{:?}", messages(cs));
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {times:?}"
    );
    assert!(times[0] >= cs.start_time && times[3] <= cs.end_time);
}
