//! The scenarios: each is one HTTP request to server1, and one trace.

use clap::ValueEnum;

/// Hops the call loop makes by default: twice round server1 → server2 → server3 → server2.
pub(crate) const DEFAULT_MAX_DEPTH: u32 = 8;
/// The servers clamp a requested maximum depth to this, so no request can make them loop long.
pub(crate) const MAX_DEPTH_LIMIT: u32 = 32;

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
    /// server1 → server2 → server3 → server2 → server1 → ..., until the depth the request
    /// carries reaches its maximum.
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
                "server1 → server2 → server3 → server2 → server1 → ... to the max depth"
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
            | Scenario::RedisError => 502,
            _ => 200,
        }
    }
}

/// A hop's place in the call loop, carried in the query string (HTTP) or the message (gRPC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Depth {
    pub(crate) depth: u32,
    pub(crate) max: u32,
}

impl Depth {
    pub(crate) fn new(depth: u32, max: u32) -> Depth {
        Depth {
            depth,
            max: max.min(MAX_DEPTH_LIMIT),
        }
    }

    pub(crate) fn reached(self) -> bool {
        self.depth >= self.max
    }

    pub(crate) fn next(self) -> Depth {
        Depth::new(self.depth + 1, self.max)
    }

    /// From `depth=..&max_depth=..` (missing values: depth 0, the default maximum).
    pub(crate) fn from_query(query: Option<&str>) -> Depth {
        let mut depth = 0;
        let mut max = DEFAULT_MAX_DEPTH;
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("depth", v)) => depth = v.parse().unwrap_or(0),
                Some(("max_depth", v)) => max = v.parse().unwrap_or(DEFAULT_MAX_DEPTH),
                _ => {}
            }
        }
        Depth::new(depth, max)
    }

    pub(crate) fn query(self) -> String {
        format!("depth={}&max_depth={}", self.depth, self.max)
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

    #[test]
    fn depth_is_bounded() {
        let d = Depth::from_query(Some("depth=3&max_depth=1000000"));
        assert_eq!(d, Depth::new(3, MAX_DEPTH_LIMIT));
        assert_eq!(Depth::from_query(None), Depth::new(0, DEFAULT_MAX_DEPTH));
        assert!(Depth::new(8, 8).reached() && !Depth::new(7, 8).reached());
        assert_eq!(
            Depth::from_query(Some(&Depth::new(2, 5).query())),
            Depth::new(2, 5)
        );
    }
}
