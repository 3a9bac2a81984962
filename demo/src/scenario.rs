//! The scenarios: each is one HTTP request to server1, and one trace.

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// server1 → server2 → server3 → MySQL and Redis, and server3 → server2 over gRPC.
    Normal,
    /// server1 → server2 → server1, over HTTP.
    NestedHttp,
    /// server2 → server3 → server2, over gRPC.
    NestedGrpc,
    /// server2's HTTP handler panics.
    HttpPanic,
    /// server3's gRPC handler panics.
    GrpcPanic,
    /// server3 queries a table that does not exist.
    MysqlError,
    /// server3 pushes onto a Redis key that holds a string (WRONGTYPE).
    RedisError,
    /// server1 → server2 → server3 → server2 → server1 → ..., with nothing to stop it but
    /// tracer's loop guard.
    CallLoop,
    /// server1 fans out into concurrent calls that queue for server3's one connection slot.
    LockContention,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 9] = [
        Scenario::Normal,
        Scenario::NestedHttp,
        Scenario::NestedGrpc,
        Scenario::HttpPanic,
        Scenario::GrpcPanic,
        Scenario::MysqlError,
        Scenario::RedisError,
        Scenario::CallLoop,
        Scenario::LockContention,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::NestedHttp => "nested-http",
            Scenario::NestedGrpc => "nested-grpc",
            Scenario::HttpPanic => "http-panic",
            Scenario::GrpcPanic => "grpc-panic",
            Scenario::MysqlError => "mysql-error",
            Scenario::RedisError => "redis-error",
            Scenario::CallLoop => "call-loop",
            Scenario::LockContention => "lock-contention",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// What the trace shows, in one line.
    pub(crate) fn summary(self) -> &'static str {
        match self {
            Scenario::Normal => {
                "server1 → server2 (HTTP) → server3 (gRPC) → MySQL, Redis; server3 → server2 (gRPC)"
            }
            Scenario::NestedHttp => "server1 → server2 → server1, over HTTP",
            Scenario::NestedGrpc => "server1 → server2, then server2 → server3 → server2 over gRPC",
            Scenario::HttpPanic => "server2's HTTP handler panics: a 500, then 502s back up",
            Scenario::GrpcPanic => "server3's gRPC handler panics: INTERNAL, then 502s back up",
            Scenario::MysqlError => "server3 queries a missing table",
            Scenario::RedisError => "server3 pushes onto a string key: WRONGTYPE",
            Scenario::CallLoop => {
                "server1 → server2 → server3 → server2 → server1 → ... until the loop guard stops it"
            }
            Scenario::LockContention => {
                "server1 → 3 concurrent calls → server3, which serializes them on one slot"
            }
        }
    }

    /// The HTTP status server1 answers when everything it needs is up: failures below it come
    /// back as 502 Bad Gateway.
    pub(crate) fn expected_status(self) -> u16 {
        match self {
            Scenario::HttpPanic
            | Scenario::GrpcPanic
            | Scenario::MysqlError
            | Scenario::RedisError
            | Scenario::CallLoop => 502,
            _ => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
            assert_eq!(
                s.to_possible_value().map(|v| v.get_name().to_owned()),
                Some(s.name().to_owned())
            );
        }
    }
}
