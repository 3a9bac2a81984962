//! The MariaDB/MySQL test server on 127.0.0.1:3306 (root, no password, database `test`): its
//! options, a traced pool, and tables of one test alone. A test that needs the server and finds
//! it down fails saying how to start it.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};
use tracer_runtime::mysql::TracedPool;

use super::common::exporter;

pub const ADDR: &str = "127.0.0.1:3306";
pub const HOW: &str = "start it with: start-stop-daemon --start --oknodo --background --exec \
                       /usr/sbin/mariadbd (user root, no password, database `test`; or run `bash .ci/run`)";

/// Fails, saying how to start it, when the test server is down.
pub fn require_mysql() {
    if let Err(e) = TcpStream::connect_timeout(&ADDR.parse().unwrap(), Duration::from_secs(2)) {
        panic!("MariaDB/MySQL is not reachable on {ADDR} ({e}); {HOW}");
    }
}

pub fn opts() -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"))
        .into()
}

/// A traced pool on the test server (the binary's pipeline installed first).
pub fn pool() -> TracedPool {
    require_mysql();
    exporter();
    TracedPool::new(opts())
}

/// A table no other test (or run) uses, `<prefix>_<pid>_<name>`, created empty, with the columns
/// `id INT PRIMARY KEY, name VARCHAR(64), secret VARCHAR(64)`.
pub async fn table(prefix: &str, name: &str) -> String {
    require_mysql();
    let t = format!("{prefix}_{}_{name}", std::process::id());
    let mut c = Conn::new(opts())
        .await
        .unwrap_or_else(|e| panic!("MariaDB on {ADDR}: {e}; {HOW}"));
    c.query_drop(format!("DROP TABLE IF EXISTS {t}"))
        .await
        .unwrap();
    c.query_drop(format!(
        "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(64), secret VARCHAR(64))"
    ))
    .await
    .unwrap();
    c.disconnect().await.unwrap();
    t
}

pub async fn drop_table(t: &str) {
    let mut c = Conn::new(opts()).await.unwrap();
    c.query_drop(format!("DROP TABLE IF EXISTS {t}"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}
