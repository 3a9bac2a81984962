//! The servers' metrics as the demo shows them: each server's `/metrics` read back after the
//! scenarios, a RED table per service (requests, errors, p50, p99 from the histograms), the
//! shipped alerts that would fire; and `demo serve --prometheus`, a real Prometheus scraping the
//! three servers with the shipped rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{Addrs, Error};
use crate::waterfall::Style;

/// The shipped rules, written next to the generated scrape configuration.
const ALERTS: &str = include_str!("../../prometheus/alerts.yml");

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Reads `http://addr/metrics`.
async fn fetch(addr: SocketAddr) -> Result<String, String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{addr}/metrics")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| format!("{addr}/metrics: no answer within 5 s"))?
        .map_err(|e| format!("{addr}/metrics: {e}"))?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{addr}/metrics: {e}"))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The samples of a Prometheus text exposition (comments and malformed lines skipped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels, rest) = match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) => (
                &line[..open],
                parse_labels(&line[open + 1..close]),
                &line[close + 1..],
            ),
            _ => match line.split_once(' ') {
                Some((n, r)) => (n, BTreeMap::new(), r),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(|v| match v {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse().ok(),
        }) else {
            continue;
        };
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_owned();
        let mut value = String::new();
        let mut end = rest.len();
        let mut chars = rest[eq + 2..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                c => value.push(c),
            }
        }
        out.insert(key, value);
        rest = &rest[end..];
    }
    out
}

/// The instruments the table shows: histogram name, kind shown, the alerts of its kind.
const INSTRUMENTS: [(&str, &str, Option<&str>, Option<&str>); 3] = [
    (
        "http_server_request_duration_seconds",
        "HTTP",
        Some("TracerHttpErrorRatioHigh"),
        Some("TracerHttpLatencyP99High"),
    ),
    (
        "rpc_server_call_duration_seconds",
        "gRPC",
        Some("TracerRpcErrorRatioHigh"),
        Some("TracerRpcLatencyP99High"),
    ),
    (
        "db_client_operation_duration_seconds",
        "DB",
        Some("TracerDbErrorRatioHigh"),
        None,
    ),
];

/// What an operation is called in the table (the labels the alert rules group by).
fn operation(kind: &str, l: &BTreeMap<String, String>) -> String {
    let get = |k: &str| l.get(k).map_or("", String::as_str);
    match kind {
        "HTTP" => format!("{} {}", get("http_request_method"), get("http_route"))
            .trim()
            .to_owned(),
        "gRPC" => format!("{}/{}", get("rpc_service"), get("rpc_method")),
        _ => format!("{} {}", get("db_system_name"), get("db_operation_name")),
    }
}

/// One row of the RED table.
#[derive(Debug, Default)]
struct Row {
    requests: f64,
    errors: f64,
    /// Cumulative counts by upper bound.
    buckets: BTreeMap<u64, (f64, f64)>,
}

impl Row {
    /// `histogram_quantile` as Prometheus computes it: linear within the bucket.
    fn quantile(&self, q: f64) -> Option<f64> {
        let mut bounds: Vec<(f64, f64)> = self.buckets.values().copied().collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = bounds.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut prev_le, mut prev_count) = (0.0, 0.0);
        for (le, count) in bounds {
            if count >= rank {
                if le.is_infinite() {
                    return Some(prev_le);
                }
                let in_bucket = count - prev_count;
                let frac = if in_bucket > 0.0 {
                    (rank - prev_count) / in_bucket
                } else {
                    1.0
                };
                return Some(prev_le + (le - prev_le) * frac);
            }
            (prev_le, prev_count) = (le, count);
        }
        None
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{:.1} ms", s * 1000.0))
}

/// One service's RED table and the alerts that would fire, as lines.
fn report(job: &str, samples: &[Sample]) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut firing = Vec::new();
    for (metric, kind, err_alert, p99_alert) in INSTRUMENTS {
        let mut rows: BTreeMap<String, Row> = BTreeMap::new();
        for s in samples {
            let Some(suffix) = s.name.strip_prefix(metric) else {
                continue;
            };
            let row = rows.entry(operation(kind, &s.labels)).or_default();
            match suffix {
                "_count" => {
                    row.requests += s.value;
                    if s.labels.get("error_type").is_some_and(|e| !e.is_empty()) {
                        row.errors += s.value;
                    }
                }
                "_bucket" => {
                    let le = match s.labels.get("le").map(String::as_str) {
                        Some("+Inf") => f64::INFINITY,
                        Some(v) => v.parse().unwrap_or(f64::INFINITY),
                        None => continue,
                    };
                    let b = row.buckets.entry(le.to_bits()).or_insert((le, 0.0));
                    b.1 += s.value;
                }
                _ => {}
            }
        }
        for (op, row) in rows.iter().filter(|(_, r)| r.requests > 0.0) {
            let (p50, p99) = (row.quantile(0.5), row.quantile(0.99));
            lines.push(format!(
                "  {kind:<5} {op:<40} {:>8} {:>7} {:>10} {:>10}",
                row.requests,
                row.errors,
                ms(p50),
                ms(p99)
            ));
            if let Some(a) = err_alert
                && row.errors / row.requests > 0.05
            {
                firing.push(format!(
                    "{a} {{job=\"{job}\"}} {op}: {:.0}% errors",
                    100.0 * row.errors / row.requests
                ));
            }
            if let (Some(a), Some(p99)) = (p99_alert, p99)
                && p99 > 1.0
            {
                firing.push(format!("{a} {{job=\"{job}\"}} {op}: p99 {}", ms(Some(p99))));
            }
        }
    }
    let dropped: f64 = samples
        .iter()
        .filter(|s| {
            s.name == "otel_sdk_exporter_span_exported_total"
                && s.labels.get("error_type").is_some_and(|e| !e.is_empty())
        })
        .map(|s| s.value)
        .sum();
    if dropped > 0.0 {
        firing.push(format!(
            "TracerSpansDropped {{job=\"{job}\"}}: {dropped} spans lost"
        ));
    }
    (lines, firing)
}

/// Prints each server's RED table and the shipped alerts that would fire on these numbers (the
/// rules' ratios and p99, over the whole run).
pub(crate) async fn print_report(addrs: &Addrs, style: Style) {
    println!(
        "{}",
        style
            .bold("RED metrics (every request, whatever the sampler), from each server's /metrics")
    );
    let mut firing = Vec::new();
    for (job, addr) in addrs.metrics() {
        println!("{job} (http://{addr}/metrics)");
        match fetch(addr).await {
            Ok(text) => {
                let (lines, f) = report(job, &parse(&text));
                println!(
                    "  {:<5} {:<40} {:>8} {:>7} {:>10} {:>10}",
                    "kind", "operation", "requests", "errors", "p50", "p99"
                );
                for l in lines {
                    println!("{l}");
                }
                firing.extend(f);
            }
            Err(e) => println!("{}", style.red(&format!("  cannot read the metrics: {e}"))),
        }
    }
    if firing.is_empty() {
        println!("alerts (prometheus/alerts.yml): none would fire");
    } else {
        println!("alerts (prometheus/alerts.yml) that would fire:");
        for f in firing {
            println!("{}", style.red(&format!("  {f}")));
        }
    }
    println!();
}

/// A Prometheus started by `demo serve --prometheus`; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Prometheus {
    child: tokio::process::Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The scrape configuration: the three servers every second, the shipped rules.
fn config(addrs: &Addrs, rules: &std::path::Path) -> String {
    let mut c = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n",
        rules.display()
    );
    for (job, addr) in addrs.metrics() {
        c.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ));
    }
    c
}

impl Prometheus {
    /// Starts `prometheus` from PATH on `listen`, its configuration and data in a temporary
    /// directory.
    pub(crate) async fn start(addrs: &Addrs, listen: SocketAddr) -> Result<Prometheus, Error> {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("tracer-demo-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let rules = dir.join("alerts.yml");
        std::fs::write(&rules, ALERTS).map_err(|e| format!("{}: {e}", rules.display()))?;
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config(addrs, &rules))
            .map_err(|e| format!("{}: {e}", cfg.display()))?;
        let log = std::fs::File::create(dir.join("prometheus.log"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start `prometheus` ({e}); install Debian's: apt-get install prometheus"
                )
            })?;
        let prom = Prometheus { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "prometheus did not listen on {listen} within 20 s; see {}",
                    dir.join("prometheus.log").display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "prometheus: http://{listen}/alerts (the shipped rules), http://{listen}/targets; \
             scraping the three servers every second (configuration in {})",
            cfg.display()
        );
        Ok(prom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x histogram
rpc_server_call_duration_seconds_count{rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"OK\"} 9
rpc_server_call_duration_seconds_count{rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"INTERNAL\",error_type=\"INTERNAL\"} 1
rpc_server_call_duration_seconds_bucket{le=\"0.1\",rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"OK\"} 9
rpc_server_call_duration_seconds_bucket{le=\"+Inf\",rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"OK\"} 9
rpc_server_call_duration_seconds_bucket{le=\"0.1\",rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"INTERNAL\",error_type=\"INTERNAL\"} 0
rpc_server_call_duration_seconds_bucket{le=\"+Inf\",rpc_service=\"demo.S\",rpc_method=\"Q\",rpc_response_status_code=\"INTERNAL\",error_type=\"INTERNAL\"} 1
otel_sdk_exporter_span_exported_total{error_type=\"export_failed\"} 0
# EOF
";

    #[test]
    fn red_rows_and_alerts_from_the_text() {
        let (lines, firing) = report("server3", &parse(TEXT));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("demo.S/Q"), "{lines:?}");
        assert!(
            lines[0].contains(" 10 ") && lines[0].contains(" 1 "),
            "{lines:?}"
        );
        assert_eq!(
            firing,
            ["TracerRpcErrorRatioHigh {job=\"server3\"} demo.S/Q: 10% errors"]
        );
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let mut r = Row::default();
        for (le, c) in [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)] {
            r.buckets.insert(f64::to_bits(le), (le, c));
        }
        assert!((r.quantile(0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((r.quantile(0.75).unwrap() - 0.15).abs() < 1e-9);
    }
}
