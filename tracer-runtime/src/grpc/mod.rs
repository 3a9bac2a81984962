//! gRPC tracing for tonic: a server layer (`Server::builder().layer(GrpcServerLayer::new(..))`)
//! and a client layer over a `Channel`, for unary calls and every streaming kind.
//!
//! ```
//! use tower_layer::Layer as _;
//! use tracer_runtime::grpc::{GrpcClient, GrpcClientLayer, GrpcServerLayer};
//!
//! // Server: one SERVER span per RPC, `package.Service/Method`.
//! let server = tonic::transport::Server::builder().layer(GrpcServerLayer::new("server3"));
//!
//! // Client: one CLIENT span per RPC, the context injected into the metadata. `channel` is a
//! // tonic `Channel`; the generated client takes the layered service: `EchoClient::new(traced)`.
//! fn traced<C>(channel: C) -> GrpcClient<C> {
//!     let uri: http::Uri = "http://127.0.0.1:9999".parse().unwrap();
//!     GrpcClientLayer::new().with_server_uri(&uri).layer(channel)
//! }
//! # let _ = (server, traced::<()>);
//! ```
//!
//! On a streaming call, each message sent or received is an `rpc.message` event on its span
//! (`rpc.message.type` SENT / RECEIVED, `rpc.message.id`, `rpc.message.uncompressed_size`, or
//! `rpc.message.compressed_size` for a compressed message); unary calls get none by default
//! ([`MessageEvents`], `message_events(..)` on the layers). At most
//! [`GrpcServerLayer::max_message_events`] per span; the number left out is recorded as
//! `rpc.message.events_dropped`. The span ends when the response stream ends, with the status of
//! the trailers.
//!
//! # One span per message in a long-lived stream
//!
//! A bidirectional stream may carry many request/response exchanges. To give each its own
//! branch of the trace, the sender attaches a context to each message and the receiver starts a
//! span per message from it. The carrier is a field of the message:
//!
//! ```proto
//! message ChatRequest {
//!   string text = 1;
//!   map<string, string> trace_context = 15;  // filled by tracer; any field number
//! }
//! ```
//!
//! ```ignore
//! // sender, per message
//! let mut msg = ChatRequest { text, ..Default::default() };
//! let sent = tracer_runtime::grpc::send_message_span("Chat/send", &mut msg.trace_context);
//! tx.send(msg).await?;
//! drop(sent); // ends the PRODUCER span
//!
//! // receiver, per message
//! while let Some(msg) = inbound.message().await? {
//!     let span = tracer_runtime::grpc::receive_message_span("Chat/handle", &msg.trace_context);
//!     span.in_scope(|| handle(&msg));           // or span.instrument(fut).await
//! }
//! ```
//!
//! The carried context uses the process's propagation formats (W3C `traceparent` by default);
//! the receiver's CONSUMER span is the child of the sender's span and links to the RPC's span.

mod body;
mod client;
mod server;

pub use body::{GrpcBody, GrpcRequestBody};
pub use client::{GrpcClient, GrpcClientLayer, GrpcClientResponseFuture};
pub use server::{GrpcServer, GrpcServerLayer, GrpcServerResponseFuture};

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// Default cap on `rpc.message` events per span.
pub const DEFAULT_MAX_MESSAGE_EVENTS: usize = 128;

/// `package.Service/Method` from `/package.Service/Method`, with its two halves.
fn rpc_names(path: &str) -> (String, Option<(String, String)>) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((svc, method)) if !svc.is_empty() && !method.is_empty() && !method.contains('/') => (
            trimmed.to_owned(),
            Some((svc.to_owned(), method.to_owned())),
        ),
        _ => (
            if trimmed.is_empty() {
                "grpc".to_owned()
            } else {
                trimmed.to_owned()
            },
            None,
        ),
    }
}

/// The span name and the RPC attributes of a call, in the names `OTEL_SEMCONV_STABILITY_OPT_IN`
/// asks for (see the crate's `semconv` module: the old names by default, as `otelgrpc` does).
#[allow(deprecated)]
fn rpc_attrs(path: &str) -> (String, Vec<KeyValue>) {
    let conv = crate::semconv::rpc();
    let (name, parts) = rpc_names(path);
    let mut attrs = Vec::with_capacity(4);
    if conv.old {
        attrs.push(KeyValue::new(semconv::RPC_SYSTEM, "grpc"));
        if let Some((svc, _)) = &parts {
            attrs.push(KeyValue::new(semconv::RPC_SERVICE, svc.clone()));
        }
    }
    if conv.new {
        attrs.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"));
        attrs.push(KeyValue::new(
            semconv::RPC_METHOD,
            if parts.is_some() {
                name.clone()
            } else {
                "_OTHER".to_owned()
            },
        ));
        if parts.is_none() {
            attrs.push(KeyValue::new(semconv::RPC_METHOD_ORIGINAL, path.to_owned()));
        }
    } else if let Some((_, method)) = parts {
        attrs.push(KeyValue::new(semconv::RPC_METHOD, method));
    }
    (name, attrs)
}

/// The codes a server answers for its own faults: Error on the server span (the semantic
/// conventions' table); every other non-OK code is the caller's doing.
fn is_server_fault(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// `grpc-status` (and `grpc-message`) in a header map.
fn grpc_status(headers: &HeaderMap) -> Option<(i32, String)> {
    let code: i32 = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

/// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let v = v.trim();
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a `grpc-message` as the gRPC spec asks.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (0x20..=0x7e).contains(&c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[allow(deprecated)]
/// Records a final gRPC status on the span of `cx`. `server`: only server-fault codes are Error.
fn record_status(cx: &Context, code: i32, message: &str, server: bool) {
    let span = cx.span();
    let conv = crate::semconv::rpc();
    let name = crate::grpc_codes::name(i64::from(code));
    if conv.old {
        span.set_attribute(KeyValue::new(
            semconv::RPC_GRPC_STATUS_CODE,
            i64::from(code),
        ));
    }
    if conv.new {
        span.set_attribute(KeyValue::new(
            semconv::RPC_RESPONSE_STATUS_CODE,
            name.map_or_else(|| code.to_string(), str::to_owned),
        ));
    }
    let is_error = if server {
        is_server_fault(code)
    } else {
        code != 0
    };
    if is_error {
        let name = name.unwrap_or("UNKNOWN");
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, name));
        span.set_status(Status::error(if message.is_empty() {
            name.to_owned()
        } else {
            message.to_owned()
        }));
    }
}

/// Which messages become `rpc.message` events.
///
/// The semantic conventions deprecated the `rpc.message` event and Go's `otelgrpc` dropped it;
/// for a unary call it repeats what the span already says. For streams, per-message timing is
/// what users of tracer asked for. So by default ([`MessageEvents::Streaming`]) a call's events
/// are recorded once it turns out to be a stream: a call that carries a second message in either
/// direction gets every message as an event (the first ones with their own times); a call that
/// ends with at most one message each way, as a unary call does, gets none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageEvents {
    /// Events for streaming calls only (the default).
    #[default]
    Streaming,
    /// Events for every call, unary too.
    All,
    /// No `rpc.message` events (payload events asked for with `record_payloads` still are).
    None,
}

/// A message seen before the call was known to be a stream.
#[derive(Debug)]
struct Pending {
    at: std::time::SystemTime,
    sent: bool,
    compressed: bool,
    len: u32,
    id: u64,
}

/// Per-span message-event accounting, shared by the request and response bodies of one RPC.
#[derive(Debug)]
pub(crate) struct Messages {
    cap: usize,
    mode: MessageEvents,
    recorded: AtomicUsize,
    dropped: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
    /// `Streaming` mode: the messages held back until a second one in a direction shows a stream.
    pending: std::sync::Mutex<Option<Vec<Pending>>>,
}

impl Messages {
    pub(crate) fn new(cap: usize, mode: MessageEvents) -> Self {
        Messages {
            cap,
            mode,
            recorded: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            pending: std::sync::Mutex::new((mode == MessageEvents::Streaming).then(Vec::new)),
        }
    }

    fn message(&self, cx: &Context, sent: bool, compressed: bool, len: u32) -> u64 {
        let id = if sent { &self.sent } else { &self.received }.fetch_add(1, Ordering::Relaxed) + 1;
        match self.mode {
            MessageEvents::None => return id,
            MessageEvents::All => {}
            MessageEvents::Streaming => {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(held) = pending.as_mut() {
                    if id < 2 {
                        held.push(Pending {
                            at: std::time::SystemTime::now(),
                            sent,
                            compressed,
                            len,
                            id,
                        });
                        return id;
                    }
                    // A stream: the held messages first, at their own times.
                    for p in pending.take().unwrap_or_default() {
                        self.event(cx, Some(p.at), p.sent, p.compressed, p.len, p.id);
                    }
                }
            }
        }
        self.event(cx, None, sent, compressed, len, id);
        id
    }

    fn event(
        &self,
        cx: &Context,
        at: Option<std::time::SystemTime>,
        sent: bool,
        compressed: bool,
        len: u32,
        id: u64,
    ) {
        if self.recorded.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let size_key = if compressed {
            "rpc.message.compressed_size"
        } else {
            "rpc.message.uncompressed_size"
        };
        let attrs = vec![
            KeyValue::new("rpc.message.type", if sent { "SENT" } else { "RECEIVED" }),
            KeyValue::new("rpc.message.id", id as i64),
            KeyValue::new(size_key, i64::from(len)),
        ];
        match at {
            Some(at) => cx.span().add_event_with_timestamp("rpc.message", at, attrs),
            None => cx.span().add_event("rpc.message", attrs),
        }
    }

    fn payload(&self, cx: &Context, sent: bool, id: u64, text: String) {
        if self.recorded.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        cx.span().add_event(
            "rpc.message.payload",
            vec![
                KeyValue::new("rpc.message.type", if sent { "SENT" } else { "RECEIVED" }),
                KeyValue::new("rpc.message.id", id as i64),
                KeyValue::new("rpc.message.payload", text),
            ],
        );
    }

    fn finish(&self, cx: &Context) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            cx.span()
                .set_attribute(KeyValue::new("rpc.message.events_dropped", dropped as i64));
        }
    }
}

/// What [`Frames`] finds in a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEvent<'a> {
    /// A message starts: its compressed flag and length.
    Start { compressed: bool, len: u32 },
    /// Some of its payload.
    Bytes(&'a [u8]),
    /// It is complete.
    End,
}

/// Finds gRPC message boundaries (1-byte flag, 4-byte length, payload) in a byte stream split
/// into arbitrary chunks.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
}

impl Frames {
    pub(crate) fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(FrameEvent<'_>)) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                on(FrameEvent::Bytes(&data[..n]));
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining == 0 {
                    on(FrameEvent::End);
                }
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                on(FrameEvent::Start {
                    compressed: self.header[0] & 1 == 1,
                    len,
                });
                self.remaining = u64::from(len);
                self.header_len = 0;
                if len == 0 {
                    on(FrameEvent::End);
                }
            }
        }
    }
}

type Decode = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Opt-in recording of message payloads as `rpc.message.payload` events (`Debug` of the decoded
/// message, capped at 256 bytes). Off by default: payloads often carry user data.
///
/// The layers see bytes, so they are told which message types each method carries:
///
/// ```ignore
/// let payloads = Payloads::new().method::<HelloRequest, HelloReply>("/helloworld.Greeter/SayHello");
/// let layer = GrpcServerLayer::new("server2").record_payloads(payloads);
/// ```
#[derive(Clone)]
pub struct Payloads {
    methods: HashMap<String, (Decode, Decode)>,
    max_bytes: usize,
}

impl fmt::Debug for Payloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payloads")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new()
    }
}

impl Payloads {
    /// No method recorded yet; messages over 64 KiB are never decoded.
    pub fn new() -> Self {
        Payloads {
            methods: HashMap::new(),
            max_bytes: 64 * 1024,
        }
    }

    /// Records the payloads of the method at `path` (`/package.Service/Method`), decoding its
    /// requests as `Req` and its responses as `Resp`.
    pub fn method<Req, Resp>(mut self, path: &str) -> Self
    where
        Req: prost::Message + Default + fmt::Debug + 'static,
        Resp: prost::Message + Default + fmt::Debug + 'static,
    {
        fn decoder<M: prost::Message + Default + fmt::Debug>() -> Decode {
            Arc::new(|b: &[u8]| {
                M::decode(b)
                    .ok()
                    .map(|m| crate::attrs::capped(format_args!("{m:?}")))
            })
        }
        self.methods
            .insert(path.to_owned(), (decoder::<Req>(), decoder::<Resp>()));
        self
    }

    /// Messages larger than `n` bytes are not decoded (their event is still recorded).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    fn for_path(&self, path: &str) -> (Option<Tap>, Option<Tap>) {
        match self.methods.get(path) {
            Some((req, resp)) => (
                Some(Tap {
                    decode: Arc::clone(req),
                    max_bytes: self.max_bytes,
                }),
                Some(Tap {
                    decode: Arc::clone(resp),
                    max_bytes: self.max_bytes,
                }),
            ),
            None => (None, None),
        }
    }
}

/// The decoder of one direction of one RPC.
#[derive(Clone)]
pub(crate) struct Tap {
    decode: Decode,
    max_bytes: usize,
}

/// Turns the bytes of one direction of an RPC into `rpc.message` events (and payload events).
pub(crate) struct MessageReader {
    frames: Frames,
    sent: bool,
    tap: Option<Tap>,
    buf: Option<Vec<u8>>,
    id: u64,
}

impl MessageReader {
    pub(crate) fn new(sent: bool, tap: Option<Tap>) -> Self {
        MessageReader {
            frames: Frames::default(),
            sent,
            tap,
            buf: None,
            id: 0,
        }
    }

    pub(crate) fn feed(&mut self, cx: &Context, messages: &Messages, data: &[u8]) {
        let MessageReader {
            frames,
            sent,
            tap,
            buf,
            id,
        } = self;
        frames.feed(data, |ev| match ev {
            FrameEvent::Start { compressed, len } => {
                *id = messages.message(cx, *sent, compressed, len);
                *buf = tap
                    .as_ref()
                    .filter(|t| !compressed && (len as usize) <= t.max_bytes)
                    .map(|_| Vec::with_capacity(len as usize));
            }
            FrameEvent::Bytes(b) => {
                if let Some(v) = buf.as_mut() {
                    v.extend_from_slice(b);
                }
            }
            FrameEvent::End => {
                if let (Some(v), Some(t)) = (buf.take(), tap.as_ref())
                    && let Some(text) = (t.decode)(&v)
                {
                    messages.payload(cx, *sent, *id, text);
                }
            }
        });
    }
}

/// The span of one message of a stream (see the module docs). Ends when dropped.
pub struct MessageSpan {
    cx: Context,
    /// Whether a span was started (tracing was on) and must be ended.
    owned: bool,
}

impl fmt::Debug for MessageSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSpan")
            .field("span", self.cx.span().span_context())
            .finish()
    }
}

impl MessageSpan {
    fn start(
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: &Context,
        link: Option<Link>,
    ) -> MessageSpan {
        match crate::service::recording(None) {
            Some(svc) => {
                let mut b = SpanBuilder::from_name(name).with_kind(kind);
                if let Some(l) = link {
                    b = b.with_links(vec![l]);
                }
                MessageSpan {
                    cx: crate::recorder::start_span(&svc, b, parent),
                    owned: true,
                }
            }
            None => MessageSpan {
                cx: parent.clone(),
                owned: false,
            },
        }
    }

    /// The context with this span current.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Makes this span current until the guard is dropped.
    pub fn attach(&self) -> crate::Attached {
        crate::recorder::attach(&self.cx)
    }

    /// Runs `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.attach();
        f()
    }

    /// Runs `fut` with this span current; the span ends when it completes.
    pub async fn instrument<F: Future>(self, fut: F) -> F::Output {
        let out = crate::recorder::with_context(fut, self.cx.clone()).await;
        drop(self);
        out
    }
}

impl Drop for MessageSpan {
    fn drop(&mut self) {
        if self.owned {
            self.cx.span().end();
        }
    }
}

/// Sender side: starts a PRODUCER span for one message, child of the current context, and puts
/// its context into the message's carrier (a `map<string, string>` field). Drop the returned
/// span once the message is sent.
pub fn send_message_span(
    name: impl Into<Cow<'static, str>>,
    carrier: &mut dyn Injector,
) -> MessageSpan {
    let current = crate::recorder::current_context();
    let span = MessageSpan::start(name.into(), SpanKind::Producer, &current, None);
    crate::propagation::propagator().inject_context(&span.cx, carrier);
    span
}

/// Receiver side: starts a CONSUMER span for one message, child of the context its sender put in
/// the carrier (else of the current context), linked to the current span (the RPC's).
pub fn receive_message_span(
    name: impl Into<Cow<'static, str>>,
    carrier: &dyn Extractor,
) -> MessageSpan {
    let current = crate::recorder::current_context();
    let carried = crate::propagation::propagator().extract_with_context(&current, carrier);
    let rpc = current.span().span_context().clone();
    let link = rpc.is_valid().then(|| Link::with_context(rpc));
    MessageSpan::start(name.into(), SpanKind::Consumer, &carried, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let mut stream = Vec::new();
        for (flag, payload) in [(0u8, vec![1u8; 3]), (1, vec![]), (0, vec![7; 300])] {
            stream.push(flag);
            stream.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            stream.extend_from_slice(&payload);
        }
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut f = Frames::default();
            let mut seen = Vec::new();
            let mut bytes = 0;
            let mut ends = 0;
            for c in stream.chunks(chunk) {
                f.feed(c, |ev| match ev {
                    FrameEvent::Start { compressed, len } => seen.push((compressed, len)),
                    FrameEvent::Bytes(b) => bytes += b.len(),
                    FrameEvent::End => ends += 1,
                });
            }
            assert_eq!((bytes, ends), (303, 3), "chunks of {chunk}");
            assert_eq!(
                seen,
                [(false, 3), (true, 0), (false, 300)],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn names_and_codes() {
        assert_eq!(
            rpc_names("/tracer.test.Echo/Unary").1,
            Some(("tracer.test.Echo".into(), "Unary".into()))
        );
        assert_eq!(
            rpc_names("/tracer.test.Echo/Unary").0,
            "tracer.test.Echo/Unary"
        );
        assert_eq!(rpc_names("/").0, "grpc");
        assert!(
            is_server_fault(13) && is_server_fault(4) && !is_server_fault(3) && !is_server_fault(5)
        );
        assert_eq!(
            percent_decode(&percent_encode("bad % thing\nhere é")),
            "bad % thing\nhere é"
        );
        assert_eq!(
            parse_timeout("100m"),
            Some(std::time::Duration::from_millis(100))
        );
        assert_eq!(parse_timeout("2S"), Some(std::time::Duration::from_secs(2)));
        assert_eq!(parse_timeout("123456789m"), None);
        assert_eq!(parse_timeout("5x"), None);
    }
}
