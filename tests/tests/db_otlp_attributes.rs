//! A Redis command's and a statement's spans through the default export path — tracer's
//! OTLP/gRPC exporter, which writes the recorder's spans as they were recorded, their client's
//! and statement's attributes from shared blocks encoded once — arrive at a collector with
//! every attribute, under their `#[traced]` parent, the second command (its blocks found in the
//! caches) as whole as the first. Against the real Redis (127.0.0.1:6379) and MariaDB
//! (127.0.0.1:3306), to a receiver of our own on 127.0.0.1.

mod common;
#[path = "support/mysql.rs"]
mod mysql_support;
#[allow(dead_code)]
#[path = "support/receiver.rs"]
mod receiver;

use std::net::TcpStream;
use std::time::Duration;

use fred::prelude::*;
use opentelemetry_proto::tonic::trace::v1::Span;
use receiver::{Keep, attr};
use tracer_runtime::mysql::TracedConn;
use tracer_runtime::redis::{Traced, TracedClient};
use tracer_runtime::traced;

const REDIS: &str = "127.0.0.1:6379";
const REDIS_HOW: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
                         --save \"\" --appendonly no (or run `bash .ci/run`)";

#[traced]
async fn request(redis: &TracedClient, conn: &mut TracedConn, key: &str, table: &str) {
    for _ in 0..2 {
        let _: () = redis.set(key, "v", None, None, false).await.unwrap();
        let v: Option<String> = redis.get(key).await.unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }
    // Row 1 exists, row 2 does not: the same statement returns 0, 1, 1 and 0 rows.
    let sql = format!("SELECT name FROM {table} WHERE id = ?");
    for id in [2, 1, 1, 2] {
        let row: Option<String> = conn.exec_first(sql.as_str(), (id,)).await.unwrap();
        assert_eq!(row.is_some(), id == 1);
    }
}

#[test]
fn db_spans_arrive_whole_through_the_grpc_exporter() {
    if let Err(e) = TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(2)) {
        panic!("Redis is not reachable on {REDIS} ({e}); {REDIS_HOW}");
    }
    mysql_support::require_mysql();
    let keep = Keep::default();
    let (addr, _receiver) = receiver::serve(keep.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = {
        let _rt = rt.enter();
        tracer_runtime::init("db-otlp")
            .with_protocol(tracer_runtime::Protocol::Grpc)
            .with_endpoint(format!("http://{addr}"))
            .install()
            .unwrap()
    };
    let key = format!("tracer-test:db-otlp:{}", std::process::id());
    let table = rt.block_on(mysql_support::table("dbotlp", "t"));
    rt.block_on(async {
        let redis: TracedClient = Traced::new(
            Builder::from_config(Config::from_url("redis://127.0.0.1:6379/0").unwrap())
                .build()
                .unwrap(),
        );
        redis.init().await.unwrap();
        let mut conn = TracedConn::new(mysql_support::opts()).await.unwrap();
        conn.query_drop(format!("INSERT INTO {table} (id, name) VALUES (1, 'one')"))
            .await
            .unwrap();
        request(&redis, &mut conn, &key, &table).await;
        let _: i64 = redis.del(&key).await.unwrap();
    });
    guard.shutdown().expect("every span exported");
    let spans = keep.0.lock().unwrap().clone();
    let parent = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the #[traced] parent");
    let under = |name: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
            .collect()
    };
    let (sets, gets) = (under("SET"), under("GET"));
    assert_eq!((sets.len(), gets.len()), (2, 2), "{spans:#?}");
    for (span, op) in sets
        .iter()
        .map(|s| (s, "SET"))
        .chain(gets.iter().map(|s| (s, "GET")))
    {
        assert_eq!(span.trace_id, parent.trace_id);
        assert_eq!(span.kind, 3, "CLIENT");
        let text = if op == "SET" {
            format!("SET {key} ?")
        } else {
            format!("GET {key}")
        };
        for (k, v) in [
            ("db.system.name", "redis"),
            ("db.namespace", "0"),
            ("server.address", "127.0.0.1"),
            ("server.port", "6379"),
            ("db.operation.name", op),
            ("db.query.text", text.as_str()),
        ] {
            assert_eq!(attr(span, k).as_deref(), Some(v), "{op} {k}: {span:#?}");
        }
        // Each attribute once: the blocks and the span's own list do not overlap.
        assert_eq!(span.attributes.len(), 6, "{span:#?}");
        // The value is never recorded.
        assert!(
            span.attributes
                .iter()
                .all(|kv| !format!("{kv:?}").contains("\"v\""))
        );
    }
    let mut selects: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.name.starts_with("SELECT"))
        .collect();
    assert_eq!(selects.len(), 4, "{spans:#?}");
    selects.sort_by_key(|s| s.start_time_unix_nano);
    for (span, rows) in selects.into_iter().zip(["0", "1", "1", "0"]) {
        assert_eq!(span.name, format!("SELECT {table}"));
        for (k, v) in [
            ("db.system.name", "mysql"),
            ("db.namespace", "test"),
            ("server.address", "127.0.0.1"),
            ("server.port", "3306"),
            ("db.operation.name", "SELECT"),
            ("db.collection.name", table.as_str()),
            ("db.query.summary", &format!("SELECT {table}")),
            (
                "db.query.text",
                &format!("SELECT name FROM {table} WHERE id = ?"),
            ),
            ("db.response.returned_rows", rows),
        ] {
            assert_eq!(attr(span, k).as_deref(), Some(v), "{k}: {span:#?}");
        }
        // Each attribute once: the statement's block, its count's, and the span's own list
        // do not overlap.
        assert_eq!(span.attributes.len(), 9, "{span:#?}");
    }
    rt.block_on(mysql_support::drop_table(&table));
}
