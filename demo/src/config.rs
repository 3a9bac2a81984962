//! What the servers, the driver and the command line share: where everything listens, the
//! error type of the commands, and the timeouts of the calls between the services.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// How long a call to another server may take before the caller gives up.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The error type of the commands: a message for the user.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

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

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Stop when standard input closes (how the driver stops its children, and why they never
    /// outlive it).
    #[arg(long, hide = true)]
    pub(crate) until_stdin_closes: bool,
}
