//! Redis (fred) against the real server on 127.0.0.1:6379, and against redis-servers of the
//! tests' own (password, stopped mid-test): a CLIENT span per command under the caller's span,
//! pipelines and transactions as one span, errors on the span and unchanged for the caller,
//! values never recorded, nothing recorded when switched off.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fred::prelude::*;
use fred::types::{CustomCommand, Expiration};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::redis::{Traced, TracedClient};

const REDIS: &str = "127.0.0.1:6379";
const HOW: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
                   --save \"\" --appendonly no (or run `bash .ci/run`)";

/// Fails, saying how to start it, when the test server is down.
fn require_redis() {
    if let Err(e) = TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(2)) {
        panic!("Redis is not reachable on {REDIS} ({e}); {HOW}");
    }
}

fn config(port: u16, password: Option<&str>) -> Config {
    let mut c = Config::from_url(&format!("redis://127.0.0.1:{port}/0")).unwrap();
    c.password = password.map(str::to_owned);
    c
}

fn builder(port: u16, password: Option<&str>) -> Builder {
    let mut b = Builder::from_config(config(port, password));
    b.with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2));
    b
}

async fn plain() -> Client {
    require_redis();
    let c = builder(6379, None).build().unwrap();
    c.init()
        .await
        .unwrap_or_else(|e| panic!("Redis on {REDIS}: {e}; {HOW}"));
    c
}

async fn traced() -> TracedClient {
    require_redis();
    exporter();
    let c = Traced::new(builder(6379, None).build().unwrap());
    c.init()
        .await
        .unwrap_or_else(|e| panic!("Redis on {REDIS}: {e}; {HOW}"));
    c
}

/// A key no other test (or run) uses.
fn key(name: &str) -> String {
    format!("tracer-test:{}:{name}", std::process::id())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own, killed on drop.
struct OwnServer {
    child: Child,
    port: u16,
}

impl OwnServer {
    fn start(port: u16, password: Option<&str>) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); apt-get install redis-server")
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnServer { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client_spans(spans: &[SpanData]) -> Vec<&SpanData> {
    spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect()
}

#[track_caller]
fn assert_redis_span(s: &SpanData, op: &str, text: &str, port: u16) {
    assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
    assert_eq!(attr_str(s, "db.system.name").as_deref(), Some("redis"));
    assert_eq!(attr_str(s, "db.operation.name").as_deref(), Some(op));
    assert_eq!(attr_str(s, "db.namespace").as_deref(), Some("0"));
    assert_eq!(attr_str(s, "db.query.text").as_deref(), Some(text), "{op}");
    assert_eq!(attr_str(s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(s, "server.port").map(|v| v.to_string()),
        Some(port.to_string())
    );
}

#[tokio::test]
async fn each_command_is_a_client_span_under_the_caller() {
    let c = traced().await;
    let (k, h, l, s, z, n) = (
        key("cmd:str"),
        key("cmd:hash"),
        key("cmd:list"),
        key("cmd:set"),
        key("cmd:zset"),
        key("cmd:num"),
    );
    let ((), spans) = in_root_async(async {
        let _: () = c
            .set(&k, "v1", Some(Expiration::EX(60)), None, false)
            .await
            .unwrap();
        let v: Option<String> = c.get(&k).await.unwrap();
        assert_eq!(v.as_deref(), Some("v1"));
        let one: i64 = c.incr(&n).await.unwrap();
        let three: i64 = c.incr_by(&n, 2).await.unwrap();
        assert_eq!((one, three), (1, 3));
        let _: () = c.hset(&h, ("field", "x")).await.unwrap();
        let f: Option<String> = c.hget(&h, "field").await.unwrap();
        assert_eq!(f.as_deref(), Some("x"));
        let _: () = c.rpush(&l, vec!["a", "b", "c"]).await.unwrap();
        let items: Vec<String> = c.lrange(&l, 0, -1).await.unwrap();
        assert_eq!(items, ["a", "b", "c"]);
        let _: () = c.sadd(&s, "m").await.unwrap();
        let members: Vec<String> = c.smembers(&s).await.unwrap();
        assert_eq!(members, ["m"]);
        let _: () = c
            .zadd(&z, None, None, false, false, (1.5, "member"))
            .await
            .unwrap();
        let score: Option<f64> = c.zscore(&z, "member").await.unwrap();
        assert_eq!(score, Some(1.5));
        let both: Vec<Option<String>> = c
            .mget(vec![k.as_str(), h.as_str()])
            .await
            .unwrap_or_default();
        assert_eq!(both.len(), 2);
        let ttl: i64 = c.ttl(&k).await.unwrap();
        assert!(ttl > 0 && ttl <= 60);
        let exists: i64 = c.exists(vec![k.as_str(), n.as_str()]).await.unwrap();
        assert_eq!(exists, 2);
        let pong: String = c.ping(None).await.unwrap();
        assert_eq!(pong, "PONG");
        let len: i64 = c
            .custom(
                CustomCommand::new_static("STRLEN", None, false),
                vec![k.as_str()],
            )
            .await
            .unwrap();
        assert_eq!(len, 2);
        let deleted: i64 = c
            .del(vec![
                k.as_str(),
                h.as_str(),
                l.as_str(),
                s.as_str(),
                z.as_str(),
                n.as_str(),
            ])
            .await
            .unwrap();
        assert_eq!(deleted, 6);
    })
    .await;

    let root = root(&spans);
    let cmds = client_spans(&spans);
    let names: Vec<&str> = cmds.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "SET", "GET", "INCR", "INCRBY", "HSET", "HGET", "RPUSH", "LRANGE", "SADD", "SMEMBERS",
            "ZADD", "ZSCORE", "MGET", "TTL", "EXISTS", "PING", "STRLEN", "DEL"
        ]
    );
    for s in &cmds {
        assert_child_of(s, root);
        assert!(!is_error(s), "{}", s.name);
    }
    let texts = [
        format!("SET {k} ? EX ?"),
        format!("GET {k}"),
        format!("INCR {n}"),
        format!("INCRBY {n} ?"),
        format!("HSET {h} ? ?"),
        format!("HGET {h} ?"),
        format!("RPUSH {l} ? ? ?"),
        format!("LRANGE {l} ? ?"),
        format!("SADD {s} ?"),
        format!("SMEMBERS {s}"),
        format!("ZADD {z} ? ?"),
        format!("ZSCORE {z} ?"),
        format!("MGET {k} {h}"),
        format!("TTL {k}"),
        format!("EXISTS {k} {n}"),
        "PING".to_owned(),
        "STRLEN ?".to_owned(),
        format!("DEL {k} {h} {l} {s} {z} {n}"),
    ];
    for (s, text) in cmds.iter().zip(&texts) {
        assert_redis_span(s, &s.name, text, 6379);
    }
}

#[tokio::test]
async fn a_pool_is_traced_the_same_way() {
    require_redis();
    exporter();
    let pool = Traced::new(builder(6379, None).build_pool(2).unwrap());
    pool.init().await.unwrap();
    let k = key("pool");
    let (v, spans) = in_root_async(async {
        let _: () = pool.set(&k, "p", None, None, false).await.unwrap();
        let v: String = pool.get(&k).await.unwrap();
        let _: i64 = pool.del(&k).await.unwrap();
        v
    })
    .await;
    assert_eq!(v, "p");
    let root = root(&spans);
    for (name, text) in [
        ("SET", format!("SET {k} ?")),
        ("GET", format!("GET {k}")),
        ("DEL", format!("DEL {k}")),
    ] {
        let s = named(&spans, name);
        assert_child_of(s, root);
        assert_redis_span(s, name, &text, 6379);
    }
}

#[tokio::test]
async fn a_pipeline_is_one_span_with_its_commands() {
    let c = traced().await;
    let (a, b) = (key("pipe:a"), key("pipe:b"));
    let (out, spans) = in_root_async(async {
        let pipe = c.pipeline();
        let _: () = pipe.set(&a, "1", None, None, false).await.unwrap();
        let _: () = pipe.incr(&a).await.unwrap();
        let _: () = pipe.get(&b).await.unwrap();
        let out: (String, i64, Option<String>) = pipe.all().await.unwrap();
        let _: i64 = c.del(&a).await.unwrap();
        out
    })
    .await;
    assert_eq!(out, ("OK".to_owned(), 2, None));
    let p = named(&spans, "PIPELINE");
    assert_child_of(p, root(&spans));
    assert_redis_span(
        p,
        "PIPELINE",
        &format!("SET {a} ?\nINCR {a}\nGET {b}"),
        6379,
    );
    assert_eq!(
        attr(p, "db.operation.batch.size").map(|v| v.to_string()),
        Some("3".into())
    );
    // The queued commands have no span of their own.
    assert_eq!(
        names(&spans),
        ["PIPELINE", "DEL", "test-root"],
        "one span for the pipeline"
    );
}

#[tokio::test]
async fn a_transaction_is_one_span_with_its_commands() {
    let c = traced().await;
    let k = key("multi");
    let (out, spans) = in_root_async(async {
        let tx = c.multi();
        let _: () = tx.incr(&k).await.unwrap();
        let _: () = tx.incr_by(&k, 10).await.unwrap();
        let out: (i64, i64) = tx.exec(true).await.unwrap();
        let _: i64 = c.del(&k).await.unwrap();
        out
    })
    .await;
    assert_eq!(out, (1, 11));
    let m = named(&spans, "MULTI");
    assert_child_of(m, root(&spans));
    assert_redis_span(m, "MULTI", &format!("INCR {k}\nINCRBY {k} ?"), 6379);
    assert_eq!(
        attr(m, "db.operation.batch.size").map(|v| v.to_string()),
        Some("2".into())
    );
}

#[tokio::test]
async fn wrongtype_is_an_error_span_and_the_same_error() {
    let c = traced().await;
    let p = plain().await;
    let k = key("wrongtype");
    let _: () = p.set(&k, "a string", None, None, false).await.unwrap();
    let (traced_err, spans) =
        in_root_async(async { c.lpush::<i64, _, _>(&k, "x").await.unwrap_err() }).await;
    let plain_err = p.lpush::<i64, _, _>(&k, "x").await.unwrap_err();
    let _: i64 = p.del(&k).await.unwrap();
    assert_eq!(traced_err, plain_err);
    assert_eq!(traced_err.kind(), plain_err.kind());
    assert_eq!(traced_err.details(), plain_err.details());
    let s = named(&spans, "LPUSH");
    assert_child_of(s, root(&spans));
    assert!(is_error(s));
    assert!(
        error_message(s)
            .unwrap()
            .contains("WRONGTYPE Operation against a key holding the wrong kind of value"),
        "{:?}",
        error_message(s)
    );
    assert_eq!(attr_str(s, "error.type").as_deref(), Some("WRONGTYPE"));
    assert_eq!(
        attr_str(s, "db.response.status_code").as_deref(),
        Some("WRONGTYPE")
    );
    assert!(event_attr(s, "exception", "exception.message").is_some());
    // exception.type is the error's type (fred's `Error`); the server's code is error.type.
    assert_eq!(
        event_attr(s, "exception", "exception.type").map(|v| v.as_str().into_owned()),
        Some("Error".to_owned())
    );
}

#[tokio::test]
async fn a_port_with_nothing_listening_fails_the_connect_span() {
    exporter();
    let port = free_port();
    let traced = Traced::new(builder(port, None).build().unwrap());
    let (traced_err, spans) = in_root_async(async { traced.init().await.unwrap_err() }).await;
    let plain_err = builder(port, None)
        .build()
        .unwrap()
        .init()
        .await
        .unwrap_err();
    assert_eq!(traced_err.kind(), plain_err.kind());
    assert_eq!(*traced_err.kind(), ErrorKind::IO);
    let s = named(&spans, "redis connect");
    assert_child_of(s, root(&spans));
    assert!(is_error(s));
    assert_eq!(attr_str(s, "error.type").as_deref(), Some("IO"));
    let msg = error_message(s).unwrap();
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert_eq!(
        attr(s, "server.port").map(|v| v.to_string()),
        Some(port.to_string())
    );
}

#[tokio::test]
async fn wrong_password_and_no_password_are_auth_errors() {
    exporter();
    let server = OwnServer::start(free_port(), Some("right-password"));

    // A wrong password: the connection is refused by the server.
    let wrong = Traced::new(
        builder(server.port, Some("wrong-password"))
            .build()
            .unwrap(),
    );
    let (traced_err, spans) = in_root_async(async { wrong.init().await.unwrap_err() }).await;
    let plain_err = builder(server.port, Some("wrong-password"))
        .build()
        .unwrap()
        .init()
        .await
        .unwrap_err();
    assert_eq!(traced_err.kind(), plain_err.kind());
    assert_eq!(traced_err.details(), plain_err.details());
    let s = named(&spans, "redis connect");
    assert!(is_error(s));
    assert_eq!(attr_str(s, "error.type").as_deref(), Some("WRONGPASS"));
    assert!(error_message(s).unwrap().contains("WRONGPASS"));

    // No password: commands fail with NOAUTH.
    let none = Traced::new(builder(server.port, None).build().unwrap());
    let (traced_err, spans) = in_root_async(async {
        match none.init().await {
            Err(e) => e,
            Ok(_) => none.get::<Option<String>, _>("k").await.unwrap_err(),
        }
    })
    .await;
    assert_eq!(*traced_err.kind(), ErrorKind::Auth);
    let failed: Vec<_> = spans.iter().filter(|s| is_error(s)).collect();
    assert_eq!(failed.len(), 1, "{:?}", names(&spans));
    assert_eq!(attr_str(failed[0], "error.type").as_deref(), Some("NOAUTH"));
    assert!(error_message(failed[0]).unwrap().contains("NOAUTH"));
}

async fn wait_for_span(pred: impl Fn(&SpanData) -> bool, what: &str) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .rfind(|s| pred(s))
        {
            return s;
        }
        assert!(Instant::now() < deadline, "no {what} span");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_stopped_mid_test_fails_commands_and_reconnects_show() {
    exporter();
    let port = free_port();
    let mut server = OwnServer::start(port, None);
    let mut b = builder(port, None);
    b.set_policy(ReconnectPolicy::new_constant(0, 100));
    // Reconnections are set-up work: traced when asked for.
    let c = Traced::new(b.build().unwrap()).trace_setup(true);
    c.init().await.unwrap();
    let port_is =
        |s: &SpanData| attr(s, "server.port").map(|v| v.to_string()) == Some(port.to_string());
    // The first connection is reported too.
    wait_for_span(
        |s| s.name == "redis reconnect" && port_is(s),
        "first connection",
    )
    .await;
    let k = key("stopped");
    let _: () = c.set(&k, "before", None, None, false).await.unwrap();

    server.stop();
    let (err, spans) =
        in_root_async(async { c.get::<Option<String>, _>(&k).await.unwrap_err() }).await;
    let s = named(&spans, "GET");
    assert_child_of(s, root(&spans));
    assert!(is_error(s), "{s:?}");
    let msg = error_message(s).unwrap();
    assert_eq!(msg, err.to_string());
    assert!(
        matches!(
            err.kind(),
            ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled
        ),
        "{err:?}"
    );
    wait_for_span(
        |s| s.name == "redis connection error" && port_is(s) && is_error(s),
        "connection error",
    )
    .await;

    // Back on the same port: the client reconnects and the reconnection is a span.
    let before = exporter()
        .get_finished_spans()
        .unwrap()
        .iter()
        .filter(|s| s.name == "redis reconnect" && port_is(s))
        .count();
    let _server = OwnServer::start(port, None);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = exporter()
            .get_finished_spans()
            .unwrap()
            .iter()
            .filter(|s| s.name == "redis reconnect" && port_is(s))
            .count();
        if now > before {
            break;
        }
        assert!(Instant::now() < deadline, "no reconnect span after restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v: Option<String> = c.get(&k).await.unwrap();
    assert_eq!(v, None, "a fresh server");
    let _ = c.quit().await;
}

const MARKER: &str = "S3cr3t-Mark3r-pw";

/// Server errors that quote a command's arguments (a custom command's, a script's own error
/// text): the values are not recorded, and a script's text does not become `error.type` (nor,
/// with it, a metric label). Found by a review; each case leaked before the fix.
#[tokio::test]
async fn server_errors_that_quote_arguments_are_not_recorded() {
    let c = traced().await;
    let k = key("geo-leak");
    let cmd = |name: &'static str| CustomCommand::new_static(name, None, false);
    let ((), spans) = in_root_async(async {
        // ERR invalid longitude,latitude pair <the arguments>
        let _ = c
            .custom::<i64, _>(
                cmd("GEOADD"),
                vec![k.as_str(), "179.123456", "-91.654321", "m"],
            )
            .await
            .unwrap_err();
        // ERR Error in ACL SETUSER modifier '<the password>': Syntax error
        let _ = c
            .custom::<(), _>(cmd("ACL"), vec!["SETUSER", "tracer-nobody", "on", MARKER])
            .await
            .unwrap_err();
        // A script's own error text, with an argument in it.
        let _ = c
            .custom::<(), _>(
                cmd("EVAL"),
                vec![
                    "return redis.error_reply('bad card ' .. ARGV[1])",
                    "0",
                    MARKER,
                ],
            )
            .await
            .unwrap_err();
        // A script's error text whose first word looks like a server's error code.
        let _ = c
            .custom::<(), _>(
                cmd("EVAL"),
                vec![
                    "return redis.error_reply(ARGV[1])",
                    "0",
                    "COUPONXMASFREE rejected",
                ],
            )
            .await
            .unwrap_err();
    })
    .await;
    let mut leaks = mentions(&spans, "179.123456");
    leaks.extend(mentions(&spans, MARKER));
    leaks.extend(mentions(&spans, "COUPONXMASFREE"));
    assert!(leaks.is_empty(), "argument values recorded: {leaks:#?}");
    let failed: Vec<&SpanData> = spans.iter().filter(|s| is_error(s)).collect();
    assert_eq!(failed.len(), 4, "{:?}", names(&spans));
    for s in &failed {
        // The server's code where it gave one (ERR), and a message saying what is left out.
        let message = error_message(s).unwrap();
        assert!(message.contains("not recorded"), "{}: {message}", s.name);
    }
    assert_eq!(attr_str(failed[0], "error.type").as_deref(), Some("ERR"));
    assert_eq!(
        attr_str(failed[0], "db.response.status_code").as_deref(),
        Some("ERR")
    );
}

#[tokio::test]
async fn values_and_passwords_are_never_recorded() {
    let c = traced().await;
    let (k, h, l, s, z, m) = (
        key("secret:str"),
        key("secret:hash"),
        key("secret:list"),
        key("secret:set"),
        key("secret:zset"),
        key("secret:m"),
    );
    let server = OwnServer::start(free_port(), Some("another-password"));
    let ((), spans) = in_root_async(async {
        let _: () = c.set(&k, MARKER, None, None, false).await.unwrap();
        let _: bool = c.setnx(&k, MARKER).await.unwrap();
        let _: i64 = c.append(&k, MARKER).await.unwrap();
        let _: Option<String> = c.getdel(&k).await.unwrap();
        let _: () = c.mset(vec![(m.as_str(), MARKER)]).await.unwrap();
        let _: () = c.hset(&h, (MARKER, MARKER)).await.unwrap();
        let _: Option<String> = c.hget(&h, MARKER).await.unwrap();
        let _: i64 = c.hincrby(&key("secret:hnum"), MARKER, 1).await.unwrap();
        let _: () = c.lpush(&l, MARKER).await.unwrap();
        let _: () = c.rpush(&l, vec![MARKER, MARKER]).await.unwrap();
        let _: () = c.sadd(&s, MARKER).await.unwrap();
        let _: bool = c.sismember(&s, MARKER).await.unwrap();
        let _: () = c
            .zadd(&z, None, None, false, false, (1.0, MARKER))
            .await
            .unwrap();
        let _: i64 = c.publish(key("secret:chan"), MARKER).await.unwrap();
        let _: String = c.ping(Some(MARKER.to_owned())).await.unwrap();
        let _: () = c
            .custom(
                CustomCommand::new_static("SET", None, false),
                vec![k.as_str(), MARKER],
            )
            .await
            .unwrap();
        // An unknown command echoes its arguments in the server's error.
        let _ = c
            .custom::<(), _>(
                CustomCommand::new_static("NOSUCHCMD", None, false),
                vec![MARKER],
            )
            .await
            .unwrap_err();
        let pipe = c.pipeline();
        let _: () = pipe.set(&k, MARKER, None, None, false).await.unwrap();
        let _: () = pipe.get(&k).await.unwrap();
        let _: ((), String) = pipe.all().await.unwrap();
        let tx = c.multi();
        let _: () = tx.set(&k, MARKER, None, None, false).await.unwrap();
        let _: ((),) = tx.exec(true).await.unwrap();
        // A password, right and wrong.
        let wrong = Traced::new(builder(server.port, Some(MARKER)).build().unwrap());
        let _ = wrong.init().await.unwrap_err();
        let _: i64 = c
            .del(vec![
                k.as_str(),
                h.as_str(),
                l.as_str(),
                s.as_str(),
                z.as_str(),
                m.as_str(),
            ])
            .await
            .unwrap();
        let _: i64 = c.del(key("secret:hnum")).await.unwrap();
    })
    .await;
    assert!(spans.len() >= 20, "{:?}", names(&spans));
    let leaks = mentions(&spans, MARKER);
    assert!(leaks.is_empty(), "the marker was recorded: {leaks:#?}");
    // The unknown command's error is recorded, minus its echoed arguments.
    let s = named(&spans, "NOSUCHCMD");
    assert!(is_error(s));
    assert!(error_message(s).unwrap().contains("unknown command"));
}

#[tokio::test]
async fn nothing_is_recorded_for_a_service_switched_off() {
    require_redis();
    exporter();
    // A service of its own, so that switching it off does not touch the other tests.
    let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let _guard = tracer_runtime::init("redis-switch")
        .with_span_processor(opentelemetry_sdk::trace::SimpleSpanProcessor::new(
            spans.clone(),
        ))
        .install()
        .unwrap();
    let c = Traced::new(builder(6379, None).build().unwrap())
        .for_service("redis-switch")
        .trace_setup(true);
    c.init().await.unwrap();
    let k = key("switch");
    let _: () = c.set(&k, "on", None, None, false).await.unwrap();
    let on = spans.get_finished_spans().unwrap().len();
    assert!(on >= 2, "connect and SET recorded while on");

    tracer_runtime::set_enabled("redis-switch", false);
    let _: () = c.set(&k, "off", None, None, false).await.unwrap();
    let v: String = c.get(&k).await.unwrap();
    let pipe = c.pipeline();
    let _: () = pipe.get(&k).await.unwrap();
    let _: (String,) = pipe.all().await.unwrap();
    let err = c.lpush::<i64, _, _>(&k, "x").await.unwrap_err();
    let _: i64 = c.del(&k).await.unwrap();
    tracer_runtime::set_enabled("redis-switch", true);
    assert_eq!(v, "off");
    assert!(err.details().starts_with("WRONGTYPE"));
    assert_eq!(
        spans.get_finished_spans().unwrap().len(),
        on,
        "nothing while off"
    );
}

#[tokio::test]
async fn a_timeout_is_an_error_span_and_the_same_error() {
    require_redis();
    exporter();
    let quick = |b: &mut Builder| {
        b.with_performance_config(|p| p.default_command_timeout = Duration::from_millis(200));
    };
    let mut b = builder(6379, None);
    quick(&mut b);
    let c = Traced::new(b.build().unwrap());
    c.init().await.unwrap();
    let mut b = builder(6379, None);
    quick(&mut b);
    let p = b.build().unwrap();
    p.init().await.unwrap();
    let k = key("timeout");
    // A blocking pop on an empty list outlasts the 200 ms command timeout.
    let blpop = || CustomCommand::new_static("BLPOP", None, true);
    let (traced_err, spans) = in_root_async(async {
        c.custom::<(), _>(blpop(), vec![k.as_str(), "5"])
            .await
            .unwrap_err()
    })
    .await;
    let plain_err = p
        .custom::<(), _>(blpop(), vec![k.as_str(), "5"])
        .await
        .unwrap_err();
    assert_eq!(*traced_err.kind(), ErrorKind::Timeout);
    assert_eq!(traced_err, plain_err);
    let s = named(&spans, "BLPOP");
    assert_child_of(s, root(&spans));
    assert!(is_error(s));
    assert_eq!(attr_str(s, "error.type").as_deref(), Some("Timeout"));
    assert_eq!(attr_str(s, "db.query.text").as_deref(), Some("BLPOP ? ?"));
    assert_eq!(error_message(s).unwrap(), traced_err.to_string());
}

/// A wrapped command's future holds fred's in place: no larger than fred's future plus a few
/// words (the span's context, the converted arguments), so awaiting it copies no second
/// kilobyte-sized future and the wrapper costs next to nothing with tracing off.
#[tokio::test]
async fn a_wrapped_future_is_the_inner_one_plus_a_few_words() {
    let plain = builder(6379, None).build().unwrap();
    let traced = Traced::new(builder(6379, None).build().unwrap());
    let k = key("size");
    let inner = std::mem::size_of_val(&plain.get::<Option<String>, _>(k.as_str()));
    let outer = std::mem::size_of_val(&traced.get::<Option<String>, _>(k.as_str()));
    println!("GET future: fred {inner} bytes, wrapper {outer} bytes");
    assert!(inner > 1024, "fred's GET future: {inner} bytes");
    assert!(
        outer <= inner + 256,
        "GET: wrapper {outer} bytes, fred {inner}"
    );
    let inner = std::mem::size_of_val(&plain.set::<(), _, _>(k.as_str(), "v", None, None, false));
    let outer = std::mem::size_of_val(&traced.set::<(), _, _>(k.as_str(), "v", None, None, false));
    println!("SET future: fred {inner} bytes, wrapper {outer} bytes");
    assert!(
        outer <= inner + 256,
        "SET: wrapper {outer} bytes, fred {inner}"
    );
    // Still `Send`, as fred's are (they run in spawned tasks).
    fn send<T: Send>(_: &T) {}
    send(&traced.get::<Option<String>, _>(k.as_str()));
    let pipe = traced.pipeline();
    send(&pipe.get::<(), _>(k.as_str()));
    send(&pipe.all::<()>());
    send(&traced.multi().exec::<()>(true));
}

/// A command seen before (same command, same key) gives a span with the same name and
/// attributes as the first one: its text is shared, not rebuilt differently.
#[tokio::test]
async fn the_same_command_twice_gives_the_same_span() {
    let c = traced().await;
    let k = key("twice");
    let ((), spans) = in_root_async(async {
        for _ in 0..3 {
            let _: () = c.set(&k, "v", None, None, false).await.unwrap();
            let _: Option<String> = c.get(&k).await.unwrap();
        }
        let _: i64 = c.del(&k).await.unwrap();
    })
    .await;
    let shape = |s: &SpanData| {
        let mut a: Vec<(String, String)> = s
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        a.sort();
        (s.name.to_string(), a)
    };
    for (cmd, text) in [("SET", format!("SET {k} ?")), ("GET", format!("GET {k}"))] {
        let same: Vec<&SpanData> = spans.iter().filter(|s| s.name == cmd).collect();
        assert_eq!(same.len(), 3, "{cmd}");
        for s in &same {
            assert_eq!(attr_str(s, "db.query.text"), Some(text.clone()));
            assert_eq!(shape(s), shape(same[0]));
        }
    }
}

/// A panic inside a command's future (here in the conversion of the reply, which fred runs in
/// the future) does not leave the command's span current on the thread: what runs next on it is
/// in no trace.
#[tokio::test]
async fn a_panic_inside_a_command_leaves_no_span_current() {
    require_redis();
    exporter();
    struct Boom;
    impl FromValue for Boom {
        fn from_value(_: Value) -> Result<Self, Error> {
            panic!("the reply's conversion panics");
        }
    }
    let c = Traced::new(builder(6379, None).build().unwrap());
    c.init().await.unwrap();
    let k = key("panic-in-poll");
    let _: () = c.set(&k, "v", None, None, false).await.unwrap();
    assert_eq!(tracer_runtime::current_trace_id(), None, "no span before");
    let polled =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(c.get::<Boom, _>(&k)))
            .await;
    assert!(polled.is_err(), "the conversion panicked");
    assert_eq!(
        tracer_runtime::current_trace_id(),
        None,
        "the GET span was left current after the panic"
    );
    let _: i64 = c.del(&k).await.unwrap();
}

#[tracer_runtime::traced]
async fn load_user(c: &TracedClient, k: &str) -> Option<String> {
    let _: () = c
        .set(k, "u1", Some(Expiration::EX(60)), None, false)
        .await
        .unwrap();
    read_user(c, k).await
}

#[tracer_runtime::traced]
async fn read_user(c: &TracedClient, k: &str) -> Option<String> {
    c.get(k).await.unwrap()
}

/// A `#[traced]` fn's span lives on tracer's own stack, not in OpenTelemetry's context: a
/// command run in it is its child all the same, at any depth, with the command's own name,
/// kind and attributes.
#[tokio::test]
async fn a_command_in_a_traced_fn_is_its_child() {
    let c = traced().await;
    let k = key("traced:user");
    let (v, spans) = in_root_async(load_user(&c, &k)).await;
    assert_eq!(v.as_deref(), Some("u1"));
    let _: i64 = plain().await.del(&k).await.unwrap();
    let (outer, inner) = (named(&spans, "load_user"), named(&spans, "read_user"));
    assert_child_of(outer, root(&spans));
    assert_child_of(inner, outer);
    let (set, get) = (named(&spans, "SET"), named(&spans, "GET"));
    assert_child_of(set, outer);
    assert_child_of(get, inner);
    assert_redis_span(set, "SET", &format!("SET {k} ? EX ?"), 6379);
    assert_redis_span(get, "GET", &format!("GET {k}"), 6379);
    for s in [set, get] {
        assert!(!s.parent_span_is_remote, "{}", s.name);
        assert!(s.span_context.is_sampled(), "{}", s.name);
        assert!(!is_error(s), "{}", s.name);
    }
}
