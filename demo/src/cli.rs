//! The command line: every address is a flag and an environment variable.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::scenario::Scenario;

/// tracer's demo: three services and the scenarios that show their traces.
///
/// With no command, starts server1, server2 and server3 as child processes, plays every
/// scenario, draws each trace, and stops them. With no OTEL_EXPORTER_OTLP_ENDPOINT the spans go
/// to an OTLP receiver inside this process; with one (Jaeger, otelite, any OTLP backend) they go
/// there and only the trace ids are printed.
#[derive(Debug, Parser)]
#[command(name = "demo", version)]
struct Cli {
    #[command(flatten)]
    addrs: Addrs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where everything listens.
#[derive(Clone, Debug, Args)]
pub(crate) struct Addrs {
    /// server1's HTTP address.
    #[arg(
        long,
        env = "DEMO_SERVER1_HTTP",
        default_value = "127.0.0.1:1323",
        global = true
    )]
    pub(crate) server1_http: SocketAddr,
    /// server2's HTTP address.
    #[arg(
        long,
        env = "DEMO_SERVER2_HTTP",
        default_value = "127.0.0.1:1324",
        global = true
    )]
    pub(crate) server2_http: SocketAddr,
    /// server2's gRPC address.
    #[arg(
        long,
        env = "DEMO_SERVER2_GRPC",
        default_value = "127.0.0.1:8888",
        global = true
    )]
    pub(crate) server2_grpc: SocketAddr,
    /// server3's gRPC address.
    #[arg(
        long,
        env = "DEMO_SERVER3_GRPC",
        default_value = "127.0.0.1:9999",
        global = true
    )]
    pub(crate) server3_grpc: SocketAddr,
    /// server1's metrics address: Prometheus text at /metrics, the switch at /tracer.
    #[arg(
        long,
        env = "DEMO_SERVER1_METRICS",
        default_value = "127.0.0.1:9464",
        global = true
    )]
    pub(crate) server1_metrics: SocketAddr,
    /// server2's metrics address.
    #[arg(
        long,
        env = "DEMO_SERVER2_METRICS",
        default_value = "127.0.0.1:9465",
        global = true
    )]
    pub(crate) server2_metrics: SocketAddr,
    /// server3's metrics address.
    #[arg(
        long,
        env = "DEMO_SERVER3_METRICS",
        default_value = "127.0.0.1:9466",
        global = true
    )]
    pub(crate) server3_metrics: SocketAddr,
    /// The MySQL (or MariaDB) server3 uses.
    #[arg(
        long,
        env = "DEMO_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306/test",
        global = true
    )]
    pub(crate) mysql_url: String,
    /// The Redis server3 uses.
    #[arg(
        long,
        env = "DEMO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub(crate) redis_url: String,
}

impl Addrs {
    /// Each server's metrics address, by service name.
    pub(crate) fn metrics(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("server1", self.server1_metrics),
            ("server2", self.server2_metrics),
            ("server3", self.server3_metrics),
        ]
    }

    /// The flags that give a child process these same addresses.
    pub(crate) fn to_args(&self) -> Vec<String> {
        vec![
            format!("--server1-http={}", self.server1_http),
            format!("--server2-http={}", self.server2_http),
            format!("--server2-grpc={}", self.server2_grpc),
            format!("--server3-grpc={}", self.server3_grpc),
            format!("--server1-metrics={}", self.server1_metrics),
            format!("--server2-metrics={}", self.server2_metrics),
            format!("--server3-metrics={}", self.server3_metrics),
            format!("--mysql-url={}", self.mysql_url),
            format!("--redis-url={}", self.redis_url),
        ]
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the three servers, play every scenario, draw each trace, stop them (the default).
    Run,
    /// Start the three servers and keep them running until Ctrl-C. With no
    /// OTEL_EXPORTER_OTLP_ENDPOINT, draws each trace as it arrives.
    Serve {
        /// Also start Debian's `prometheus` (from PATH) scraping the three servers every second
        /// with the shipped alert rules (prometheus/alerts.yml); see its /alerts page.
        #[arg(long)]
        prometheus: bool,
        /// Where that Prometheus listens.
        #[arg(long, env = "DEMO_PROMETHEUS", default_value = "127.0.0.1:9090")]
        prometheus_addr: SocketAddr,
    },
    /// Run server1 only (HTTP).
    Server1(ServerArgs),
    /// Run server2 only (HTTP and gRPC).
    Server2(ServerArgs),
    /// Run server3 only (gRPC; MySQL and Redis).
    Server3(ServerArgs),
    /// Play one scenario against servers already running; prints its trace id.
    Scenario {
        /// The scenario.
        #[arg(value_enum)]
        name: Scenario,
    },
    /// Check that the three servers answer (HTTP and gRPC).
    Ping,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Stop when standard input closes (how the driver stops its children, and why they never
    /// outlive it).
    #[arg(long, hide = true)]
    pub(crate) until_stdin_closes: bool,
}

/// The `demo` program.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs = cli.addrs;
    let result = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => crate::driver::run(&addrs).await,
            Command::Serve {
                prometheus,
                prometheus_addr,
            } => {
                let prom = if prometheus {
                    Some(crate::metrics::Prometheus::start(&addrs, prometheus_addr).await?)
                } else {
                    None
                };
                let r = crate::driver::serve(&addrs).await;
                drop(prom);
                r
            }
            Command::Server1(a) => crate::server1::main(&addrs, &a).await,
            Command::Server2(a) => crate::server2::main(&addrs, &a).await,
            Command::Server3(a) => crate::server3::main(&addrs, &a).await,
            Command::Scenario { name } => crate::driver::play_one(&addrs, name).await,
            Command::Ping => crate::driver::ping(&addrs).await,
        }
    });
    // The servers' exporters and clients may still hold tasks: do not wait for them.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The error type of the commands: a message for the user.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn addresses_reach_children_as_flags() {
        let cli = Cli::parse_from(["demo", "--server3-grpc", "127.0.0.1:19999", "serve"]);
        let again = Cli::parse_from(
            std::iter::once("demo".to_owned())
                .chain(cli.addrs.to_args())
                .chain(["server1".to_owned()]),
        );
        assert_eq!(again.addrs.server3_grpc, "127.0.0.1:19999".parse().unwrap());
        assert_eq!(again.addrs.mysql_url, cli.addrs.mysql_url);
    }
}
