//! Which semantic-convention names tracer emits where the conventions are migrating.
//!
//! tracer follows the release that `opentelemetry-semantic-conventions` carries (1.42). For RPC,
//! whose conventions renamed attributes on their way to stability, `OTEL_SEMCONV_STABILITY_OPT_IN`
//! chooses, as the conventions' migration guide and Go's `otelgrpc` do:
//!
//! | `OTEL_SEMCONV_STABILITY_OPT_IN` | gRPC span attributes |
//! |---|---|
//! | unset (default) | `rpc.system`, `rpc.service`, `rpc.method` (`Method`), `rpc.grpc.status_code` (int) |
//! | `rpc` | `rpc.system.name`, `rpc.method` (`pkg.Service/Method`), `rpc.response.status_code` (`OK`, `NOT_FOUND`, ...) |
//! | `rpc/dup` | both; `rpc.method` takes the new, fully qualified value since the key is shared |
//!
//! `error.type` is set on every failed span whatever the choice.

use std::sync::OnceLock;

/// The RPC names to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rpc {
    pub(crate) old: bool,
    pub(crate) new: bool,
}

/// Parses an `OTEL_SEMCONV_STABILITY_OPT_IN` value (a comma-separated list).
pub(crate) fn parse_rpc(value: &str) -> Rpc {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.contains(&"rpc/dup") {
        Rpc {
            old: true,
            new: true,
        }
    } else if items.contains(&"rpc") {
        Rpc {
            old: false,
            new: true,
        }
    } else {
        Rpc {
            old: true,
            new: false,
        }
    }
}

/// The process's choice, read once.
pub(crate) fn rpc() -> Rpc {
    static RPC: OnceLock<Rpc> = OnceLock::new();
    *RPC.get_or_init(|| {
        parse_rpc(&std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_values() {
        assert_eq!(
            parse_rpc(""),
            Rpc {
                old: true,
                new: false
            }
        );
        assert_eq!(
            parse_rpc("http"),
            Rpc {
                old: true,
                new: false
            }
        );
        assert_eq!(
            parse_rpc("http, rpc"),
            Rpc {
                old: false,
                new: true
            }
        );
        assert_eq!(
            parse_rpc("rpc/dup,rpc"),
            Rpc {
                old: true,
                new: true
            }
        );
        assert_eq!(
            parse_rpc("database,rpc/dup"),
            Rpc {
                old: true,
                new: true
            }
        );
    }
}
