//! gRPC as the stack's protocol: spans named `package.Service/Method`, the status from the
//! trailers (or the head of a trailers-only answer) with the server's and the client's fault
//! tables, each message an `rpc.message` event, the `grpc-timeout` deadline; FAILED_PRECONDITION
//! for a refused call, INTERNAL for a panic.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::body::GrpcRequestBody;
use super::messages::{DEFAULT_MAX_MESSAGE_EVENTS, MessageEvents, MessageReader, Messages};
use super::payloads::{Payloads, Tap};
use super::status::{grpc_status, record_status, status_trailers};
use crate::recorder::Labels;
use crate::stack::attrs::push_server_address;
use crate::stack::protocol::sealed::{ClientError, Sealed, WrapRequest};
use crate::stack::protocol::{Protocol, ServerAddr, Start};
use crate::stack::span::SpanCx;
use crate::stack::{ClientAddr, ClientLayer, ServerLayer};

/// The conventions' name for a method the instrumentation does not know.
const OTHER: &str = "_OTHER";

/// gRPC, the [`Protocol`] of [`GrpcServerLayer`](super::GrpcServerLayer) and
/// [`GrpcClientLayer`](super::GrpcClientLayer); holds the options only gRPC has (its bodies
/// are framed into messages; an HTTP body is not).
#[derive(Clone, Debug)]
pub struct Grpc {
    max_events: usize,
    message_events: MessageEvents,
    payloads: Option<Arc<Payloads>>,
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            max_events: DEFAULT_MAX_MESSAGE_EVENTS,
            message_events: MessageEvents::default(),
            payloads: None,
        }
    }
}

impl Protocol for Grpc {}

macro_rules! message_options {
    ($layer:ty) => {
        impl $layer {
            /// Records the payloads of the methods `payloads` names (off by default: payloads
            /// often carry user data).
            ///
            /// gRPC only, as the two options below: an HTTP body is not framed into messages.
            pub fn with_payloads(mut self, payloads: Payloads) -> Self {
                self.protocol_mut().payloads = Some(Arc::new(payloads));
                self
            }

            /// At most `n` `rpc.message` events per span (default
            /// [`DEFAULT_MAX_MESSAGE_EVENTS`](super::DEFAULT_MAX_MESSAGE_EVENTS)); the rest are
            /// counted in `rpc.message.events_dropped`.
            pub fn with_max_message_events(mut self, n: usize) -> Self {
                self.protocol_mut().max_events = n;
                self
            }

            /// Which calls get `rpc.message` events: streaming ones only (the default), all, or
            /// none. See [`MessageEvents`].
            pub fn with_message_events(mut self, which: MessageEvents) -> Self {
                self.protocol_mut().message_events = which;
                self
            }
        }
    };
}

message_options!(ServerLayer<Grpc>);
message_options!(ClientLayer<Grpc>);

/// What a gRPC call keeps until its span ends. Behind one pointer: it travels in the response
/// future and body, which are moved several times per call, with tracing off too (as `None`),
/// so that they stay a few words larger than the handler's own. Shared with the request body
/// (one allocation per call for both).
pub struct GrpcCall(Arc<CallState>);

/// See [`GrpcCall`].
pub(crate) struct CallState {
    server: bool,
    messages: Messages,
    /// The request's payload tap, for the reader of the request body's messages (RECEIVED on
    /// the server, SENT on the client).
    request_tap: Option<Tap>,
    /// The response's messages (SENT on the server, RECEIVED on the client), read as the
    /// response body's frames come, one at a time (the lock is never contended).
    response: Mutex<MessageReader>,
    /// Server side: when the caller's `grpc-timeout` runs out.
    deadline: Option<Instant>,
    /// A request body's `rpc.message` events waiting for the span's holder (a span on the
    /// recorder's short path: see `stack::span`).
    deferred: crate::stack::span::Deferred,
    /// Some of them wait.
    deferred_any: AtomicBool,
    /// Server side: the call's path when its names were not kept as it came (see
    /// [`learn_names`]).
    unkept: Option<Box<str>>,
    /// Server side, in the new RPC names: the method's name as `rpc.method` has it, made
    /// `_OTHER` if the answer shows the server does not have it (see [`answered`]).
    method: Option<Cow<'static, str>>,
    /// Client side: the response gave a status (`grpc-status`, or an HTTP status that is not
    /// 200). A response that ends without one failed for the caller (UNKNOWN).
    status_seen: AtomicBool,
}

impl crate::stack::span::EventSink for CallState {
    fn deferred(&self) -> (&crate::stack::span::Deferred, &AtomicBool) {
        (&self.deferred, &self.deferred_any)
    }
}

impl CallState {
    /// The call's message-event accounting, shared by its request and response bodies.
    pub(crate) fn messages(&self) -> &Messages {
        &self.messages
    }
}

impl fmt::Debug for GrpcCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcCall")
            .field("server", &self.0.server)
            .field("deadline", &self.0.deadline)
            .finish_non_exhaustive()
    }
}

impl Grpc {
    fn call(
        &self,
        path: &str,
        server: bool,
        deadline: Option<Instant>,
        unkept: Option<Box<str>>,
        method: Option<Cow<'static, str>>,
    ) -> GrpcCall {
        let (req_tap, resp_tap) = match &self.payloads {
            Some(p) => p.for_path(path),
            None => (None, None),
        };
        GrpcCall(Arc::new(CallState {
            server,
            messages: Messages::new(self.max_events, self.message_events),
            request_tap: req_tap,
            response: Mutex::new(MessageReader::new(server, resp_tap)),
            deadline,
            status_seen: AtomicBool::new(false),
            unkept,
            method,
            deferred: crate::stack::span::deferred(),
            deferred_any: AtomicBool::new(false),
        }))
    }
}

/// A server's call answered `code`: a method whose names were not kept is real unless it is
/// UNIMPLEMENTED (see [`learn_names`]). UNIMPLEMENTED says the server does not have the method
/// (or its handler says it does not do it): in the new RPC names, the conventions' `_OTHER`,
/// the caller's name kept as `rpc.method_original`, and the span named after the system.
fn answered(call: &GrpcCall, cx: &mut SpanCx, code: i32) {
    if code != 12 {
        if let Some(path) = &call.0.unkept {
            learn_names(path);
        }
    } else if let Some(method) = &call.0.method {
        cx.put_attribute(KeyValue::new(semconv::RPC_METHOD, OTHER));
        cx.set_attribute(KeyValue::new(semconv::RPC_METHOD_ORIGINAL, method.clone()));
        cx.update_name("grpc");
    }
}

/// A call dropped before it ended (its response future, or its response body mid-stream):
/// DEADLINE_EXCEEDED on a server whose caller's `grpc-timeout` has run out (tonic answers
/// CANCELLED on the wire; the span says what happened), else `tracer.cancelled`.
fn cancelled_or_late(call: &GrpcCall, cx: &mut SpanCx) {
    if call.0.server && call.0.deadline.is_some_and(|d| Instant::now() >= d) {
        record_status(cx, 4, "deadline exceeded", true);
    } else {
        cx.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
    }
}

/// The gRPC code of a response that is not a gRPC answer, by its HTTP status (the gRPC spec's
/// "HTTP to gRPC Status Code Mapping").
fn code_of_http(status: http::StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// The head of a trailers-only response carrying `code`.
fn status_head(code: i32, message: &str) -> Response<Option<Bytes>> {
    let mut r = Response::new(None);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    for (k, v) in &status_trailers(code, message) {
        h.insert(k, v.clone());
    }
    r
}

fn end(call: GrpcCall, cx: &mut SpanCx) {
    call.0.messages.finish(cx);
    cx.end();
}

impl Sealed for Grpc {
    type Call = GrpcCall;

    const LOOP_ERROR_TYPE: &'static str = "FAILED_PRECONDITION";
    const BODY_IN_SPAN: bool = true;
    const RPC: bool = true;

    fn server_span<B>(
        &self,
        req: &Request<B>,
        _headers: &crate::stack::attrs::ServerHeaders<'_>,
        scheme: &'static str,
        client_addr: Option<SocketAddr>,
        shares: bool,
    ) -> (Start<GrpcCall>, crate::attrs::Blocks) {
        let path = req.uri().path();
        // For a span whose list comes back once written (tracer's exporter), one that came
        // back.
        let list = if shares {
            crate::pool::list(ROOM)
        } else {
            Vec::with_capacity(ROOM)
        };
        let (name, mut attrs, labels) = rpc_attrs_in(crate::semconv::rpc(), path, true, list);
        // A service or method name the process does not keep (the part of its table a peer's
        // names may take is full, or the name is too long) is a name the caller chose:
        // `_OTHER` in the RED labels, as the conventions have it for an unknown method, so that
        // a peer cannot make series (or interned label values) at will. The span keeps the
        // name; an answer other than UNIMPLEMENTED keeps it for the method's next calls.
        let unkept = labels
            .is_none()
            .then(|| Box::<str>::from(path.trim_start_matches('/')));
        let labels = labels.or_else(|| {
            let old = crate::semconv::rpc().old;
            Some(Labels([Some("grpc"), old.then_some(OTHER), Some(OTHER)]))
        });
        let scheme = req.uri().scheme_str().unwrap_or(scheme);
        push_server_address(&mut attrs, req, None, scheme);
        if let Some(peer) = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
            .or_else(|| req.extensions().get::<ClientAddr>().map(|c| c.0))
            .or(client_addr)
        {
            crate::stack::attrs::push_peer(&mut attrs, peer);
        }
        let deadline = super::deadline::deadline(req.headers());
        // The name `rpc.method` has in the new names (none when it is `_OTHER` already).
        let method = (crate::semconv::rpc().new
            && attrs
                .iter()
                .any(|kv| kv.key.as_str() == semconv::RPC_METHOD && kv.value.as_str() != OTHER))
        .then(|| name.clone());
        (
            (
                name,
                attrs,
                labels,
                self.call(path, true, deadline, unkept, method),
            ),
            None,
        )
    }

    fn client_span<B>(&self, req: &Request<B>, server: Option<&ServerAddr>) -> Start<GrpcCall> {
        let path = req.uri().path();
        let (name, mut attrs, labels) = rpc_attrs(path, false);
        let scheme = req.uri().scheme_str().unwrap_or("http");
        push_server_address(&mut attrs, req, server, scheme);
        (
            name,
            attrs,
            labels,
            self.call(path, false, None, None, None),
        )
    }

    fn refused(cx: &mut SpanCx, message: &str) {
        record_status(cx, 9, message, true);
    }

    fn loop_response(message: &str) -> Response<Option<Bytes>> {
        status_head(9, message)
    }

    fn record_panic(cx: &mut SpanCx, payload: &(dyn Any + Send)) -> String {
        let message = cx.record_exception(payload);
        record_status(cx, 13, &message, true);
        message
    }

    fn panic_response(_cx: Option<&mut SpanCx>, message: &str) -> Response<Option<Bytes>> {
        status_head(13, message)
    }

    fn server_response<B>(call: &mut GrpcCall, cx: &mut SpanCx, resp: &Response<B>) {
        if let Some((code, msg)) = grpc_status(resp.headers()) {
            // A trailers-only response: the status is in the head.
            answered(call, cx, code);
            record_status(cx, code, &msg, true);
        }
    }

    fn server_failed(call: GrpcCall, cx: &mut SpanCx, error: &dyn fmt::Display) {
        record_status(cx, 2, &error.to_string(), true);
        end(call, cx);
    }

    fn client_response<B>(call: &mut GrpcCall, cx: &mut SpanCx, resp: &Response<B>) {
        let status = grpc_status(resp.headers()).or_else(|| {
            // Not a gRPC answer (a proxy's, say): the code the gRPC spec maps its HTTP status to.
            let http = resp.status();
            (http != http::StatusCode::OK).then(|| (code_of_http(http), format!("HTTP {http}")))
        });
        if let Some((code, msg)) = status {
            call.0.status_seen.store(true, Ordering::Relaxed);
            record_status(cx, code, &msg, false);
        }
    }

    fn dropped(call: GrpcCall, cx: &mut SpanCx) {
        cancelled_or_late(&call, cx);
        end(call, cx);
    }

    fn end(call: GrpcCall, cx: &mut SpanCx) {
        end(call, cx);
    }

    fn data(call: &mut GrpcCall, cx: &mut SpanCx, data: &[u8]) {
        let c = &*call.0;
        c.response
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(cx, &c.messages, data);
    }

    fn trailers(call: &mut GrpcCall, cx: &mut SpanCx, trailers: &HeaderMap) {
        if let Some((code, msg)) = grpc_status(trailers) {
            call.0.status_seen.store(true, Ordering::Relaxed);
            if call.0.server {
                answered(call, cx, code);
            }
            record_status(cx, code, &msg, call.0.server);
        }
    }

    fn body_failed(call: GrpcCall, cx: &mut SpanCx, error: &dyn fmt::Display, any: &dyn Any) {
        // A client's body (tonic's) fails with the `Status` its caller gets: the call's status.
        if !call.0.server
            && let Some(status) = any.downcast_ref::<tonic::Status>()
        {
            call.0.status_seen.store(true, Ordering::Relaxed);
            record_status(cx, status.code() as i32, &error.to_string(), false);
            return Self::finish(call, cx, true);
        }
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "stream"));
        span.set_status(Status::error(error.to_string()));
        Self::finish(call, cx, true);
    }

    fn body_panicked(
        span: Option<(GrpcCall, &mut SpanCx)>,
        payload: &(dyn Any + Send),
    ) -> HeaderMap {
        // The caller gets INTERNAL, the server keeps serving.
        let message = match span {
            Some((call, cx)) => {
                let m = Self::record_panic(cx, payload);
                Self::finish(call, cx, true);
                m
            }
            None => crate::panic::payload_message(payload),
        };
        status_trailers(13, &message)
    }

    fn finish(call: GrpcCall, cx: &mut SpanCx, complete: bool) {
        if !complete {
            cancelled_or_late(&call, cx);
        } else if !call.0.server && !call.0.status_seen.load(Ordering::Relaxed) {
            // The whole response read and no status in it: the caller got UNKNOWN (tonic's
            // "missing grpc-status"), so does the span.
            record_status(cx, 2, "the response ended without a grpc-status", false);
        }
        end(call, cx);
    }
}

impl WrapRequest<tonic::body::Body> for Grpc {
    fn wrap(
        req: Request<tonic::body::Body>,
        call: &mut GrpcCall,
        cx: &mut SpanCx,
    ) -> Request<tonic::body::Body> {
        let cx = cx.shared(|| Arc::clone(&call.0) as Arc<dyn crate::stack::span::EventSink>);
        let reader = MessageReader::new(!call.0.server, call.0.request_tap.clone());
        let shared = Arc::clone(&call.0);
        req.map(move |b| tonic::body::Body::new(GrpcRequestBody::new(b, cx, shared, reader)))
    }
}

impl<E: std::error::Error + 'static> ClientError<E> for Grpc {
    fn client_failed(call: GrpcCall, cx: &mut SpanCx, error: &E) {
        // The message with its causes: tonic's transport errors say little on top.
        let mut message = error.to_string();
        // The status the caller gets, as tonic finds it in the chain (`Status::from_error`): a
        // `Status`'s own, UNAVAILABLE for a connection that could not be made; the request's
        // own grpc-timeout expired is DEADLINE_EXCEEDED here (tonic reports it as CANCELLED).
        let code_of = |e: &(dyn std::error::Error + 'static)| {
            if let Some(s) = e.downcast_ref::<tonic::Status>() {
                Some(s.code() as i32)
            } else if e.is::<tonic::TimeoutExpired>() {
                Some(4)
            } else if e.is::<tonic::ConnectError>() {
                Some(14)
            } else {
                None
            }
        };
        let mut code = code_of(error);
        let mut next = error.source();
        while let Some(cause) = next {
            code = code.or_else(|| code_of(cause));
            message.push_str(": ");
            message.push_str(&cause.to_string());
            next = cause.source();
        }
        if let Some(code) = code {
            record_status(cx, code, &message, false);
        } else {
            let span = &mut *cx;
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "transport"));
            span.set_status(Status::error(message));
        }
        end(call, cx);
    }
}

/// A name of a call: kept for the process when it can be (see `stack::attrs::static_name`).
type Name = Cow<'static, str>;

/// Slots of the per-thread cache of [`rpc_names`]' answers (direct-mapped by the path's hash).
const RPC_NAME_SLOTS: usize = 16;

/// A call's kept names: `package.Service/Method`, `package.Service`, `Method`.
type KeptNames = (&'static str, &'static str, &'static str);

/// A call's name and, when the path is `/package.Service/Method`, its two halves.
type Names = (Name, Option<(Name, Name)>);

thread_local! {
    /// The names of the calls this thread traced lately, found by their path: one hash and one
    /// compare where keeping each of the three names costs its own.
    static RPC_NAMES: crate::hash::Slots<KeptNames, RPC_NAME_SLOTS> =
        const { std::cell::RefCell::new([None; RPC_NAME_SLOTS]) };
}

/// `package.Service/Method` from `/package.Service/Method`, with its two halves. `peer`: a
/// path a peer sent (a server's), whose names may take only part of the table of kept names
/// until an answer shows them real (see [`learn_names`]).
fn rpc_names(path: &str, peer: bool) -> Names {
    let trimmed = path.trim_start_matches('/');
    crate::hash::cached(
        &RPC_NAMES,
        crate::hash::quick_hash(trimmed.as_bytes()),
        |&(full, svc, method)| {
            (full == trimmed).then(|| (full.into(), Some((svc.into(), method.into()))))
        },
        || {
            let kept = if peer {
                crate::stack::attrs::kept_peer_name
            } else {
                crate::stack::attrs::kept_name
            };
            split_names(trimmed, kept)
        },
    )
}

/// Keeps the names of a method a server answered (with anything but UNIMPLEMENTED) whose
/// names were not kept when the call came: it is real, and its next calls are counted under its
/// names. A method a peer made up, answered UNIMPLEMENTED, takes no room from the real ones.
fn learn_names(trimmed: &str) {
    let _ = split_names(trimmed, crate::stack::attrs::kept_name);
}

/// [`rpc_names`] of a path not found in the thread's cache, each name kept by `kept`, and the
/// entry to keep for it when the process keeps its three names.
fn split_names(trimmed: &str, kept: fn(&str) -> Name) -> (Names, Option<KeptNames>) {
    // A service's methods are few: their names are kept for the process (bounded), and a span
    // shares them.
    match trimmed.split_once('/') {
        Some((svc, method)) if !svc.is_empty() && !method.is_empty() && !method.contains('/') => {
            let (full, svc, method) = (kept(trimmed), kept(svc), kept(method));
            let entry = match (&full, &svc, &method) {
                (Cow::Borrowed(f), Cow::Borrowed(s), Cow::Borrowed(m)) => Some((*f, *s, *m)),
                _ => None,
            };
            ((full, Some((svc, method))), entry)
        }
        _ => {
            let full = if trimmed.is_empty() {
                Cow::Borrowed("grpc")
            } else {
                Cow::Owned(trimmed.to_owned())
            };
            ((full, None), None)
        }
    }
}

/// The span name and the RPC attributes of a call, in the names `OTEL_SEMCONV_STABILITY_OPT_IN`
/// asks for (see the crate's `semconv` module: the old names by default, as `otelgrpc` does),
/// and its RED labels (system, service, method: the last `rpc.method` recorded) when every one
/// of them is a name kept for the process.
#[allow(deprecated)]
fn rpc_attrs(path: &str, peer: bool) -> (Cow<'static, str>, Vec<KeyValue>, Option<Labels>) {
    rpc_attrs_in(crate::semconv::rpc(), path, peer, Vec::with_capacity(ROOM))
}

/// Room for what the layers add to the RPC attributes at the start (server address and port,
/// the peer's) and after it (status code, error type): the list is never moved to grow.
const ROOM: usize = 12;

/// [`rpc_attrs`] in the names `conv` asks for, in `attrs` (empty, with [`ROOM`]).
#[allow(deprecated)]
fn rpc_attrs_in(
    conv: crate::semconv::Rpc,
    path: &str,
    peer: bool,
    mut attrs: Vec<KeyValue>,
) -> (Cow<'static, str>, Vec<KeyValue>, Option<Labels>) {
    let (mut name, parts) = rpc_names(path, peer);
    // The labels as the attributes fill them: `None` once a value is not a kept name.
    let mut labels = Some(Labels([Some("grpc"), None, None]));
    let mut label = |slot: usize, value: &Cow<'static, str>| match (value, &mut labels) {
        (Cow::Borrowed(v), Some(l)) => l.0[slot] = Some(v),
        _ => labels = None,
    };
    if conv.old {
        attrs.push(KeyValue::new(semconv::RPC_SYSTEM, "grpc"));
        if let Some((svc, _)) = &parts {
            label(1, svc);
            attrs.push(KeyValue::new(semconv::RPC_SERVICE, svc.clone()));
        }
    }
    if conv.new {
        attrs.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"));
        let method = if parts.is_some() {
            name.clone()
        } else {
            Cow::Borrowed(OTHER)
        };
        label(2, &method);
        attrs.push(KeyValue::new(semconv::RPC_METHOD, method));
        if parts.is_none() {
            // No method: the span is named after the system, and the path is kept as the
            // method's original name, written as `rpc.method` is (no leading `/`).
            let original = path.trim_start_matches('/');
            if !original.is_empty() {
                attrs.push(KeyValue::new(
                    semconv::RPC_METHOD_ORIGINAL,
                    original.to_owned(),
                ));
            }
            name = Cow::Borrowed("grpc");
        }
    } else if let Some((_, method)) = parts {
        label(2, &method);
        attrs.push(KeyValue::new(semconv::RPC_METHOD, method));
    }
    (name, attrs, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that names no method, in the new names: `rpc.method` is `_OTHER`, the span is
    /// named after the system, and `rpc.method_original` is the path as `rpc.method` would be
    /// written. (Found by a review: the span was named `no-method`, the original `/no-method`.)
    #[test]
    fn a_path_naming_no_method_is_other_and_named_after_the_system() {
        let conv = crate::semconv::parse_rpc("rpc");
        let (name, attrs, _) = rpc_attrs_in(conv, "/no-method", true, Vec::new());
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(name, "grpc");
        assert_eq!(get("rpc.method").as_deref(), Some("_OTHER"));
        assert_eq!(get("rpc.method_original").as_deref(), Some("no-method"));
        // A known method keeps its name.
        let (name, _, _) = rpc_attrs_in(conv, "/pkg.Svc/Call", true, Vec::new());
        assert_eq!(name, "pkg.Svc/Call");
    }

    /// The RED labels the layer gives are the ones its attributes give, in every naming
    /// (`OTEL_SEMCONV_STABILITY_OPT_IN`), and for a path that is no method's.
    #[cfg(feature = "metrics")]
    #[test]
    fn known_labels_are_the_attributes_labels() {
        use crate::semconv::parse_rpc;
        for conv in ["", "rpc", "rpc/dup"].map(parse_rpc) {
            for path in [
                "/tracer.test.Echo/Unary",
                "/pkg.Svc/Other",
                "/",
                "/no-method",
            ] {
                let (_, attrs, labels) = rpc_attrs_in(conv, path, false, Vec::new());
                let labels = labels.expect("the names are kept");
                for kind in [
                    opentelemetry::trace::SpanKind::Server,
                    opentelemetry::trace::SpanKind::Client,
                ] {
                    assert!(
                        crate::red::known_as_read(
                            &kind,
                            Some(crate::recorder::Protocol::Rpc),
                            labels,
                            &attrs
                        ),
                        "{conv:?} {path}: {labels:?} against {attrs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            rpc_names("/tracer.test.Echo/Unary", true).1,
            Some(("tracer.test.Echo".into(), "Unary".into()))
        );
        // Again, from the thread's cache: the same names, kept ones.
        let (full, parts) = rpc_names("/tracer.test.Echo/Unary", true);
        assert!(matches!(full, Cow::Borrowed("tracer.test.Echo/Unary")));
        assert!(matches!(
            parts,
            Some((Cow::Borrowed("tracer.test.Echo"), Cow::Borrowed("Unary")))
        ));
        assert_eq!(
            rpc_names("/a.B/C", true).1,
            Some(("a.B".into(), "C".into()))
        );
        assert_eq!(
            rpc_names("/tracer.test.Echo/Unary", true).0,
            "tracer.test.Echo/Unary"
        );
        assert_eq!(rpc_names("/", true).0, "grpc");
    }
}
