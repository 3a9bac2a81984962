//! End to end with a real Prometheus (Debian's `prometheus`, started by the test on a free port,
//! scraping the demo's three servers every second with the shipped `prometheus/alerts.yml`),
//! while the trace backend is down: `normal` traffic still produces metrics and fires no error
//! alert; `mysql-error` traffic makes server3's error alerts reach `firing`, as read from
//! Prometheus' `/api/v1/alerts`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const DEMO: &str = env!("CARGO_BIN_EXE_tracer-demo");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../prometheus/alerts.yml");

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn require(what: &str, port: u16, how: &str) {
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok(),
        "{what} is not reachable on 127.0.0.1:{port}; this test needs it. {how} (`bash .ci/run` starts it)"
    );
}

/// A plain HTTP/1.0 GET; returns status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no HTTP response: {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: bad status line: {head}"))?;
    Ok((status, body.to_owned()))
}

/// Where a server's standard error goes (its warnings say why a call failed).
fn log_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tracer-prom-e2e-{}-{name}.log", std::process::id()))
}

/// The servers' warnings so far, for a failure's message.
fn logs() -> String {
    ["server1", "server2", "server3"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(log_path(name)).unwrap_or_default();
            let warned: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(20)
                .collect();
            format!(
                "\n--- {name} ({}):\n{}",
                log_path(name).display(),
                warned.join("\n")
            )
        })
        .collect()
}

/// Children killed when the test ends, however it ends.
struct Procs(Vec<(&'static str, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Demo {
    server1_http: SocketAddr,
    metrics: [(&'static str, SocketAddr); 3],
}

/// The three servers, exporting spans to a port where nothing listens.
fn start_servers(procs: &mut Procs) -> Demo {
    let (s1, s2h, s2g, s3) = (free_addr(), free_addr(), free_addr(), free_addr());
    let metrics = [
        ("server1", free_addr()),
        ("server2", free_addr()),
        ("server3", free_addr()),
    ];
    let backend_down = free_addr();
    let flags = vec![
        format!("--server1-http={s1}"),
        format!("--server2-http={s2h}"),
        format!("--server2-grpc={s2g}"),
        format!("--server3-grpc={s3}"),
        format!("--server1-metrics={}", metrics[0].1),
        format!("--server2-metrics={}", metrics[1].1),
        format!("--server3-metrics={}", metrics[2].1),
    ];
    let (tx, rx) = mpsc::channel();
    for name in ["server1", "server2", "server3"] {
        let mut cmd = Command::new(DEMO);
        for var in ["OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED", "TRACER_ENABLED"] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .args(&flags)
            .args([name, "--until-stdin-closes"])
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{backend_down}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log_path(name)).expect("a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send((name, lines.next().and_then(Result::ok)));
            for _ in lines {}
        });
        procs.0.push((name, child));
    }
    for _ in 0..3 {
        let (name, line) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the servers start within 30 s");
        assert!(line.is_some(), "{name} exited before listening");
    }
    Demo {
        server1_http: s1,
        metrics,
    }
}

/// Prometheus on a free port, scraping `demo`'s servers every second with the shipped rules.
fn start_prometheus(procs: &mut Procs, demo: &Demo) -> SocketAddr {
    let exists = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        exists,
        "`prometheus` is not on PATH; install Debian's with `apt-get install -y prometheus` \
         (`bash .ci/run` does)"
    );
    let dir = std::env::temp_dir().join(format!("tracer-prom-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {RULES}\nscrape_configs:\n"
    );
    for (job, addr) in demo.metrics {
        cfg.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let listen = free_addr();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    procs.0.push(("prometheus", child));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(listen, "/-/ready").is_ok_and(|(s, _)| s == 200) {
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 30 s; see {}",
            dir.join("prometheus.log").display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    listen
}

fn api(prom: SocketAddr, path: &str) -> Value {
    let (status, body) = get(prom, path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The alerts Prometheus has: (name, job, state).
fn alerts(prom: SocketAddr) -> Vec<(String, String, String)> {
    let v = api(prom, "/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["job"]),
                s(&a["state"]),
            )
        })
        .collect()
}

/// The value of an instant query returning one number (0 when empty).
fn query(prom: SocketAddr, q: &str) -> f64 {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let v = api(prom, &format!("/api/v1/query?query={enc}"));
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

fn play(demo: &Demo, scenario: &str) {
    let _ = get(demo.server1_http, &format!("/scenario/{scenario}"));
}

#[test]
fn errors_fire_server3_alerts_in_a_real_prometheus_and_normal_traffic_fires_none() {
    require(
        "MariaDB/MySQL",
        3306,
        "Start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    );
    require(
        "Redis",
        6379,
        "Start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379",
    );
    let mut procs = Procs(Vec::new());
    let demo = start_servers(&mut procs);
    let prom = start_prometheus(&mut procs, &demo);

    // Normal traffic, the trace backend down: metrics still flow, no error alert.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        play(&demo, "normal");
        std::thread::sleep(Duration::from_millis(300));
    }
    let served = query(
        prom,
        "sum(http_server_request_duration_seconds_count{job=\"server1\"})",
    );
    assert!(served >= 10.0, "server1's requests in Prometheus: {served}");
    let db = query(
        prom,
        "sum(db_client_operation_duration_seconds_count{job=\"server3\",db_system_name=\"mysql\"})",
    );
    assert!(db >= 10.0, "server3's MySQL operations in Prometheus: {db}");
    let errors: Vec<_> = alerts(prom)
        .into_iter()
        .filter(|(name, ..)| name.contains("ErrorRatio"))
        .collect();
    assert!(
        errors.is_empty(),
        "normal traffic fired {errors:?}; the servers' warnings:{}",
        logs()
    );
    // Nor a latency alert, pending or firing: the scenario answers in milliseconds, and the
    // histograms' buckets say so (a p99 read from them well under the rules' second).
    let p99 = query(
        prom,
        "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{job=\"server1\"}[1m])))",
    );
    assert!(
        p99 > 0.0 && p99 < 0.5,
        "server1's p99 in Prometheus: {p99} s"
    );
    let slow: Vec<_> = alerts(prom)
        .into_iter()
        .filter(|(name, ..)| name.contains("Latency"))
        .collect();
    assert!(slow.is_empty(), "normal traffic raised {slow:?}");

    // mysql-error traffic: server3's error alerts go pending, then firing.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        play(&demo, "mysql-error");
        let now = alerts(prom);
        let firing = |name: &str| {
            now.iter()
                .any(|(n, job, state)| n == name && job == "server3" && state == "firing")
        };
        if firing("TracerDbErrorRatioHigh") && firing("TracerRpcErrorRatioHigh") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server3's error alerts did not fire within 150 s: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
