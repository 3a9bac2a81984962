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
//! ([`MessageEvents`], `with_message_events(..)` on the layers). At most
//! [`GrpcServerLayer::with_max_message_events`] per span; the number left out is recorded as
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
mod deadline;
mod framing;
mod message_span;
mod messages;
mod payloads;
mod protocol;
mod status;

pub use body::GrpcRequestBody;
pub use message_span::{MessageSpan, receive_message_span, send_message_span};
pub use messages::{DEFAULT_MAX_MESSAGE_EVENTS, MessageEvents};
pub use payloads::Payloads;
pub use protocol::Grpc;

use crate::stack::{
    Client, ClientLayer, ClientResponseFuture, ResponseBody, Server, ServerLayer,
    ServerResponseFuture,
};

/// A tower layer for `tonic::transport::Server::builder().layer(..)`: one SERVER span per RPC
/// named `package.Service/Method` (`rpc.system`, `rpc.service`, `rpc.method`,
/// `rpc.grpc.status_code`, `server.address`, `server.port`, `network.peer.address`), child of the
/// context in the metadata, ending when the response stream ends. A handler panic (in the call,
/// or while producing a stream) reaches the caller as INTERNAL and the server keeps serving.
/// An RPC whose call path shows a loop is answered FAILED_PRECONDITION without reaching the
/// handler. The options are [`ServerLayer`]'s, and the message options
/// ([`with_message_events`](ServerLayer::with_message_events), ...).
pub type GrpcServerLayer = ServerLayer<Grpc>;
/// The service made by [`GrpcServerLayer`].
pub type GrpcServer<S> = Server<S, Grpc>;
/// The response future of [`GrpcServer`].
pub type GrpcServerResponseFuture<F> = ServerResponseFuture<F, Grpc>;

/// A tower layer over a tonic `Channel` (or any gRPC transport service): one CLIENT span per
/// RPC, child of the current context, which is injected into the metadata. Any non-OK status —
/// in the headers, in the trailers, or a transport error — is Error. The span ends when the
/// response stream has been consumed to its end, or dropped (then marked `tracer.cancelled`).
/// The options are [`ClientLayer`]'s, and the message options.
pub type GrpcClientLayer = ClientLayer<Grpc>;
/// The service made by [`GrpcClientLayer`].
pub type GrpcClient<S> = Client<S, Grpc>;
/// The response future of [`GrpcClient`].
pub type GrpcClientResponseFuture<F> = ClientResponseFuture<F, Grpc>;

/// The response body of a traced RPC: each message an event; the final status read from the
/// trailers; the span ends when the stream ends.
pub type GrpcBody<B> = ResponseBody<B, Grpc>;
