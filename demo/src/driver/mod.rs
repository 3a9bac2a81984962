//! The driver: starts the three servers as child processes of its own, plays the scenarios
//! against server1, and draws each trace from the embedded receiver.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::cli::{Addrs, Error};
use crate::receiver::{self, Store};
use crate::scenario::Scenario;
use crate::waterfall::{self, Style};

const SERVERS: [&str; 3] = ["server1", "server2", "server3"];
/// How long the servers get to start, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the driver waits for a scenario's answer, and then for its spans.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);
const TRACE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the servers export (ms), unless `OTEL_BSP_SCHEDULE_DELAY` says otherwise: the
/// SDK's default of 5 s would make every waterfall wait.
const EXPORT_DELAY_MS: &str = "100";

/// The collector the user configured, if any.
fn configured_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .filter_map(|v| std::env::var(v).ok())
    .find(|v| !v.trim().is_empty())
}

/// Where the spans go: the embedded receiver (and its store), or the configured collector.
enum Sink {
    Embedded { endpoint: String, store: Store },
    External(String),
}

impl Sink {
    async fn open() -> Result<Sink, Error> {
        Ok(match configured_endpoint() {
            Some(e) => Sink::External(e),
            None => {
                let (addr, store) = receiver::start()
                    .await
                    .map_err(|e| format!("cannot start the embedded OTLP receiver: {e}"))?;
                Sink::Embedded {
                    endpoint: format!("http://{addr}"),
                    store,
                }
            }
        })
    }

    fn describe(&self) -> String {
        match self {
            Sink::Embedded { endpoint, .. } => format!(
                "spans: OTLP/gRPC to the receiver embedded in this driver ({endpoint}); set \
                 OTEL_EXPORTER_OTLP_ENDPOINT to send them to Jaeger or any OTLP backend instead"
            ),
            Sink::External(e) => format!(
                "spans: to {e} (OTEL_EXPORTER_OTLP_ENDPOINT); the waterfalls need the embedded \
                 receiver, so only the trace ids are printed here (unset the variable to see them)"
            ),
        }
    }
}

/// The three servers, each a child process running this same binary.
struct Servers {
    children: Vec<(&'static str, Child, Lines<BufReader<ChildStdout>>)>,
    logs: PathBuf,
}

impl Servers {
    async fn start(addrs: &Addrs, sink: &Sink) -> Result<Servers, Error> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let logs = std::env::temp_dir().join(format!("tracer-demo-{}", std::process::id()));
        std::fs::create_dir_all(&logs)
            .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        let mut servers = Servers {
            children: Vec::new(),
            logs,
        };
        for name in SERVERS {
            let log_path = servers.log(name);
            let log = std::fs::File::create(&log_path)
                .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.args(addrs.to_args())
                .args([name, "--until-stdin-closes"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .kill_on_drop(true);
            if let Sink::Embedded { endpoint, .. } = sink {
                cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                    .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
                    .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
            }
            if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
                cmd.env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS);
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot start {name}: {e}"))?;
            let stdout = child.stdout.take().expect("stdout is piped");
            servers
                .children
                .push((name, child, BufReader::new(stdout).lines()));
        }
        // Each server prints one line once it listens on all its ports.
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        for i in 0..servers.children.len() {
            let name = servers.children[i].0;
            let line = tokio::time::timeout_at(deadline, servers.children[i].2.next_line()).await;
            let why = match line {
                Ok(Ok(Some(_))) => continue,
                Ok(_) => "stopped while starting",
                Err(_) => &format!("did not start within {START_TIMEOUT:?}"),
            };
            let message = format!(
                "{name} {why}:\n{}(another demo running? Each address can be changed: `demo --help`)",
                servers.log_text(name)
            );
            // Dropping the servers kills the others; what they printed is not needed.
            let _ = std::fs::remove_dir_all(&servers.logs);
            return Err(message.into());
        }
        Ok(servers)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    fn log_text(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
        let text = text.trim_end();
        if text.is_empty() {
            "  (it printed nothing)".to_owned()
        } else {
            text.lines().map(|l| format!("  {l}\n")).collect()
        }
    }

    /// After a blank line, the lines the servers logged in trace `trace_id` (a few per server):
    /// each ends with the ids of the span it was written in.
    fn print_log_lines(&self, trace_id: &str, style: Style) {
        let needle = format!("trace_id={trace_id}");
        let mut header = false;
        for name in SERVERS {
            let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains(&needle)).take(6) {
                if !header {
                    println!("\n  {}", style.dim("logged in this trace:"));
                    header = true;
                }
                println!("    {}", style.dim(&format!("[{name}] {line}")));
            }
        }
    }

    /// The first server found stopped, if any.
    fn exited(&mut self) -> Option<&'static str> {
        self.children
            .iter_mut()
            .find_map(|(name, c, _)| (!matches!(c.try_wait(), Ok(None))).then_some(*name))
    }

    /// Closes their standard input (each flushes its spans and exits), waits, kills stragglers.
    /// Returns whether all stopped on their own.
    async fn stop(mut self) -> bool {
        for (_, child, _) in &mut self.children {
            drop(child.stdin.take());
        }
        let mut clean = true;
        for (name, child, _) in &mut self.children {
            match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    eprintln!("demo: {name} exited with {status}");
                    clean = false;
                }
                Ok(Err(e)) => {
                    eprintln!("demo: waiting for {name}: {e}");
                    clean = false;
                }
                Err(_) => {
                    eprintln!("demo: {name} did not stop within {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill().await;
                    clean = false;
                }
            }
        }
        if clean {
            let _ = std::fs::remove_dir_all(&self.logs);
        } else {
            eprintln!("demo: the servers' output is in {}", self.logs.display());
        }
        clean
    }
}

/// A database the demo needs but cannot reach: what to say about it.
fn database_hints(addrs: &Addrs) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(a) = url_addr(&addrs.mysql_url, 3306)
        && !reachable(&a)
    {
        hints.push(format!(
            "MySQL is not reachable at {a} (--mysql-url, DEMO_MYSQL_URL): the normal and \
             mysql-error scenarios show the connection error. To start one:\n    \
             docker run --rm -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 \
             -e MARIADB_DATABASE=test mariadb:11\n  (or a local MariaDB/MySQL server with user \
             root, no password, and a database `test`)"
        ));
    }
    if let Some(a) = url_addr(&addrs.redis_url, 6379)
        && !reachable(&a)
    {
        hints.push(format!(
            "Redis is not reachable at {a} (--redis-url, DEMO_REDIS_URL): the normal and \
             redis-error scenarios show the connection error. To start one:\n    \
             docker run --rm -p 6379:6379 redis:7\n  (or `redis-server` if it is installed)"
        ));
    }
    hints
}

/// `host:port` of a `scheme://[user[:password]@]host[:port][/...]` URL.
fn url_addr(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    if authority.is_empty() {
        return None;
    }
    Some(match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_owned(),
        _ => format!("{authority}:{default_port}"),
    })
}

fn reachable(addr: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a: SocketAddr| {
        std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok()
    })
}

type PlainClient = Client<HttpConnector, Empty<Bytes>>;

fn plain_client() -> PlainClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What one scenario request gave.
struct Played {
    status: StatusCode,
    body: String,
    trace_id: Option<String>,
    took: Duration,
}

/// The URL that starts scenario `s` at server1.
fn scenario_url(addrs: &Addrs, s: Scenario) -> String {
    format!("http://{}/scenario/{}", addrs.server1_http, s.name())
}

/// The trace id of a `traceresponse: 00-<trace id>-<span id>-<flags>` header.
fn trace_id_of(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

async fn play(client: &PlainClient, url: &str) -> Result<Played, String> {
    let started = Instant::now();
    let req = Request::get(url)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let call = async {
        let resp = client.request(req).await.map_err(|e| {
            let mut m = e.to_string();
            let mut next = std::error::Error::source(&e);
            while let Some(c) = next {
                m.push_str(": ");
                m.push_str(&c.to_string());
                next = c.source();
            }
            m
        })?;
        let status = resp.status();
        let trace_id = resp
            .headers()
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Played {
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
            trace_id,
            took: started.elapsed(),
        })
    };
    tokio::time::timeout(SCENARIO_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {SCENARIO_TIMEOUT:?}")))
}

fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let mut s: String = line.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Plays `s`, prints its progress line, its answer and its `scenario <name> trace_id=<id>`
/// line. Returns the trace id, or why there is none.
async fn play_and_print(
    client: &PlainClient,
    addrs: &Addrs,
    s: Scenario,
    progress: &str,
    style: Style,
) -> Result<String, String> {
    let url = scenario_url(addrs, s);
    println!(
        "{} {} — {}",
        style.dim(progress),
        style.bold(s.name()),
        s.summary()
    );
    let played = match play(client, &url).await {
        Ok(p) => p,
        Err(e) => {
            println!("      GET {url} → {}", style.red(&format!("failed: {e}")));
            return Err(format!("{}: GET {url} failed: {e}", s.name()));
        }
    };
    let expected = if played.status.as_u16() == s.expected_status() {
        "as expected".to_owned()
    } else {
        style.red(&format!("expected {}", s.expected_status()))
    };
    println!(
        "      GET {url} → {} in {} ({expected}): {}",
        played.status,
        waterfall::duration(played.took.as_nanos() as u64),
        style.dim(&clip(&played.body, 120)),
    );
    let Some(id) = played.trace_id else {
        return Err(format!(
            "{}: server1 answered without a traceresponse header (is tracing switched off?)",
            s.name()
        ));
    };
    println!("scenario {} trace_id={id}", s.name());
    Ok(id)
}

async fn print_trace(store: &Store, trace_id: &str, style: Style) {
    let (spans, complete) = store.wait_for(trace_id, TRACE_TIMEOUT).await;
    print!("{}", waterfall::render(&spans, style));
    if !complete {
        println!(
            "  {}",
            style.dim(&format!(
                "(some spans had not arrived after {TRACE_TIMEOUT:?}: the trace may be incomplete)"
            ))
        );
    }
}

/// `demo` / `demo run`.
pub(crate) async fn run(addrs: &Addrs) -> Result<(), Error> {
    let style = Style::detect();
    let sink = Sink::open().await?;
    println!(
        "{}",
        style.bold("tracer demo: three services, nine scenarios, one trace each")
    );
    println!("{}", style.dim(&sink.describe()));
    let hints = database_hints(addrs);
    for h in &hints {
        println!("{}", style.red(&format!("note: {h}")));
    }
    println!(
        "starting server1 (HTTP {}), server2 (HTTP {}, gRPC {}), server3 (gRPC {}) ...",
        addrs.server1_http, addrs.server2_http, addrs.server2_grpc, addrs.server3_grpc
    );
    let started = Instant::now();
    let mut servers = Servers::start(addrs, &sink).await?;
    println!(
        "ready in {}\n",
        waterfall::duration(started.elapsed().as_nanos() as u64)
    );

    let client = plain_client();
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for (i, s) in Scenario::ALL.into_iter().enumerate() {
        let progress = format!("[{}/{}]", i + 1, Scenario::ALL.len());
        match play_and_print(&client, addrs, s, &progress, style).await {
            Ok(id) => {
                if let Sink::Embedded { store, .. } = &sink {
                    print_trace(store, &id, style).await;
                }
                servers.print_log_lines(&id, style);
                ids.push((s, id));
            }
            Err(e) => failures.push(e),
        }
        println!();
        if let Some(name) = servers.exited() {
            failures.push(format!("{name} stopped:\n{}", servers.log_text(name)));
            break;
        }
    }

    crate::metrics::print_report(addrs, style).await;
    println!("stopping the servers ...");
    let clean = servers.stop().await;
    if let Sink::External(endpoint) = &sink {
        println!("the spans went to {endpoint}; if that is Jaeger, open:");
        for (s, id) in &ids {
            println!("  {:<12} http://127.0.0.1:16686/trace/{id}", s.name());
        }
    }
    for h in &hints {
        println!("{}", style.red(&format!("note: {h}")));
    }
    if !failures.is_empty() {
        return Err(failures.join("\n").into());
    }
    if !clean {
        return Err("a server did not stop cleanly".into());
    }
    println!("done: {} scenarios played", ids.len());
    Ok(())
}

/// `demo serve`: the three servers until Ctrl-C; with the embedded receiver, each trace drawn
/// as it completes.
pub(crate) async fn serve(addrs: &Addrs) -> Result<(), Error> {
    let style = Style::detect();
    let sink = Sink::open().await?;
    match &sink {
        Sink::Embedded { .. } => println!("{}", style.dim(&sink.describe())),
        Sink::External(e) => println!(
            "{}",
            style.dim(&format!("spans: to {e} (OTEL_EXPORTER_OTLP_ENDPOINT)"))
        ),
    }
    for h in database_hints(addrs) {
        println!("{}", style.red(&format!("note: {h}")));
    }
    let mut servers = Servers::start(addrs, &sink).await?;
    println!(
        "server1 HTTP http://{}, server2 HTTP http://{} and gRPC {}, server3 gRPC {}: running \
         until Ctrl-C",
        addrs.server1_http, addrs.server2_http, addrs.server2_grpc, addrs.server3_grpc
    );
    println!(
        "try:  curl -i http://{}/scenario/normal",
        addrs.server1_http
    );
    println!("      demo scenario <name>   (one of: {})", names());
    println!(
        "metrics: http://{}/metrics, http://{}/metrics, http://{}/metrics",
        addrs.server1_metrics, addrs.server2_metrics, addrs.server3_metrics
    );
    println!(
        "switch server3's tracing off (and on):  curl -X PUT --data off http://{}/tracer/server3",
        addrs.server3_metrics
    );

    let mut shown = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let stop = crate::shutdown::requested(false);
    tokio::pin!(stop);
    let outcome = loop {
        tokio::select! {
            () = &mut stop => break Ok(()),
            _ = tick.tick() => {}
        }
        if let Some(name) = servers.exited() {
            break Err(format!("{name} stopped:\n{}", servers.log_text(name)));
        }
        if let Sink::Embedded { store, .. } = &sink {
            for id in store.trace_ids() {
                if shown.contains(&id) {
                    continue;
                }
                let spans = store.trace(&id);
                if receiver::is_complete(&spans) {
                    if let Some(root) = spans.iter().find(|s| s.parent_id.is_empty()) {
                        println!("\ntrace_id={id} ({} {})", root.service, root.name);
                    }
                    print!("{}", waterfall::render(&spans, style));
                    servers.print_log_lines(&id, style);
                    shown.insert(id);
                }
            }
        }
    };
    println!("\nstopping the servers ...");
    servers.stop().await;
    outcome.map_err(Into::into)
}

fn names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}

/// `demo scenario <name>`: one scenario against running servers.
pub(crate) async fn play_one(addrs: &Addrs, s: Scenario) -> Result<(), Error> {
    let style = Style::detect();
    play_and_print(&plain_client(), addrs, s, "[1/1]", style).await?;
    Ok(())
}

/// `demo ping`: HTTP `/healthz` on server1 and server2, gRPC `Ping` on server2 and server3, none
/// of them traced.
pub(crate) async fn ping(addrs: &Addrs) -> Result<(), Error> {
    let client = plain_client();
    let mut failed = Vec::new();
    for (name, addr) in [
        ("server1", addrs.server1_http),
        ("server2", addrs.server2_http),
    ] {
        let url = format!("http://{addr}/healthz");
        match play(&client, &url).await {
            Ok(p) if p.status.is_success() => println!("{name} HTTP {addr}: ok"),
            Ok(p) => failed.push(format!("{name} HTTP {addr}: {}", p.status)),
            Err(e) => failed.push(format!("{name} HTTP {addr}: {e}")),
        }
    }
    let grpc = |addr: SocketAddr| {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map(|e| e.timeout(Duration::from_secs(5)).connect_lazy())
    };
    let req = crate::pb::PingRequest {};
    let r2 = match grpc(addrs.server2_grpc) {
        Ok(ch) => crate::pb::server2_client::Server2Client::new(ch)
            .ping(req)
            .await
            .map_err(|s| crate::grpc::describe(&s)),
        Err(e) => Err(e.to_string()),
    };
    let r3 = match grpc(addrs.server3_grpc) {
        Ok(ch) => crate::pb::server3_client::Server3Client::new(ch)
            .ping(req)
            .await
            .map_err(|s| crate::grpc::describe(&s)),
        Err(e) => Err(e.to_string()),
    };
    for (name, addr, r) in [
        ("server2", addrs.server2_grpc, r2),
        ("server3", addrs.server3_grpc, r3),
    ] {
        match r {
            Ok(_) => println!("{name} gRPC {addr}: ok"),
            Err(e) => failed.push(format!("{name} gRPC {addr}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("not answering: {}", failed.join("; ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_from_traceresponse() {
        assert_eq!(
            trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[test]
    fn database_addresses() {
        assert_eq!(
            url_addr("mysql://root@127.0.0.1:3306/test", 3306).as_deref(),
            Some("127.0.0.1:3306")
        );
        assert_eq!(
            url_addr("mysql://u:p@db/test", 3306).as_deref(),
            Some("db:3306")
        );
        assert_eq!(
            url_addr("redis://127.0.0.1:6379", 6379).as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            url_addr("redis://localhost", 6379).as_deref(),
            Some("localhost:6379")
        );
    }
}
