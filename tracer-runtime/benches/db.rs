//! What the Redis and MySQL wrappers add per command, against the real local servers (Redis on
//! 127.0.0.1:6379, MariaDB/MySQL on 127.0.0.1:3306, root, no password, database `test`): the
//! plain client, the wrapped client with the switch on (a batch processor in front of an
//! exporter that discards, as `init` builds for OTLP) and with it off.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p tracer-runtime --features redis,mysql --bench db
//! ```
//!
//! Criterion times each case (µs per command, one command in flight at a time). Then the run
//! ends with a table: each case's median over rounds of interleaved runs, and its ratio to the
//! plain client, the number the ≤ 2 % goal is about.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use fred::prelude::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Runtime;
use tracer_runtime::mysql::TracedConn;
use tracer_runtime::redis::{Traced, TracedClient};

const SERVICE: &str = "bench-db";
const KEY: &str = "tracer-bench:key";

#[derive(Debug)]
struct Discard(Arc<AtomicU64>);

impl SpanExporter for Discard {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

struct Clients {
    plain_redis: Client,
    traced_redis: TracedClient,
    plain_mysql: tokio::sync::Mutex<Conn>,
    traced_mysql: tokio::sync::Mutex<TracedConn>,
    table: String,
}

fn mysql_opts() -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"))
        .into()
}

async fn connect() -> Clients {
    let redis = || {
        Builder::from_config(Config::from_url("redis://127.0.0.1:6379/0").expect("redis url"))
            .build()
            .expect("build a redis client")
    };
    let plain_redis = redis();
    plain_redis.init().await.unwrap_or_else(|e| {
        panic!("Redis on 127.0.0.1:6379: {e}; start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no")
    });
    let traced_redis = Traced::new(redis());
    traced_redis.init().await.expect("redis");
    let _: () = plain_redis
        .set(KEY, "value", None, None, false)
        .await
        .expect("SET");

    let mut plain_mysql = Conn::new(mysql_opts()).await.unwrap_or_else(|e| {
        panic!("MariaDB on 127.0.0.1:3306: {e}; start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")
    });
    let table = format!("tracer_bench_{}", std::process::id());
    plain_mysql
        .query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY, name VARCHAR(64))"
        ))
        .await
        .expect("create the bench table");
    plain_mysql
        .exec_batch(
            format!("INSERT IGNORE INTO {table} (id, name) VALUES (?, ?)"),
            (0..100).map(|i| (i, format!("name-{i}"))),
        )
        .await
        .expect("fill the bench table");
    let traced_mysql = TracedConn::new(mysql_opts()).await.expect("mysql");
    Clients {
        plain_redis,
        traced_redis,
        plain_mysql: tokio::sync::Mutex::new(plain_mysql),
        traced_mysql: tokio::sync::Mutex::new(traced_mysql),
        table,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Plain,
    On,
    Off,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::On => "wrapped, on",
            Mode::Off => "wrapped, off",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    RedisGet,
    RedisSet,
    MysqlPointSelect,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::RedisGet => "redis GET",
            Op::RedisSet => "redis SET",
            Op::MysqlPointSelect => "mysql point SELECT",
        }
    }
}

/// Runs `n` commands of `op` in `mode`, one at a time.
async fn run(c: &Clients, op: Op, mode: Mode, n: u64) {
    tracer_runtime::set_enabled(SERVICE, mode != Mode::Off);
    let select = format!("SELECT name FROM {} WHERE id = ?", c.table);
    match op {
        Op::RedisGet => {
            for _ in 0..n {
                let v: Option<String> = match mode {
                    Mode::Plain => c.plain_redis.get(KEY).await,
                    _ => c.traced_redis.get(KEY).await,
                }
                .expect("GET");
                black_box(v);
            }
        }
        Op::RedisSet => {
            for i in 0..n {
                let _: () = match mode {
                    Mode::Plain => c.plain_redis.set(KEY, i as i64, None, None, false).await,
                    _ => c.traced_redis.set(KEY, i as i64, None, None, false).await,
                }
                .expect("SET");
            }
        }
        Op::MysqlPointSelect => {
            let mut plain = c.plain_mysql.lock().await;
            let mut traced = c.traced_mysql.lock().await;
            for i in 0..n {
                let id = (i % 100) as i32;
                let v: Option<String> = match mode {
                    Mode::Plain => plain.exec_first(select.as_str(), (id,)).await,
                    _ => traced.exec_first(select.as_str(), (id,)).await,
                }
                .expect("SELECT");
                black_box(v);
            }
        }
    }
}

const OPS: [Op; 3] = [Op::RedisGet, Op::RedisSet, Op::MysqlPointSelect];
const MODES: [Mode; 3] = [Mode::Plain, Mode::On, Mode::Off];

fn criterion_cases(c: &mut Criterion, rt: &Runtime, clients: &Clients) {
    for op in OPS {
        let mut g = c.benchmark_group(op.name());
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for mode in MODES {
            g.bench_function(mode.name(), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        run(clients, op, mode, iters).await;
                        start.elapsed()
                    })
                })
            });
        }
        g.finish();
    }
}

/// Medians of interleaved rounds (plain, on, off, plain, ...), so that drift in the servers'
/// speed hits every mode alike.
fn summary(rt: &Runtime, clients: &Clients, exported: &AtomicU64) {
    const ROUNDS: usize = 15;
    const PER_ROUND: u64 = 1000;
    println!(
        "\nper command, median of {ROUNDS} interleaved rounds of {PER_ROUND} (one in flight):"
    );
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "", "plain µs", "on µs", "off µs", "on/plain", "off/plain"
    );
    for op in OPS {
        let mut times: [Vec<f64>; 3] = Default::default();
        for _ in 0..ROUNDS {
            for (i, mode) in MODES.into_iter().enumerate() {
                let t = rt.block_on(async {
                    let start = Instant::now();
                    run(clients, op, mode, PER_ROUND).await;
                    start.elapsed()
                });
                times[i].push(t.as_secs_f64() * 1e6 / PER_ROUND as f64);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [p, on, off] = times.each_mut().map(med);
        println!(
            "{:<20} {:>12.2} {:>12.2} {:>12.2} {:>10.4} {:>10.4}",
            op.name(),
            p,
            on,
            off,
            on / p,
            off / p
        );
    }
    println!(
        "spans exported while benchmarking: {}",
        exported.load(Ordering::Relaxed)
    );
}

fn main() {
    let exported = Arc::new(AtomicU64::new(0));
    let rt = Runtime::new().expect("a tokio runtime");
    let _guard = {
        let _rt = rt.enter();
        tracer_runtime::init(SERVICE)
            .with_exporter(Discard(Arc::clone(&exported)))
            .install()
            .expect("install the bench service")
    };
    let clients = rt.block_on(connect());
    let mut c = Criterion::default().configure_from_args();
    criterion_cases(&mut c, &rt, &clients);
    c.final_summary();
    summary(&rt, &clients, &exported);
    rt.block_on(async {
        let mut plain = clients.plain_mysql.lock().await;
        let _ = plain
            .query_drop(format!("DROP TABLE IF EXISTS {}", clients.table))
            .await;
        let _: Result<i64, _> = clients.plain_redis.del(KEY).await;
    });
    tracer_runtime::set_enabled(SERVICE, true);
}
