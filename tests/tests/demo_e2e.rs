//! End to end: the demo's three servers, each its own process on free ports, exporting to
//! otelite; every scenario played through `demo scenario`, its trace read back from otelite and
//! compared span by span (service, kind, name, parent, Error status, `exception` events) with
//! what the scenario should give; the servers still answering afterwards. And `demo` with no
//! collector configured: eight scenario lines and their waterfalls from the embedded receiver.

#[path = "support/otelite.rs"]
mod otelite;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use otelite::{Otelite, free_port};
use serde_json::Value;

const DEMO: &str = env!("CARGO_BIN_EXE_tracer-demo");

const SCENARIOS: [&str; 9] = [
    "normal",
    "nested-http",
    "nested-grpc",
    "http-panic",
    "grpc-panic",
    "mysql-error",
    "redis-error",
    "call-loop",
    "lock-contention",
];

/// Fails the test, saying how to start it, when a database the scenario needs is down.
fn require(what: &str, port: u16, how: &str) {
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok(),
        "{what} is not reachable on 127.0.0.1:{port}; the demo's end-to-end tests need it. {how} \
         (`bash .ci/run` starts it)"
    );
}

fn require_mysql() {
    require(
        "MariaDB/MySQL",
        3306,
        "Start it with user root, no password and a database `test`, e.g. \
         `docker run --rm -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb:11`",
    );
}

fn require_redis() {
    require(
        "Redis",
        6379,
        "Start it with `redis-server` or `docker run --rm -p 6379:6379 redis:7`",
    );
}

/// Removes every OTLP setting the test environment might carry, so each test chooses its own.
fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_SDK_DISABLED",
        "TRACER_ENABLED",
        "OTEL_TRACES_SAMPLER",
        "OTEL_PROPAGATORS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1")
}

/// The demo's addresses on free ports, as flags.
fn address_flags() -> Vec<String> {
    vec![
        format!("--server1-http=127.0.0.1:{}", free_port()),
        format!("--server2-http=127.0.0.1:{}", free_port()),
        format!("--server2-grpc=127.0.0.1:{}", free_port()),
        format!("--server3-grpc=127.0.0.1:{}", free_port()),
        format!("--server1-metrics=127.0.0.1:{}", free_port()),
        format!("--server2-metrics=127.0.0.1:{}", free_port()),
        format!("--server3-metrics=127.0.0.1:{}", free_port()),
    ]
}

/// Runs the demo binary to its end, within `timeout`.
fn run_demo(args: &[String], env: &[(&str, String)], timeout: Duration) -> Output {
    let mut cmd = Command::new(DEMO);
    clean_env(&mut cmd).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).ok();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        err.read_to_end(&mut s).ok();
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`demo {}` did not finish within {timeout:?}:\n{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&reader.join().unwrap()),
                String::from_utf8_lossy(&err_reader.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// The three servers, each its own process, exporting to a fresh otelite.
struct Servers {
    otelite: Otelite,
    flags: Vec<String>,
    children: Vec<(&'static str, Child)>,
    stderr: Arc<Mutex<String>>,
}

impl Servers {
    fn start() -> Servers {
        let otelite = Otelite::start();
        let flags = address_flags();
        let mut children = Vec::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let collected = Arc::new(Mutex::new(String::new()));
        for name in ["server1", "server2", "server3"] {
            let mut cmd = Command::new(DEMO);
            clean_env(&mut cmd)
                .args(&flags)
                .args([name, "--until-stdin-closes"])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", otelite.grpc_endpoint())
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
                .env("OTEL_BSP_SCHEDULE_DELAY", "100")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
            // Each server prints one line once it listens; keep reading so it never blocks.
            let stdout = child.stdout.take().unwrap();
            let tx = ready_tx.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = tx.send((name, lines.next().and_then(Result::ok)));
                for _ in lines {}
            });
            // Their panic messages stay out of the test's output, but at hand for a failure.
            let mut stderr = BufReader::new(child.stderr.take().unwrap());
            let sink = Arc::clone(&collected);
            std::thread::spawn(move || {
                let mut line = String::new();
                while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                    sink.lock().unwrap().push_str(&format!("[{name}] {line}"));
                    line.clear();
                }
            });
            children.push((name, child));
        }
        let servers = Servers {
            otelite,
            flags,
            children,
            stderr: collected,
        };
        for _ in 0..3 {
            let (name, line) = ready_rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "the servers did not start within 30 s:\n{}",
                        servers.output()
                    )
                });
            assert!(
                line.is_some(),
                "{name} stopped while starting:\n{}",
                servers.output()
            );
        }
        servers
    }

    fn args<'a>(&self, more: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        self.flags
            .iter()
            .cloned()
            .chain(more.into_iter().map(str::to_owned))
            .collect()
    }

    /// Plays `scenario` with `demo scenario`; returns its trace id.
    fn play(&self, scenario: &str) -> String {
        let out = run_demo(
            &self.args(["scenario", scenario]),
            &[],
            Duration::from_secs(60),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "demo scenario {scenario}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let ids = scenario_lines(&stdout);
        assert_eq!(ids.len(), 1, "{stdout}");
        assert_eq!(ids[0].0, scenario, "{stdout}");
        ids[0].1.clone()
    }

    /// `demo ping`: HTTP on server1 and server2, gRPC on server2 and server3.
    fn assert_answering(&mut self, after: &str) {
        let out = run_demo(&self.args(["ping"]), &[], Duration::from_secs(30));
        assert!(
            out.status.success(),
            "the servers stopped answering after {after}: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.output()
        );
        for (name, child) in &mut self.children {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "{name} exited after {after}"
            );
        }
    }

    /// What the servers printed on their standard error.
    fn output(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Reads the trace back from otelite once it has `spans` spans, and once more a moment
    /// later (an extra span would have arrived by then: the servers export every 100 ms).
    fn trace(&self, trace_id: &str, spans: usize) -> Vec<Value> {
        self.otelite.trace(trace_id, spans);
        std::thread::sleep(Duration::from_millis(400));
        otelite::spans(&self.otelite.trace(trace_id, spans))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `scenario <name> trace_id=<id>` lines of the demo's output.
fn scenario_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("scenario "))
        .map(|rest| {
            let (name, id) = rest
                .split_once(" trace_id=")
                .unwrap_or_else(|| panic!("a malformed scenario line: {rest}"));
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "a trace id of 32 hex digits: {id}"
            );
            (name.to_owned(), id.to_owned())
        })
        .collect()
}

fn service(span: &Value) -> &str {
    span["resource"]["attributes"]["service.name"]
        .as_str()
        .unwrap_or("?")
}

fn exceptions(span: &Value) -> Vec<&Value> {
    span["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["name"] == "exception").collect())
        .unwrap_or_default()
}

/// The trace as an indented tree, one line per span: `service KIND name`, then ` ERROR` when its
/// status is Error and ` +exception` per `exception` event. Children by start time.
fn tree(spans: &[Value]) -> String {
    let mut children: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        match s["parent_span_id"].as_str() {
            Some(p) if !p.is_empty() => children.entry(p).or_default().push(s),
            _ => roots.push(s),
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s["start_time"].as_u64());
    }
    fn walk(out: &mut String, s: &Value, depth: usize, children: &HashMap<&str, Vec<&Value>>) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&format!(
            "{} {} {}",
            service(s),
            s["kind"].as_str().unwrap_or("?").to_uppercase(),
            s["name"].as_str().unwrap_or("?")
        ));
        if s["status"]["code"] == "Error" {
            out.push_str(" ERROR");
        }
        for _ in exceptions(s) {
            out.push_str(" +exception");
        }
        out.push('\n');
        if let Some(kids) = s["span_id"].as_str().and_then(|id| children.get(id)) {
            for k in kids {
                walk(out, k, depth + 1, children);
            }
        }
    }
    let mut out = String::new();
    for r in roots {
        walk(&mut out, r, 0, &children);
    }
    out
}

/// Plays `scenario` on fresh servers and checks its trace against `expected` (see [`tree`]);
/// returns the spans for further checks.
fn check(scenario: &str, expected: &str) -> Vec<Value> {
    let mut servers = Servers::start();
    let id = servers.play(scenario);
    let expected = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let want = expected.lines().count();
    let spans = servers.trace(&id, want);
    for s in &spans {
        assert_eq!(s["trace_id"], id.as_str(), "one trace: {s}");
    }
    assert_eq!(
        tree(&spans),
        expected,
        "the trace of {scenario} ({id}), as received by otelite"
    );
    // The exact set of services and of span kinds follows from the tree; stated once more.
    let services: HashSet<&str> = spans.iter().map(service).collect();
    let in_tree: HashSet<&str> = expected
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(services, in_tree);
    servers.assert_answering(scenario);
    // And once more: a scenario after the first still goes through every server.
    let again = servers.play(scenario);
    assert_ne!(again, id, "each request is a trace of its own");
    assert_eq!(
        tree(&servers.trace(&again, want)),
        expected,
        "the second run of {scenario}"
    );
    spans
}

/// The one span named `name` of service `service`.
fn span<'a>(spans: &'a [Value], service_name: &str, name: &str) -> &'a Value {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| service(s) == service_name && s["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {service_name} span named {name}");
    found[0]
}

fn exception_message(span: &Value) -> &str {
    let e = exceptions(span);
    assert_eq!(e.len(), 1, "{span}");
    e[0]["attributes"]["exception.message"]
        .as_str()
        .unwrap_or("")
}

#[test]
fn normal() {
    require_mysql();
    require_redis();
    let spans = check(
        "normal",
        "
server1 SERVER GET /scenario/normal
  server1 CLIENT GET
    server2 SERVER GET /normal
      server2 INTERNAL ask_server3
        server2 CLIENT demo.Server3/Work
          server3 SERVER demo.Server3/Work
            server3 INTERNAL mysql_version
              server3 CLIENT mysql get_conn
              server3 CLIENT SELECT
            server3 INTERNAL redis_visits
              server3 CLIENT INCR
            server3 CLIENT demo.Server2/Callback
              server2 SERVER demo.Server2/Callback
",
    );
    let select = span(&spans, "server3", "SELECT");
    assert_eq!(select["attributes"]["db.system.name"], "mysql");
    assert_eq!(select["attributes"]["db.query.text"], "SELECT VERSION()");
    let incr = span(&spans, "server3", "INCR");
    assert_eq!(incr["attributes"]["db.system.name"], "redis");
    // server3's DB helpers are #[traced(err, args(...))]: `args(key)` records the Redis key.
    // server2's business step is #[traced(err, args(scenario))].
    let ask = span(&spans, "server2", "ask_server3");
    assert_eq!(ask["attributes"]["scenario"], "\"normal\"");
    let visits = span(&spans, "server3", "redis_visits");
    assert_eq!(visits["attributes"]["key"], "\"tracer-demo:visits\"");
    // server3 logs each query and command through the bridge: `log` events on the span of the
    // helper that makes it.
    let logs = |name: &str| -> Vec<(String, String, String)> {
        span(&spans, "server3", name)["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["name"] == "log")
            .map(|e| {
                let a = &e["attributes"];
                let field = |k: &str| a[k].as_str().unwrap_or("?").to_owned();
                (field("level"), field("target"), field("message"))
            })
            .collect()
    };
    let log = |m: &str| ("INFO".to_owned(), "server3".to_owned(), m.to_owned());
    assert_eq!(logs("mysql_version"), [log("mysql: SELECT VERSION()")]);
    assert_eq!(
        logs("redis_visits"),
        [log("redis: INCR tracer-demo:visits")]
    );
}

#[test]
fn lock_contention() {
    // Three concurrent requests reach server3, which holds its one connection slot 50 ms for
    // each: the second and third wait, each in a `lock connection-slot` span.
    let servers = Servers::start();
    let id = servers.play("lock-contention");
    // 15 spans, plus server1's `fan_out` (`#[traced(args(s))]`) and server2's three
    // `ask_server3`.
    let spans = servers.trace(&id, 19);
    assert_eq!(spans.len(), 19, "{}", tree(&spans));
    let fan_out = span(&spans, "server1", "fan_out");
    assert_eq!(fan_out["attributes"]["s"], "LockContention");
    let asks: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "ask_server3")
        .collect();
    assert_eq!(asks.len(), 3, "{}", tree(&spans));
    for a in &asks {
        assert_eq!(service(a), "server2");
        assert_eq!(a["attributes"]["scenario"], "\"lock-contention\"");
    }
    let works: Vec<&Value> = spans
        .iter()
        .filter(|s| service(s) == "server3" && s["name"] == "demo.Server3/Work")
        .collect();
    assert_eq!(works.len(), 3, "{}", tree(&spans));
    let waits: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "lock connection-slot")
        .collect();
    assert_eq!(waits.len(), 2, "{}", tree(&spans));
    let mut waiters = Vec::new();
    for w in &waits {
        assert_eq!(service(w), "server3");
        assert_eq!(
            w["kind"].as_str().map(str::to_uppercase).as_deref(),
            Some("INTERNAL")
        );
        assert_eq!(w["attributes"]["tracer.lock.name"], "connection-slot");
        assert!(
            works.iter().any(|p| p["span_id"] == w["parent_span_id"]),
            "a wait is the child of the waiting request's server3 span: {w}"
        );
        waiters.push(
            w["attributes"]["tracer.lock.waiters"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
        );
    }
    waiters.sort();
    assert_eq!(waiters, ["0", "1"], "the last waiter had one ahead of it");
    // Each request's work logged on its own span.
    for work in &works {
        let logged = work["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["name"] == "log")
            .count();
        assert_eq!(logged, 1, "{work}");
    }
}

#[test]
fn nested_http() {
    check(
        "nested-http",
        "
server1 SERVER GET /scenario/nested-http
  server1 CLIENT GET
    server2 SERVER GET /nested-http
      server2 CLIENT GET
        server1 SERVER GET /nested
",
    );
}

#[test]
fn nested_grpc() {
    check(
        "nested-grpc",
        "
server1 SERVER GET /scenario/nested-grpc
  server1 CLIENT GET
    server2 SERVER GET /nested-grpc
      server2 INTERNAL ask_server3
        server2 CLIENT demo.Server3/Work
          server3 SERVER demo.Server3/Work
            server3 CLIENT demo.Server2/Callback
              server2 SERVER demo.Server2/Callback
",
    );
}

#[test]
fn http_panic() {
    let spans = check(
        "http-panic",
        "
server1 SERVER GET /scenario/http-panic ERROR
  server1 CLIENT GET ERROR
    server2 SERVER GET /http-panic ERROR +exception
",
    );
    let s = span(&spans, "server2", "GET /http-panic");
    assert_eq!(
        exception_message(s),
        "http-panic: server2's handler panicked on purpose"
    );
    assert_eq!(exceptions(s)[0]["attributes"]["exception.type"], "panic");
    assert_eq!(s["attributes"]["error.type"], "panic");
    let c = span(&spans, "server1", "GET");
    assert_eq!(c["attributes"]["http.response.status_code"], "500");
}

#[test]
fn grpc_panic() {
    let spans = check(
        "grpc-panic",
        "
server1 SERVER GET /scenario/grpc-panic ERROR
  server1 CLIENT GET ERROR
    server2 SERVER GET /grpc-panic ERROR
      server2 INTERNAL ask_server3 ERROR +exception
        server2 CLIENT demo.Server3/Work ERROR
          server3 SERVER demo.Server3/Work ERROR +exception
",
    );
    let s = span(&spans, "server3", "demo.Server3/Work");
    assert_eq!(
        exception_message(s),
        "grpc-panic: server3's handler panicked on purpose"
    );
    assert_eq!(s["attributes"]["rpc.grpc.status_code"], "13", "INTERNAL");
    let c = span(&spans, "server2", "demo.Server3/Work");
    assert_eq!(c["attributes"]["rpc.grpc.status_code"], "13", "INTERNAL");
}

#[test]
fn mysql_error() {
    require_mysql();
    let spans = check(
        "mysql-error",
        "
server1 SERVER GET /scenario/mysql-error ERROR
  server1 CLIENT GET ERROR
    server2 SERVER GET /mysql-error ERROR
      server2 INTERNAL ask_server3 ERROR +exception
        server2 CLIENT demo.Server3/Work ERROR
          server3 SERVER demo.Server3/Work ERROR
            server3 INTERNAL mysql_missing_table ERROR +exception
              server3 CLIENT mysql get_conn
              server3 CLIENT SELECT tracer_demo_missing_table ERROR +exception
",
    );
    let s = span(&spans, "server3", "SELECT tracer_demo_missing_table");
    let message = exception_message(s);
    assert!(
        message.contains("1146") && message.contains("tracer_demo_missing_table"),
        "{message}"
    );
    assert_eq!(s["attributes"]["db.system.name"], "mysql");
}

#[test]
fn redis_error() {
    require_redis();
    let spans = check(
        "redis-error",
        "
server1 SERVER GET /scenario/redis-error ERROR
  server1 CLIENT GET ERROR
    server2 SERVER GET /redis-error ERROR
      server2 INTERNAL ask_server3 ERROR +exception
        server2 CLIENT demo.Server3/Work ERROR
          server3 SERVER demo.Server3/Work ERROR
            server3 INTERNAL redis_wrongtype ERROR +exception
              server3 CLIENT SET
              server3 CLIENT LPUSH ERROR +exception
",
    );
    let s = span(&spans, "server3", "LPUSH");
    assert!(exception_message(s).contains("WRONGTYPE"), "{s}");
    assert_eq!(s["attributes"]["db.system.name"], "redis");
}

#[test]
fn call_loop() {
    // server1 → server2 → server3 → server2 → server1 → … with nothing to stop it but the loop
    // guard: server2's fifth call back, eleven calls in (its name four times on the path
    // already, the default `max_repeats`), is answered FAILED_PRECONDITION without reaching the
    // handler; every span above it is Error. Bounded: 26 spans (server2's `ask_server3` on each of
    // the three rounds), and no more arrive.
    let spans = check(
        "call-loop",
        "
server1 SERVER GET /scenario/call-loop ERROR
  server1 CLIENT GET ERROR
    server2 SERVER GET /call-loop ERROR
      server2 INTERNAL ask_server3 ERROR +exception
        server2 CLIENT demo.Server3/Work ERROR
          server3 SERVER demo.Server3/Work ERROR
            server3 CLIENT demo.Server2/Callback ERROR
              server2 SERVER demo.Server2/Callback ERROR
                server2 CLIENT GET ERROR
                  server1 SERVER GET /call-loop ERROR
                    server1 CLIENT GET ERROR
                      server2 SERVER GET /call-loop ERROR
                        server2 INTERNAL ask_server3 ERROR +exception
                          server2 CLIENT demo.Server3/Work ERROR
                            server3 SERVER demo.Server3/Work ERROR
                              server3 CLIENT demo.Server2/Callback ERROR
                                server2 SERVER demo.Server2/Callback ERROR
                                  server2 CLIENT GET ERROR
                                    server1 SERVER GET /call-loop ERROR
                                      server1 CLIENT GET ERROR
                                        server2 SERVER GET /call-loop ERROR
                                          server2 INTERNAL ask_server3 ERROR +exception
                                            server2 CLIENT demo.Server3/Work ERROR
                                              server3 SERVER demo.Server3/Work ERROR
                                                server3 CLIENT demo.Server2/Callback ERROR
                                                  server2 SERVER demo.Server2/Callback ERROR +exception
",
    );
    let refused: Vec<&Value> = spans
        .iter()
        .filter(|s| !s["attributes"]["tracer.loop.path"].is_null())
        .collect();
    assert_eq!(refused.len(), 1, "one span refused by the guard");
    let s = refused[0];
    assert_eq!(
        (
            service(s),
            s["kind"].as_str().map(str::to_ascii_lowercase).as_deref()
        ),
        ("server2", Some("server")),
        "{s}"
    );
    assert_eq!(s["name"], "demo.Server2/Callback");
    assert_eq!(s["status"]["code"], "Error");
    let cycle = "call loop: server2 > server1 > server2 > server3 > server2 > …";
    assert_eq!(exception_message(s), cycle);
    assert_eq!(
        s["attributes"]["tracer.loop.path"],
        "server1 > server2 > server3 > server2 > server1 > server2 > server3 > server2 > \
         server1 > server2 > server3 > server2"
    );
    let hops = &s["attributes"]["tracer.loop.hops"];
    assert_eq!(
        hops.as_i64().or_else(|| hops.as_str()?.parse().ok()),
        Some(11),
        "{s}"
    );
    let code = &s["attributes"]["rpc.grpc.status_code"];
    assert_eq!(
        code.as_i64().or_else(|| code.as_str()?.parse().ok()),
        Some(9),
        "FAILED_PRECONDITION: {s}"
    );
}

/// The waterfall drawn under each `scenario` line: the lines up to the next blank one.
fn waterfalls(stdout: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("scenario ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
            out.insert(name, body.join("\n"));
        }
    }
    out
}

/// The services a waterfall shows (the first word of each span line).
fn waterfall_services(w: &str) -> HashSet<&str> {
    w.lines()
        .skip(1) // the header
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("server"))
        .collect()
}

#[test]
fn embedded_default_prints_every_scenario_and_its_waterfall() {
    // No collector configured: the driver's own receiver gets the spans. Addresses by variable.
    let ports: Vec<String> = (0..7)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let env = [
        ("DEMO_SERVER1_HTTP", ports[0].clone()),
        ("DEMO_SERVER2_HTTP", ports[1].clone()),
        ("DEMO_SERVER2_GRPC", ports[2].clone()),
        ("DEMO_SERVER3_GRPC", ports[3].clone()),
        ("DEMO_SERVER1_METRICS", ports[4].clone()),
        ("DEMO_SERVER2_METRICS", ports[5].clone()),
        ("DEMO_SERVER3_METRICS", ports[6].clone()),
    ];
    let out = run_demo(&[], &env, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = scenario_lines(&stdout);
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, SCENARIOS, "{stdout}");
    let ids: HashSet<&str> = lines.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 9, "distinct trace ids: {stdout}");
    assert!(
        stdout.contains(&format!("http://{}/scenario/normal", ports[0])),
        "{stdout}"
    );

    let drawn = waterfalls(&stdout);
    let all = HashSet::from(["server1", "server2", "server3"]);
    let two = HashSet::from(["server1", "server2"]);
    for name in SCENARIOS {
        let w = &drawn[name];
        let want = match name {
            "nested-http" | "http-panic" => &two,
            _ => &all,
        };
        assert_eq!(&waterfall_services(w), want, "{name}:\n{w}");
        assert!(!w.contains("incomplete"), "{name}:\n{w}");
    }
    // Errors are marked, exception messages shown, under the span that panicked.
    let w = &drawn["http-panic"];
    assert!(w.contains("✗ HTTP 502") && w.contains("✗ HTTP 500"), "{w}");
    assert!(
        w.contains("↳ exception (panic): http-panic: server2's handler panicked on purpose"),
        "{w}"
    );
    assert!(
        drawn["grpc-panic"].contains("↳ exception (panic): grpc-panic"),
        "{}",
        drawn["grpc-panic"]
    );
    assert!(
        !drawn["nested-grpc"].contains('✗'),
        "{}",
        drawn["nested-grpc"]
    );
    // One line per span, 26 for the call loop (the root, 11 hops of 2 with the guard stopping
    // the twelfth, and server2's three `ask_server3`), and one per exception: the refused
    // call's and each `ask_server3`'s (`#[traced(err)]`).
    let w = &drawn["call-loop"];
    assert_eq!(w.lines().count(), 1 + 26 + 1 + 3, "{w}");
    assert!(
        w.contains(
            "↳ exception (CallLoop): call loop: server2 > server1 > server2 > server3 > server2 > …"
        ),
        "{w}"
    );
    assert!(
        w.lines()
            .skip(1)
            .filter(|l| !l.contains('↳'))
            .all(|l| l.contains('✗')),
        "every span on the way back is an error: {w}"
    );
    // server3's records: `log` events under its span, and lines with the trace's ids.
    assert!(
        drawn["normal"].contains("↳ log INFO: mysql: SELECT VERSION()"),
        "{}",
        drawn["normal"]
    );
    let normal_id = &lines[0].1;
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("[server3] INFO  server3: redis: INCR")
                && l.contains(&format!("trace_id={normal_id} span_id="))),
        "{stdout}"
    );
    // Lock waits, linked to the request holding the slot.
    let w = &drawn["lock-contention"];
    assert!(w.contains("lock connection-slot"), "{w}");
    assert!(w.contains("↳ link → server3 demo.Server3/Work"), "{w}");
    assert!(stdout.contains("done: 9 scenarios played"), "{stdout}");
}

#[test]
fn without_databases_the_demo_still_runs_to_the_end_and_says_how_to_start_them() {
    // Nothing listens on these ports.
    let mut args = address_flags();
    args.push(format!(
        "--mysql-url=mysql://root@127.0.0.1:{}/test",
        free_port()
    ));
    args.push(format!("--redis-url=redis://127.0.0.1:{}", free_port()));
    let out = run_demo(&args, &[], Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scenario_lines(&stdout).len(), 9, "{stdout}");
    for hint in [
        "MySQL is not reachable",
        "docker run --rm -p 3306:3306",
        "Redis is not reachable",
        "docker run --rm -p 6379:6379",
    ] {
        assert!(stdout.contains(hint), "{hint}: {stdout}");
    }
    // The connection errors, on the spans that tried to connect.
    let drawn = waterfalls(&stdout);
    let failed = |w: &str, span: &str| {
        w.lines()
            .any(|l| l.contains(span) && l.contains("✗") && l.contains("refused"))
    };
    assert!(
        failed(&drawn["normal"], "mysql get_conn"),
        "{}",
        drawn["normal"]
    );
    assert!(
        failed(&drawn["normal"], "redis connect"),
        "{}",
        drawn["normal"]
    );
    assert!(
        failed(&drawn["mysql-error"], "mysql get_conn"),
        "{}",
        drawn["mysql-error"]
    );
    assert!(
        failed(&drawn["redis-error"], "redis connect"),
        "{}",
        drawn["redis-error"]
    );
}

#[test]
fn run_with_an_endpoint_exports_there_and_prints_the_ids() {
    require_mysql();
    require_redis();
    let o = Otelite::start();
    let out = run_demo(
        &address_flags(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", o.grpc_endpoint())],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo: {}\n{stdout}", out.status);
    assert!(
        stdout.contains("only the trace ids are printed"),
        "{stdout}"
    );
    let lines = scenario_lines(&stdout);
    assert_eq!(lines.len(), 9, "{stdout}");
    // With server2's `ask_server3` and server1's `fan_out` (`#[traced]` helpers).
    let counts = [13, 5, 8, 3, 6, 9, 9, 26, 19];
    for ((name, id), n) in lines.iter().zip(counts) {
        let spans = otelite::spans(&o.trace(id, n));
        assert_eq!(spans.len(), n, "{name}: {id}");
        let root = spans
            .iter()
            .find(|s| s["parent_span_id"].is_null())
            .expect("a root span");
        assert_eq!(root["name"], format!("GET /scenario/{name}"));
    }
}
