//! A real OTLP backend for end-to-end tests: an `otelite` process of the test's own, on free
//! ports, read back through its query API.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str = "the end-to-end tests need the otelite OTLP backend: install it with \
`cargo install otelite --locked --version 0.1.156` (or run `bash .ci/run`, which does)";

/// A running otelite; killed on drop.
pub struct Otelite {
    child: Child,
    pub api: u16,
    pub grpc: u16,
    pub http: u16,
    dir: PathBuf,
}

/// A port for a server the test starts: free when picked, never handed out twice by this
/// process, and below Linux's ephemeral range (32768 and up), so that no outbound connection of
/// a test running beside it can take it before the server binds it. (Binding port 0 and
/// releasing it picked a port in that range, which a demo server once found taken.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below 32000 on 127.0.0.1");
        let port = u16::try_from(LOW + (start + n) % SPAN).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("OTELITE_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("otelite"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| {
            let mut p = PathBuf::from(h);
            p.push(".cargo");
            p.into_os_string()
        })
    }) {
        candidates.push(PathBuf::from(home).join("bin").join("otelite"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl Otelite {
    /// Starts otelite, or panics saying how to install it.
    pub fn start() -> Otelite {
        let bin = find_binary().unwrap_or_else(|| panic!("otelite not found. {INSTALL_HINT}"));
        let (api, grpc, http) = (free_port(), free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("tracer-otelite-{}-{api}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create otelite's directory");
        let child = Command::new(&bin)
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{api}"),
                "--storage-path",
            ])
            .arg(dir.join("data"))
            .env("HOME", &dir)
            .env("OTELITE_OTLP_GRPC_PORT", grpc.to_string())
            .env("OTELITE_OTLP_HTTP_PORT", http.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL_HINT}", bin.display()));
        let o = Otelite {
            child,
            api,
            grpc,
            http,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [api, grpc, http] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "otelite did not listen on {port} within 30 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        o
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// `GET path` on the query API: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.api)).expect("connect to otelite's API");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept: application/json\r\n\r\n")
            .expect("send the request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read the response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_owned()
            },
        )
    }

    /// Polls `/api/traces/<id>` until the trace has `min_spans` spans (or 30 s pass).
    pub fn trace(&self, trace_id: &str, min_spans: usize) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(&format!("/api/traces/{trace_id}"));
            if status == 200
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && spans(&v).len() >= min_spans
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} did not reach {min_spans} spans in otelite: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The spans of a trace document.
pub fn spans(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.get("spans")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default()
}

impl Drop for Otelite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
