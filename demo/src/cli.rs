//! The command line: every address is a flag and an environment variable.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Addrs, ServerArgs};
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
