//! Review of the Redis (fred) and MySQL (mysql_async) wrappers against the real servers on
//! 127.0.0.1:6379 and 127.0.0.1:3306: each test here failed on the code it was written against.
//! Keys and tables are prefixed `review_db_`.

mod common;
#[path = "support/mysql.rs"]
mod mysql_support;

use std::time::Duration;

use common::*;
use fred::prelude::*;
use fred::types::CustomCommand;
use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts, TxOpts};
use mysql_support::{drop_table, opts, pool, require_mysql, table};
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::mysql::TracedPool;
use tracer_runtime::redis::{Traced, TracedClient};

const MARKER: &str = "R3view-S3cr3t-db";

// ---------------------------------------------------------------- Redis

async fn redis() -> TracedClient {
    exporter();
    let mut b = Builder::from_config(Config::from_url("redis://127.0.0.1:6379/0").unwrap());
    b.with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5));
    let c = Traced::new(b.build().unwrap());
    c.init().await.expect("Redis on 127.0.0.1:6379");
    c
}

fn rkey(name: &str) -> String {
    format!("review_db_{}:{name}", std::process::id())
}

fn cmd(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, None, false)
}

/// A script's own error text may begin with a word that is one of Redis's error codes
/// (`redis.error_reply('WRONGTYPE ' .. ARGV[1])`, or `ERR unknown command ...`): the text is the
/// script's, not the server's, and must not be recorded (the README: "a script's own error
/// text ... is recorded as its code alone").
#[tokio::test]
async fn a_scripts_error_that_starts_with_a_code_keeps_no_argument() {
    let c = redis().await;
    let ((), spans) = in_root_async(async {
        for script in [
            "return redis.error_reply('WRONGTYPE card ' .. ARGV[1])",
            "return redis.error_reply('NOPERM ' .. ARGV[1])",
            "return redis.error_reply('ERR unknown command ' .. ARGV[1])",
        ] {
            let e = c
                .custom::<(), _>(cmd("EVAL"), vec![script, "0", MARKER])
                .await
                .unwrap_err();
            // The caller still gets the script's whole error.
            assert!(e.details().contains(MARKER), "{e:?}");
        }
    })
    .await;
    let failed: Vec<&SpanData> = spans.iter().filter(|s| is_error(s)).collect();
    assert_eq!(failed.len(), 3, "{:?}", names(&spans));
    let leaks = mentions(&spans, MARKER);
    assert!(leaks.is_empty(), "script argument recorded: {leaks:#?}");
}

/// `db.operation.batch.size`: "Operations are only considered batches when they contain two or
/// more operations, and so `db.operation.batch.size` SHOULD never be 1" (database semantic
/// conventions). A pipeline of one command is recorded with 1.
#[tokio::test]
async fn a_pipeline_of_one_command_has_no_batch_size_of_one() {
    let c = redis().await;
    let k = rkey("pipe1");
    let ((), spans) = in_root_async(async {
        let p = c.pipeline();
        let _: () = p.incr(&k).await.unwrap();
        let (n,): (i64,) = p.all().await.unwrap();
        assert_eq!(n, 1);
        let t = c.multi();
        let _: () = t.incr(&k).await.unwrap();
        let (n,): (i64,) = t.exec(true).await.unwrap();
        assert_eq!(n, 2);
        let _: i64 = c.del(&k).await.unwrap();
    })
    .await;
    for name in ["PIPELINE", "MULTI"] {
        let s = named(&spans, name);
        assert_eq!(
            int(s, "db.operation.batch.size"),
            None,
            "{name}: a batch of one"
        );
    }
}

// ---------------------------------------------------------------- MySQL

/// The prefix of this binary's tables (`review_db_<pid>_<name>`).
const TABLE_PREFIX: &str = "review_db";

/// `exec_batch` with one parameter set records `db.operation.batch.size = 1`, which the
/// conventions say SHOULD never be (see above).
#[tokio::test]
async fn an_exec_batch_of_one_row_has_no_batch_size_of_one() {
    let pool = pool();
    let t = table(TABLE_PREFIX, "batch1").await;
    let insert = format!("INSERT INTO {t} (id, name) VALUES (?, ?)");
    let ((), spans) = in_root_async(async {
        let mut c = pool.get_conn().await.unwrap();
        c.exec_batch(insert.as_str(), [(1, "one")]).await.unwrap();
    })
    .await;
    drop_table(&t).await;
    let s = named(&spans, &format!("INSERT {t}"));
    assert_eq!(int(s, "db.operation.batch.size"), None, "a batch of one");
}

/// A statement prepared inside a transaction stays prepared on the connection (mysql_async
/// keeps it): executed on the connection after the commit it is still that statement, and its
/// span must say so (name, `db.query.text`), not fall back to a bare `EXECUTE`.
#[tokio::test]
async fn a_statement_prepared_in_a_transaction_keeps_its_text_after_it() {
    let pool = pool();
    let t = table(TABLE_PREFIX, "txprep").await;
    let select = format!("SELECT name FROM {t} WHERE id = ?");
    let ((), spans) = in_root_async(async {
        let mut c = pool.get_conn().await.unwrap();
        let stmt = {
            let mut tx = c.start_transaction(TxOpts::default()).await.unwrap();
            let stmt = tx.prep(select.as_str()).await.unwrap();
            let _: Option<String> = tx.exec_first(&stmt, (1,)).await.unwrap();
            tx.commit().await.unwrap();
            stmt
        };
        let _: Option<String> = c.exec_first(&stmt, (2,)).await.unwrap();
    })
    .await;
    drop_table(&t).await;
    let execs: Vec<&SpanData> = spans
        .iter()
        .filter(|s| attr_str(s, "db.operation.name").as_deref() != Some("PREPARE"))
        .filter(|s| s.name.starts_with("SELECT") || s.name == "EXECUTE")
        .collect();
    let got: Vec<(String, Option<String>)> = execs
        .iter()
        .map(|s| (s.name.to_string(), attr_str(s, "db.query.text")))
        .collect();
    let want = (format!("SELECT {t}"), Some(select.clone()));
    assert_eq!(got, vec![want.clone(), want], "{:?}", names(&spans));
}

/// A `start_transaction` on a pool whose one connection is taken waits; dropped while it waits
/// (a timeout), its `mysql transaction` span must be marked `tracer.cancelled`, as any other
/// operation dropped before it completed.
#[tokio::test]
async fn a_pool_transaction_dropped_while_waiting_is_marked_cancelled() {
    require_mysql();
    exporter();
    let opts: Opts = OptsBuilder::from_opts(opts())
        .pool_opts(PoolOpts::default().with_constraints(PoolConstraints::new(1, 1).unwrap()))
        .into();
    let pool = TracedPool::new(opts);
    let ((), spans) = in_root_async(async {
        let held = pool.get_conn().await.unwrap();
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            pool.start_transaction(TxOpts::default()),
        )
        .await;
        assert!(waited.is_err(), "the pool had a second connection");
        drop(held);
    })
    .await;
    let tx = named(&spans, "mysql transaction");
    assert_eq!(
        attr(tx, "tracer.cancelled").map(|v| v.to_string()),
        Some("true".into()),
        "{:?}",
        tx.attributes
    );
}

/// A batch request with no operation "SHOULD also be treated as a batch operation, and
/// `db.operation.batch.size` SHOULD be set to 0" (database semantic conventions).
#[tokio::test]
async fn an_empty_batch_has_batch_size_zero() {
    let c = redis().await;
    let pool = pool();
    let t = table(TABLE_PREFIX, "batch0").await;
    let insert = format!("INSERT INTO {t} (id, name) VALUES (?, ?)");
    let ((), spans) = in_root_async(async {
        let p = c.pipeline();
        let out: Vec<i64> = p.all().await.unwrap();
        assert!(out.is_empty());
        let mut conn = pool.get_conn().await.unwrap();
        conn.exec_batch(insert.as_str(), Vec::<(i32, String)>::new())
            .await
            .unwrap();
    })
    .await;
    drop_table(&t).await;
    for name in ["PIPELINE".to_owned(), format!("INSERT {t}")] {
        let s = named(&spans, &name);
        assert_eq!(int(s, "db.operation.batch.size"), Some(0), "{name}");
    }
}

/// "For batch operations, if the individual operations would all have the same
/// `db.operation.name` when executed as non-batch operations, then that operation name SHOULD
/// be used prepended by `BATCH `" (database semantic conventions); the span name follows.
/// A pipeline of `GET`s is recorded as `PIPELINE`.
#[tokio::test]
async fn a_pipeline_of_one_command_kind_is_a_batch_of_it() {
    let c = redis().await;
    let (a, b) = (rkey("batch_get_a"), rkey("batch_get_b"));
    let ((), spans) = in_root_async(async {
        let p = c.pipeline();
        let _: () = p.get(&a).await.unwrap();
        let _: () = p.get(&b).await.unwrap();
        let _: (Option<String>, Option<String>) = p.all().await.unwrap();
    })
    .await;
    let s = spans
        .iter()
        .find(|s| attr_str(s, "db.query.text").as_deref() == Some(&format!("GET {a}\nGET {b}")))
        .expect("the pipeline's span");
    assert_eq!(
        (s.name.to_string(), attr_str(s, "db.operation.name")),
        ("BATCH GET".to_owned(), Some("BATCH GET".to_owned()))
    );
}

/// The same rule for `exec_batch`: its executions all are `INSERT`s, so the operation is
/// `BATCH INSERT` (and the summary, the span's name, `BATCH INSERT <table>`).
#[tokio::test]
async fn an_exec_batch_is_named_batch() {
    let pool = pool();
    let t = table(TABLE_PREFIX, "batchname").await;
    let insert = format!("INSERT INTO {t} (id, name) VALUES (?, ?)");
    let ((), spans) = in_root_async(async {
        let mut c = pool.get_conn().await.unwrap();
        c.exec_batch(insert.as_str(), [(1, "a"), (2, "b")])
            .await
            .unwrap();
    })
    .await;
    drop_table(&t).await;
    let s = spans
        .iter()
        .find(|s| int(s, "db.operation.batch.size") == Some(2))
        .expect("the batch's span");
    assert_eq!(
        attr_str(s, "db.operation.name").as_deref(),
        Some("BATCH INSERT"),
        "{}",
        s.name
    );
    assert_eq!(s.name, format!("BATCH INSERT {t}"));
}

/// `db.namespace` is "the database associated with the connection": after `USE other` the
/// statements run in `other`, and their spans name it (they named the database of the options).
#[tokio::test]
async fn db_namespace_follows_use() {
    let pool = pool();
    let ((), spans) = in_root_async(async {
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("USE information_schema").await.unwrap();
        let _: Option<i64> = c
            .query_first("SELECT COUNT(*) FROM TABLES WHERE TABLE_NAME = 'review_db_x'")
            .await
            .unwrap();
        // Leave the pooled connection as it was.
        c.query_drop("USE test").await.unwrap();
    })
    .await;
    let s = spans
        .iter()
        .find(|s| {
            attr_str(s, "db.query.text")
                .is_some_and(|t| t.starts_with("SELECT COUNT(*) FROM TABLES"))
        })
        .expect("the SELECT's span");
    assert_eq!(
        attr_str(s, "db.namespace").as_deref(),
        Some("information_schema")
    );
}

// ---------------------------------------------------------------- SQL summary

/// `db.collection.name` (and the summary, the span's name) is the statement's table: not a
/// name that follows a `FROM` inside a function call (`EXTRACT(YEAR FROM d)`,
/// `TRIM(.. FROM s)`, `SUBSTRING(s FROM 2)`) or inside a `WITH` clause's subquery.
#[test]
fn the_collection_is_not_taken_from_a_from_inside_parentheses() {
    let cases = [
        (
            "SELECT EXTRACT(YEAR FROM created) FROM orders WHERE id = 1",
            "orders",
        ),
        (
            "SELECT TRIM(LEADING 'x' FROM name) FROM customers",
            "customers",
        ),
        ("SELECT SUBSTRING(code FROM 2) FROM coupons", "coupons"),
        (
            "WITH recent AS (SELECT id FROM audit_log) SELECT * FROM accounts",
            "accounts",
        ),
        (
            "WITH old AS (SELECT id FROM archive) DELETE FROM sessions WHERE id IN (SELECT id FROM old)",
            "sessions",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(sql, want)| {
            let got = tracer_runtime::sql::sanitize(sql).collection;
            (got.as_deref() != Some(*want)).then(|| format!("{sql:?}: {got:?}, want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A table whose name is one of the tokenizer's (non-reserved) keywords — `user`, `data`,
/// `events`, `comment`, `status` are common ones — is still the statement's table.
#[test]
fn a_table_named_like_a_keyword_is_the_collection() {
    let cases = [
        ("SELECT id FROM user WHERE id = 1", "user"),
        ("INSERT INTO events (id) VALUES (1)", "events"),
        ("UPDATE data SET v = 1 WHERE id = 2", "data"),
        ("DELETE FROM status WHERE id = 3", "status"),
        ("SELECT * FROM test.comment", "test.comment"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(sql, want)| {
            let s = tracer_runtime::sql::sanitize(sql);
            (s.collection.as_deref() != Some(*want)).then(|| {
                format!(
                    "{sql:?}: {:?} / {:?}, want {want:?}",
                    s.collection, s.summary
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
