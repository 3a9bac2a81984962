//! One tower stack for HTTP and gRPC, as tower-http's `Trace` is one chain with
//! `new_for_http()` / `new_for_grpc()` classifiers:
//!
//! - servers: [`ServerLayer`] → [`Server`] → [`ServerResponseFuture`] → [`ResponseBody`]:
//!   one SERVER span per request, child of the context in its headers, ended when the response
//!   body has been sent;
//! - clients: [`ClientLayer`] → [`Client`] → [`ClientResponseFuture`] → [`ResponseBody`]:
//!   one CLIENT span per request, child of the current context, which is injected into the
//!   request's headers; ended when the response body has been read or dropped.
//!
//! What differs between the protocols is the [`Protocol`] parameter, [`Http`](crate::http::Http)
//! or [`Grpc`](crate::grpc::Grpc) (the latter with the `grpc` feature): the span's name and
//! attributes, where the status is read (the response head for HTTP; the trailers, or the head
//! of a trailers-only answer, for gRPC), which statuses are the server's fault and which the
//! client's, what a refused or panicked request is answered with, the message framing of a
//! gRPC body (`rpc.message` events) and the `grpc-timeout` deadline. The layers' options are
//! the same for both, except where a protocol has no use for one: each such option says so.
//!
//! The user-facing names are aliases: [`HttpServerLayer`](crate::http::HttpServerLayer) is
//! `ServerLayer<Http>`, [`GrpcServerLayer`](crate::grpc::GrpcServerLayer) is
//! `ServerLayer<Grpc>`, and so on.

pub(crate) mod attrs;
mod body;
mod client;
pub(crate) mod headers;
mod hooks;
pub(crate) mod protocol;
mod server;
pub(crate) mod span;

pub use body::ResponseBody;
pub use client::{Client, ClientLayer, ClientResponseFuture};
pub use hooks::{RequestView, ResponseView};
pub use protocol::Protocol;
pub use server::{Server, ServerLayer, ServerResponseFuture};

use std::net::SocketAddr;

/// The peer address of the connection a request came on, put in the request's extensions by the
/// accept loop (or given to [`ServerLayer::with_client_addr`]); recorded as `client.address`
/// (HTTP) or `network.peer.address` (gRPC, when tonic's connection info does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);
