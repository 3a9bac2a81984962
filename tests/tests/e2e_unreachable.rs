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
    // The export fails; shutdown reports it and returns (bounded by the exporter's own timeout):
    // wait for it with a bound far above that timeout, so a hang fails instead of blocking CI.
    // A plain thread, not `spawn_blocking`: a runtime waits for its blocking tasks when dropped,
    // so a hung shutdown there would hang the test too.
    let (tx, rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let _in_runtime = runtime.enter();
        let _ = tx.send(guard.shutdown());
    });
    let res = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("shutdown returns although the collector is down");
    let err = res.expect_err("the lost export is reported");
    assert!(err.to_string().contains("e2e-down"), "{err}");
}
