//! The run-time switch on the gRPC layers: off, no span and no metadata injected; back on, both.
//! Its own binary: the switch is process-wide.

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;

use common::*;
use grpc_support::*;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};

#[tokio::test]
async fn switch_off_means_no_spans_and_no_metadata() {
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE)).await;
    let mut c = client(addr, GrpcClientLayer::new());
    let total = || finished().len();

    tracer_runtime::set_enabled(SERVICE, false);
    let before = total();
    assert_eq!(
        c.unary(msg("headers", 0)).await.unwrap().into_inner().text,
        "traceparent=false"
    );
    let err = c.unary(msg("panic", 0)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::Internal,
        "panics still become INTERNAL"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(total(), before, "no span while off");

    tracer_runtime::set_enabled(SERVICE, true);
    assert_eq!(
        c.unary(msg("headers", 0)).await.unwrap().into_inner().text,
        "traceparent=true"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while total() < before + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        total(),
        before + 2,
        "a client and a server span once back on"
    );
}
