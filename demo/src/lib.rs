//! tracer's demo: three services, each its own process under its own service name, and a driver
//! that starts them, plays every scenario and draws each scenario's trace in the terminal.
//!
//! ```text
//!                  HTTP :1323               HTTP :1324                gRPC :9999
//!   driver ──GET──▶ server1 ──────HTTP─────▶ server2 ───────gRPC──────▶ server3 ──▶ MySQL :3306
//!  (demo)           ▲                        │  ▲  gRPC :8888           │    └────▶ Redis :6379
//!                   └────HTTP (nested)───────┘  └─────gRPC (nested)─────┘
//! ```
//!
//! - `demo` (or `demo run`): starts the three servers as child processes (this same binary),
//!   plays every scenario, prints `scenario <name> trace_id=<id>` and the trace's waterfall for
//!   each, and stops the servers. With no `OTEL_EXPORTER_OTLP_ENDPOINT` the spans go to an OTLP
//!   receiver inside the driver; with one, they go there and only the trace ids are printed.
//! - `demo serve`: the three servers, until Ctrl-C; `demo server1|server2|server3`: one of them.
//! - `demo scenario <name>`: plays one scenario against servers already running.
//! - `demo ping`: checks that the three servers answer.
//!
//! Every address is a flag and an environment variable (`demo --help`).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod cli;
mod config;
mod db;
mod driver;
mod grpc;
mod http;
mod logging;
mod metrics;
mod receiver;
mod scenario;
mod server1;
mod server2;
mod server3;
mod shutdown;
mod waterfall;

/// The gRPC messages and services of `proto/demo.proto`.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
mod pb {
    tonic::include_proto!("demo");
}

pub use cli::main;
