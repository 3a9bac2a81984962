//! A ratio sampler samples its ratio of Redis commands made outside any span (each a root): a
//! root the sampler declines is not asked about again in another trace. Its own binary: the
//! sampler is the process's. Against the real server on 127.0.0.1:6379.

#[path = "support/redis.rs"]
mod redis_support;

use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler};

#[tokio::test]
async fn root_commands_are_sampled_at_the_ratio() {
    redis_support::require_redis();
    let exporter = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("redis-sampling")
        .with_exporter(exporter.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            0.5,
        ))))
        .install()
        .unwrap();
    let client = redis_support::traced_client().await;
    let n = 800;
    let key = format!("tracer-test:{}:sampling", std::process::id());
    for _ in 0..n {
        let _: Option<String> = client.get(&key).await.unwrap();
    }
    guard.flush().unwrap();
    let sampled = exporter
        .get_finished_spans()
        .unwrap()
        .iter()
        .filter(|s| s.name == "GET")
        .count();
    // Binomial(800, 0.5): mean 400, standard deviation ~14; asked twice, a declined root would
    // be sampled with probability 0.75 (mean 600).
    assert!(
        (310..=490).contains(&sampled),
        "{sampled} of {n} root commands sampled at a ratio of 0.5"
    );
    guard.shutdown().unwrap();
}
