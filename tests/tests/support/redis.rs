//! The Redis test server on 127.0.0.1:6379: a traced client on it. A test that needs the server
//! and finds it down fails saying how to start it.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::time::Duration;

use fred::prelude::*;
use tracer_runtime::redis::{Traced, TracedClient};

pub const ADDR: &str = "127.0.0.1:6379";
pub const HOW: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
                       --save \"\" --appendonly no (or run `bash .ci/run`)";

/// Fails, saying how to start it, when the test server is down.
pub fn require_redis() {
    if let Err(e) = TcpStream::connect_timeout(&ADDR.parse().unwrap(), Duration::from_secs(2)) {
        panic!("Redis is not reachable on {ADDR} ({e}); {HOW}");
    }
}

/// A traced client on the test server, connected.
pub async fn traced_client() -> TracedClient {
    require_redis();
    let client = Traced::new(
        Builder::from_config(Config::from_url(&format!("redis://{ADDR}/0")).unwrap())
            .build()
            .unwrap(),
    );
    client
        .init()
        .await
        .unwrap_or_else(|e| panic!("Redis on {ADDR}: {e}; {HOW}"));
    client
}
