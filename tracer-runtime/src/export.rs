//! The OTLP exporter, run on a runtime of its own.
//!
//! The SDK's batch processor exports from its own thread. tonic and hyper need a tokio runtime,
//! and if that were the application's, a guard dropped at the end of a `current_thread`
//! runtime's `main` would wait for an export that needs the very thread it blocks. So the
//! exporter is built on, and every export runs on, a one-thread runtime that the guard owns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::error::InitError;
use crate::init::Protocol;

/// Builds the OTLP exporter for `protocol` on a new runtime.
pub(crate) fn otlp(
    protocol: Protocol,
    endpoint: Option<&str>,
) -> Result<
    (
        OnRuntime<opentelemetry_otlp::SpanExporter>,
        tokio::runtime::Runtime,
    ),
    InitError,
> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tracer-export")
        .enable_all()
        .build()
        .map_err(InitError::Runtime)?;
    let exporter = {
        let _entered = rt.enter();
        let builder = opentelemetry_otlp::SpanExporter::builder();
        match protocol {
            Protocol::Grpc => {
                let mut b = builder.with_tonic();
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                b.build()?
            }
            Protocol::HttpProtobuf => {
                let mut b = builder
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(http_traces_url(e));
                }
                b.build()?
            }
        }
    };
    let handle = rt.handle().clone();
    Ok((
        OnRuntime {
            inner: Arc::new(exporter),
            rt: handle,
        },
        rt,
    ))
}

/// `http://host:4318` -> `http://host:4318/v1/traces`; a URL with a path is kept.
fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// A span exporter whose exports run on `rt`.
pub(crate) struct OnRuntime<E> {
    inner: Arc<E>,
    rt: tokio::runtime::Handle,
}

impl<E: fmt::Debug> fmt::Debug for OnRuntime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnRuntime")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.rt.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "export task failed: {e}"
                )))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_urls_get_the_traces_path() {
        assert_eq!(
            super::http_traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            super::http_traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            super::http_traces_url("https://c.example/otlp/v1/traces"),
            "https://c.example/otlp/v1/traces"
        );
    }
}
