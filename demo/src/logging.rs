//! The servers' logging: `env_logger` on standard error, through tracer's `LogBridge`, so each
//! record at INFO and above is also a `log` event on the span it was written in, and each line
//! written inside a span ends with `trace_id=… span_id=…`. `RUST_LOG` filters the lines as
//! usual (default `info`).

use log::LevelFilter;
use tracer_runtime::log_bridge::{self, LogBridge};

pub(crate) fn install() {
    let logger = env_logger::Builder::new()
        .filter_level(LevelFilter::Info)
        .parse_env("RUST_LOG")
        .format(log_bridge::write_record)
        .build();
    let level = logger.filter();
    // A second install in one process (tests) keeps the first logger.
    let _ = LogBridge::new(logger).inner_level(level).install();
}
