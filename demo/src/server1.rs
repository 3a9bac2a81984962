//! server1: HTTP. Every scenario starts here; it calls server2 over HTTP, and answers server2's
//! nested calls.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracer_runtime::http::HttpServerLayer;
use tracer_runtime::traced;

use crate::config::{Addrs, Error, ServerArgs};
use crate::http::{Body, Caller, relayed, text};
use crate::scenario::Scenario;

pub(crate) const SERVICE: &str = "server1";

struct Server1 {
    caller: Caller,
    /// server2's HTTP base URL.
    server2: String,
}

pub(crate) async fn main(addrs: &Addrs, args: &ServerArgs) -> Result<(), Error> {
    let guard = tracer_runtime::init(SERVICE)
        .with_prometheus(addrs.server1_metrics.to_string())
        .with_switch_endpoint(std::env::var("TRACER_SWITCH_TOKEN").ok())
        .install()?;
    crate::logging::install();
    let listener = TcpListener::bind(addrs.server1_http)
        .await
        .map_err(|e| format!("{SERVICE}: cannot listen on {}: {e}", addrs.server1_http))?;
    // The driver waits for this line: the server is ready.
    println!("{SERVICE}: HTTP on http://{}", addrs.server1_http);
    let state = Arc::new(Server1 {
        caller: Caller::new(),
        server2: format!("http://{}", addrs.server2_http),
    });
    // `traceresponse` tells the driver (or curl) the trace id of each scenario.
    let layer = HttpServerLayer::new(SERVICE)
        .with_trace_response(true)
        .with_route(|_, uri, _| route(uri.path()));
    let handler = move |req| {
        let state = Arc::clone(&state);
        async move { state.handle(req).await }
    };
    tokio::select! {
        () = crate::http::serve(listener, layer, handler) => {}
        () = crate::shutdown::requested(args.until_stdin_closes) => {}
    }
    drop(guard); // flushes the spans
    Ok(())
}

/// The route template of a path (each scenario's entry is a route of its own).
fn route(path: &str) -> Option<String> {
    let known = match path.strip_prefix("/scenario/") {
        Some(name) => Scenario::from_name(name).is_some(),
        None => matches!(path, "/nested" | "/call-loop"),
    };
    known.then(|| path.to_owned())
}

impl Server1 {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if let Some(name) = path.strip_prefix("/scenario/") {
            let (status, body) = match Scenario::from_name(name) {
                Some(s) => self.scenario(s).await,
                None => (
                    StatusCode::NOT_FOUND,
                    format!("{SERVICE}: no scenario named {name:?}"),
                ),
            };
            // The end of the chain: a line for curl.
            return text(status, format!("{body}\n"));
        }
        match path {
            // nested-http: server2 calls back here.
            "/nested" => text(StatusCode::OK, format!("{SERVICE} (nested)")),
            "/call-loop" => {
                let (status, body) = self.call_loop().await;
                text(status, body)
            }
            _ => text(
                StatusCode::NOT_FOUND,
                format!("{SERVICE}: no route {path}\n"),
            ),
        }
    }

    async fn scenario(&self, s: Scenario) -> (StatusCode, String) {
        match s {
            Scenario::CallLoop => self.call_loop().await,
            Scenario::LockContention => self.fan_out(s).await,
            _ => {
                let url = format!("{}/{}", self.server2, s.name());
                relayed(SERVICE, "server2", self.caller.get(&url).await)
            }
        }
    }

    /// lock-contention: three concurrent calls down to server3, which serializes them. An
    /// INTERNAL span `fan_out`, parent of the three calls, the scenario recorded (`args(s)`).
    #[traced(args(s))]
    async fn fan_out(&self, s: Scenario) -> (StatusCode, String) {
        let url = format!("{}/{}", self.server2, s.name());
        let (a, b, c) = tokio::join!(
            self.caller.get(&url),
            self.caller.get(&url),
            self.caller.get(&url)
        );
        let answers = [a, b, c].map(|r| relayed(SERVICE, "server2", r));
        match answers.iter().find(|(status, _)| !status.is_success()) {
            Some(failed) => failed.clone(),
            None => (StatusCode::OK, answers.map(|(_, body)| body).join(" | ")),
        }
    }

    /// A hop of the call loop: on to server2, unconditionally (tracer's loop guard ends it).
    async fn call_loop(&self) -> (StatusCode, String) {
        let url = format!("{}/call-loop", self.server2);
        relayed(SERVICE, "server2", self.caller.get(&url).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/scenario/normal").as_deref(),
            Some("/scenario/normal")
        );
        assert_eq!(route("/scenario/nope"), None);
        assert_eq!(route("/call-loop").as_deref(), Some("/call-loop"));
        assert_eq!(route("/users/7"), None);
    }
}
