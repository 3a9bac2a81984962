//! A collector that is down: the traced program behaves as without tracing, and shutting the
//! pipeline down reports the failure instead of hanging.

use tracer_runtime::{Protocol, traced};

#[traced(kind = server)]
async fn handle() -> u32 {
    tokio::task::yield_now().await;
    7
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_collector_does_not_break_or_hang_the_program() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let guard = tracer_runtime::init("e2e-down")
        .with_protocol(Protocol::Grpc)
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .install()
        .unwrap();
    assert_eq!(handle().await, 7);
    let started = std::time::Instant::now();
    // The export fails; shutdown reports it and returns (bounded by the exporter's timeout).
    let res = guard.shutdown();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let err = res.expect_err("the lost export is reported");
    assert!(err.to_string().contains("e2e-down"), "{err}");
}
