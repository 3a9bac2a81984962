//! Playing the scenarios against server1, and `demo run`: every scenario, each trace drawn.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::sink::Sink;
use super::supervisor::{Servers, database_hints};
use crate::config::{Addrs, Error};
use crate::receiver::Store;
use crate::scenario::Scenario;
use crate::waterfall::{self, Style};

/// How long the driver waits for a scenario's answer, and then for its spans.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);
const TRACE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) type PlainClient = Client<HttpConnector, Empty<Bytes>>;

pub(super) fn plain_client() -> PlainClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What one scenario request gave.
pub(super) struct Played {
    pub(super) status: StatusCode,
    body: String,
    trace_id: Option<String>,
    took: Duration,
}

/// The URL that starts scenario `s` at server1.
fn scenario_url(addrs: &Addrs, s: Scenario) -> String {
    format!("http://{}/scenario/{}", addrs.server1_http, s.name())
}

/// The trace id of a `traceresponse: 00-<trace id>-<span id>-<flags>` header.
fn trace_id_of(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

pub(super) async fn play(client: &PlainClient, url: &str) -> Result<Played, String> {
    let started = Instant::now();
    let req = Request::get(url)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| crate::http::with_causes(&e))?;
        let status = resp.status();
        let trace_id = resp
            .headers()
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Played {
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
            trace_id,
            took: started.elapsed(),
        })
    };
    tokio::time::timeout(SCENARIO_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {SCENARIO_TIMEOUT:?}")))
}

fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let mut s: String = line.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Plays `s`, prints its progress line, its answer and its `scenario <name> trace_id=<id>`
/// line. Returns the trace id, or why there is none.
async fn play_and_print(
    client: &PlainClient,
    addrs: &Addrs,
    s: Scenario,
    progress: &str,
    style: Style,
) -> Result<String, String> {
    let url = scenario_url(addrs, s);
    println!(
        "{} {} — {}",
        style.dim(progress),
        style.bold(s.name()),
        s.summary()
    );
    let played = match play(client, &url).await {
        Ok(p) => p,
        Err(e) => {
            println!("      GET {url} → {}", style.red(&format!("failed: {e}")));
            return Err(format!("{}: GET {url} failed: {e}", s.name()));
        }
    };
    let expected = if played.status.as_u16() == s.expected_status() {
        "as expected".to_owned()
    } else {
        style.red(&format!("expected {}", s.expected_status()))
    };
    println!(
        "      GET {url} → {} in {} ({expected}): {}",
        played.status,
        waterfall::duration(played.took.as_nanos() as u64),
        style.dim(&clip(&played.body, 120)),
    );
    let Some(id) = played.trace_id else {
        return Err(format!(
            "{}: server1 answered without a traceresponse header (is tracing switched off?)",
            s.name()
        ));
    };
    println!("scenario {} trace_id={id}", s.name());
    Ok(id)
}

async fn print_trace(store: &Store, trace_id: &str, style: Style) {
    let (spans, complete) = store.wait_for(trace_id, TRACE_TIMEOUT).await;
    print!("{}", waterfall::render(&spans, style));
    if !complete {
        println!(
            "  {}",
            style.dim(&format!(
                "(some spans had not arrived after {TRACE_TIMEOUT:?}: the trace may be incomplete)"
            ))
        );
    }
}

/// `demo` / `demo run`.
pub(crate) async fn run(addrs: &Addrs) -> Result<(), Error> {
    let style = Style::detect();
    let sink = Sink::open().await?;
    println!(
        "{}",
        style.bold("tracer demo: three services, nine scenarios, one trace each")
    );
    println!("{}", style.dim(&sink.describe()));
    let hints = database_hints(addrs);
    for h in &hints {
        println!("{}", style.red(&format!("note: {h}")));
    }
    println!(
        "starting server1 (HTTP {}), server2 (HTTP {}, gRPC {}), server3 (gRPC {}) ...",
        addrs.server1_http, addrs.server2_http, addrs.server2_grpc, addrs.server3_grpc
    );
    let started = Instant::now();
    let mut servers = Servers::start(addrs, &sink).await?;
    println!(
        "ready in {}\n",
        waterfall::duration(started.elapsed().as_nanos() as u64)
    );

    let client = plain_client();
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for (i, s) in Scenario::ALL.into_iter().enumerate() {
        let progress = format!("[{}/{}]", i + 1, Scenario::ALL.len());
        match play_and_print(&client, addrs, s, &progress, style).await {
            Ok(id) => {
                if let Sink::Embedded { store, .. } = &sink {
                    print_trace(store, &id, style).await;
                }
                servers.print_log_lines(&id, style);
                ids.push((s, id));
            }
            Err(e) => failures.push(e),
        }
        println!();
        if let Some(name) = servers.exited() {
            failures.push(format!("{name} stopped:\n{}", servers.log_text(name)));
            break;
        }
    }

    crate::metrics::print_report(addrs, style).await;
    println!("stopping the servers ...");
    let clean = servers.stop().await;
    if let Sink::External(endpoint) = &sink {
        println!("the spans went to {endpoint}; if that is Jaeger, open:");
        for (s, id) in &ids {
            println!("  {:<12} http://127.0.0.1:16686/trace/{id}", s.name());
        }
    }
    for h in &hints {
        println!("{}", style.red(&format!("note: {h}")));
    }
    if !failures.is_empty() {
        return Err(failures.join("\n").into());
    }
    if !clean {
        return Err("a server did not stop cleanly".into());
    }
    println!("done: {} scenarios played", ids.len());
    Ok(())
}

/// `demo scenario <name>`: one scenario against running servers.
pub(crate) async fn play_one(addrs: &Addrs, s: Scenario) -> Result<(), Error> {
    let style = Style::detect();
    play_and_print(&plain_client(), addrs, s, "[1/1]", style).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_from_traceresponse() {
        assert_eq!(
            trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }
}
