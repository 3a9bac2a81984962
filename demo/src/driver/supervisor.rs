//! The three servers as child processes: started, watched, their logs kept, stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::sink::Sink;
use crate::config::{Addrs, Error};
use crate::waterfall::Style;

const SERVERS: [&str; 3] = ["server1", "server2", "server3"];
/// How long the servers get to start, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the servers export (ms), unless `OTEL_BSP_SCHEDULE_DELAY` says otherwise: the
/// SDK's default of 5 s would make every waterfall wait.
const EXPORT_DELAY_MS: &str = "100";

/// The three servers, each a child process running this same binary.
pub(super) struct Servers {
    children: Vec<(&'static str, Child, Lines<BufReader<ChildStdout>>)>,
    logs: PathBuf,
}

impl Servers {
    pub(super) async fn start(addrs: &Addrs, sink: &Sink) -> Result<Servers, Error> {
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

    pub(super) fn log_text(&self, name: &str) -> String {
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
    pub(super) fn print_log_lines(&self, trace_id: &str, style: Style) {
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
    pub(super) fn exited(&mut self) -> Option<&'static str> {
        self.children
            .iter_mut()
            .find_map(|(name, c, _)| (!matches!(c.try_wait(), Ok(None))).then_some(*name))
    }

    /// Closes their standard input (each flushes its spans and exits), waits, kills stragglers.
    /// Returns whether all stopped on their own.
    pub(super) async fn stop(mut self) -> bool {
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
pub(super) fn database_hints(addrs: &Addrs) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
