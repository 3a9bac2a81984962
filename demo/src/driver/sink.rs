//! Where the servers send their spans: the receiver embedded in the driver, or the collector
//! the user configured.

use crate::config::Error;
use crate::receiver::{self, Store};

/// The collector the user configured, if any.
fn configured_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .filter_map(|v| std::env::var(v).ok())
    .find(|v| !v.trim().is_empty())
}

/// Where the spans go: the embedded receiver (and its store), or the configured collector.
pub(super) enum Sink {
    Embedded { endpoint: String, store: Store },
    External(String),
}

impl Sink {
    pub(super) async fn open() -> Result<Sink, Error> {
        Ok(match configured_endpoint() {
            Some(e) => Sink::External(e),
            None => {
                let (addr, store) = receiver::start()
                    .await
                    .map_err(|e| format!("cannot start the embedded OTLP receiver: {e}"))?;
                Sink::Embedded {
                    endpoint: format!("http://{addr}"),
                    store,
                }
            }
        })
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Sink::Embedded { endpoint, .. } => format!(
                "spans: OTLP/gRPC to the receiver embedded in this driver ({endpoint}); set \
                 OTEL_EXPORTER_OTLP_ENDPOINT to send them to Jaeger or any OTLP backend instead"
            ),
            Sink::External(e) => format!(
                "spans: to {e} (OTEL_EXPORTER_OTLP_ENDPOINT); the waterfalls need the embedded \
                 receiver, so only the trace ids are printed here (unset the variable to see them)"
            ),
        }
    }
}
