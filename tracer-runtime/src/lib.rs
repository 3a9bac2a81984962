//! End-to-end distributed tracing for Rust services, on OpenTelemetry.
//!
//! Add `tracer-runtime`, put [`#[traced]`](traced) on the fns worth a span, call [`init`] once
//! per service, and the spans go over OTLP to Jaeger (or any OTLP backend):
//!
//! ```no_run
//! use tracer_runtime::traced;
//!
//! #[traced(err)]
//! async fn handle(order_id: u64) -> Result<u64, std::io::Error> {
//!     Ok(price(order_id))
//! }
//!
//! #[traced(args(order_id))]
//! fn price(order_id: u64) -> u64 { order_id * 100 }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // OTLP/gRPC to $OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317)
//!     let _guard = tracer_runtime::init("orders").install()?;
//!     handle(7).await?;
//!     Ok(()) // dropping the guard flushes every finished span
//! }
//! ```
//!
//! The same, checked, with the SDK's in-memory exporter:
//!
//! ```
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
//! use tracer_runtime::traced;
//!
//! #[traced]
//! fn outer() -> u32 { inner() + 1 }
//! #[traced]
//! fn inner() -> u32 { 41 }
//!
//! let spans = InMemorySpanExporter::default();
//! let guard = tracer_runtime::init("doc")
//!     .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
//!     .install()
//!     .unwrap();
//! assert_eq!(outer(), 42);
//! let done = spans.get_finished_spans().unwrap();
//! let (child, parent) = (&done[0], &done[1]);
//! assert_eq!((child.name.as_ref(), parent.name.as_ref()), ("inner", "outer"));
//! assert_eq!(child.parent_span_id, parent.span_context.span_id());
//!
//! // Off at run time (here the only service, so tracing is off everywhere): a traced fn then
//! // costs one relaxed load and a branch.
//! tracer_runtime::set_enabled("doc", false);
//! outer();
//! assert_eq!(spans.get_finished_spans().unwrap().len(), 2);
//! # drop(guard);
//! ```
//!
//! - [`set_enabled`] / [`set_all_enabled`]: the run-time switch, per service and global.
//! - [`spawn`], [`spawn_blocking`], [`in_current_context`]: carry the context into other tasks.
//! - [`service`]: several services in one process, each exported under its own name.
//! - [`logs`]: log records as events on their span (features `log`, `tracing`), trace ids in
//!   log lines.
//! - [`metrics`]: RED metrics from every span, before sampling, served to Prometheus by
//!   [`Builder::with_prometheus`] (feature `metrics`).
//! - [`sync`]: named `Mutex` and `RwLock` whose long waits are spans (feature `sync`).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// `tls` and `otlp-metrics` export over OTLP, which needs one of its transports.
#[cfg(all(
    feature = "_otlp",
    not(any(feature = "otlp-grpc", feature = "otlp-http"))
))]
compile_error!(
    "tracer-runtime: OTLP export needs a transport: the feature `otlp-grpc` (a default one) or \
     `otlp-http`"
);

#[doc(hidden)]
pub mod __private;
mod attrs;
mod clock;
mod collector;
mod context;
#[cfg(any(feature = "redis", feature = "mysql"))]
mod db;
mod env;
mod error;
mod exception;
#[cfg(feature = "_otlp")]
mod export;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(any(feature = "grpc", feature = "metrics"))]
mod grpc_codes;
#[cfg(any(
    feature = "redis",
    feature = "sql",
    feature = "http",
    feature = "metrics"
))]
mod hash;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod init;
#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
pub mod log_bridge;
pub mod logs;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod loop_guard;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub mod mysql;
mod panic;
mod pipeline;
mod pool;
pub mod propagation;
mod protocol;
mod recorder;
#[cfg(feature = "metrics")]
mod red;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod registry;
#[cfg(feature = "grpc")]
mod semconv;
mod service;
mod sink;
#[cfg(feature = "sql")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
pub mod sql;
#[cfg(feature = "http")]
pub mod stack;
pub mod stats;
mod switch;
#[cfg(feature = "sync")]
#[cfg_attr(docsrs, doc(cfg(feature = "sync")))]
pub mod sync;
#[cfg(feature = "tls")]
mod tls;
mod traced;
mod traced_err;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing_bridge;
mod warn;
#[cfg(feature = "zipkin")]
#[cfg_attr(docsrs, doc(cfg(feature = "zipkin")))]
pub mod zipkin;

pub use context::{
    add_event, attach, current_span_id, current_trace_id, in_current_context, set_attribute, spawn,
    spawn_blocking, with_context,
};
pub use error::{
    InitError, ParseExporterError, ParsePropagatorError, ParseProtocolError, ParseSamplerError,
    ShutdownError,
};
pub use init::{Builder, Guard, TracesExporter, init, sampler_from_env};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use loop_guard::LoopGuard;
pub use protocol::Protocol;
pub use recorder::{Attached, WithContext, current_context};
pub use service::{ServiceHandle, current_service, service};
pub use stats::{Stats, stats};
pub use switch::{is_all_enabled, is_enabled, set_all_enabled, set_enabled};
pub use tracer_macros::traced;
pub use warn::{Warning, set_warning_handler};

/// The OpenTelemetry API crate tracer is built on, for spans of your own and context access.
pub use opentelemetry;
/// The OpenTelemetry SDK crate tracer is built on (samplers, processors, exporters).
pub use opentelemetry_sdk;
