//! server2: HTTP and gRPC. Called by server1 over HTTP; calls server3 over gRPC, and server1 over
//! HTTP (the nested HTTP call, and the call loop); called back by server3 over gRPC.

use std::fmt;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tracer_runtime::grpc::GrpcServerLayer;
use tracer_runtime::http::HttpServerLayer;
use tracer_runtime::traced;

use crate::config::{Addrs, Error, ServerArgs};
use crate::grpc::{describe, reply};
use crate::http::{Body, Caller, relay, text};
use crate::pb::server2_server::{Server2 as Server2Rpc, Server2Server};
use crate::pb::server3_client::Server3Client;
use crate::pb::{Hop, PingRequest, Reply};
use crate::scenario::Scenario;

pub(crate) const SERVICE: &str = "server2";

struct Server2 {
    caller: Caller,
    /// server1's HTTP base URL.
    server1: String,
    server3: Server3Client<crate::grpc::Traced>,
}

pub(crate) async fn main(addrs: &Addrs, args: &ServerArgs) -> Result<(), Error> {
    let guard = tracer_runtime::init(SERVICE)
        .with_prometheus(addrs.server2_metrics.to_string())
        .with_switch_endpoint(std::env::var("TRACER_SWITCH_TOKEN").ok())
        .install()?;
    crate::logging::install();
    let http_listener = TcpListener::bind(addrs.server2_http)
        .await
        .map_err(|e| format!("{SERVICE}: cannot listen on {}: {e}", addrs.server2_http))?;
    let grpc_listener = TcpListener::bind(addrs.server2_grpc)
        .await
        .map_err(|e| format!("{SERVICE}: cannot listen on {}: {e}", addrs.server2_grpc))?;
    // The driver waits for this line: the server is ready.
    println!(
        "{SERVICE}: HTTP on http://{}, gRPC on {}",
        addrs.server2_http, addrs.server2_grpc
    );
    let state = Arc::new(Server2 {
        caller: Caller::new(),
        server1: format!("http://{}", addrs.server1_http),
        server3: Server3Client::new(crate::grpc::channel(addrs.server3_grpc)),
    });
    let layer = HttpServerLayer::new(SERVICE).with_route(|_, uri, _| route(uri.path()));
    let handler = {
        let state = Arc::clone(&state);
        move |req| {
            let state = Arc::clone(&state);
            async move { state.handle(req).await }
        }
    };
    let grpc = tonic::transport::Server::builder()
        .layer(GrpcServerLayer::new(SERVICE))
        .add_service(Server2Server::new(Rpc(state)))
        .serve_with_incoming(TcpListenerStream::new(grpc_listener));
    tokio::select! {
        () = crate::http::serve(http_listener, layer, handler) => {}
        r = grpc => r.map_err(|e| format!("{SERVICE}: gRPC server: {e}"))?,
        () = crate::shutdown::requested(args.until_stdin_closes) => {}
    }
    drop(guard); // flushes the spans
    Ok(())
}

fn route(path: &str) -> Option<String> {
    let name = path.strip_prefix('/')?;
    Scenario::from_name(name).map(|_| path.to_owned())
}

impl Server2 {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        let Some(s) = path.strip_prefix('/').and_then(Scenario::from_name) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("{SERVICE}: no route {path}\n"),
            );
        };
        match s {
            Scenario::NestedHttp => {
                let url = format!("{}/nested", self.server1);
                relay(SERVICE, "server1", self.caller.get(&url).await)
            }
            Scenario::HttpPanic => panic!("http-panic: server2's handler panicked on purpose"),
            _ => self.work(s).await,
        }
    }

    /// Scenario `s`'s part past server2: server3's answer, as the HTTP answer to server1.
    async fn work(&self, s: Scenario) -> Response<Body> {
        match self.ask_server3(s.name()).await {
            Ok(answer) => text(StatusCode::OK, format!("{SERVICE} → {answer}")),
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("{SERVICE}: server3 answered {e}"),
            ),
        }
    }

    /// The business step: asks server3 to do its part of `scenario`. An INTERNAL span
    /// `ask_server3` around the gRPC call, its `scenario` argument recorded (`args`), and an
    /// error status with an `exception` event when server3 answers with an error (`err`).
    #[traced(err, args(scenario))]
    async fn ask_server3(&self, scenario: &str) -> Result<String, Server3Error> {
        let hop = Hop {
            scenario: scenario.to_owned(),
        };
        let reply = self.server3.clone().work(hop).await.map_err(Server3Error)?;
        Ok(reply.into_inner().text)
    }
}

/// server3's error answer, shown `CODE: message` (tonic's own `Display` adds its metadata): the
/// message of `ask_server3`'s `exception` event.
#[derive(Debug)]
struct Server3Error(Status);

impl fmt::Display for Server3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for Server3Error {}

struct Rpc(Arc<Server2>);

#[tonic::async_trait]
impl Server2Rpc for Rpc {
    /// server3 calling back: the end of the nested gRPC call, or a hop of the call loop.
    async fn callback(&self, req: tonic::Request<Hop>) -> Result<tonic::Response<Reply>, Status> {
        let hop = req.into_inner();
        match Scenario::from_name(&hop.scenario) {
            Some(Scenario::CallLoop) => {
                // On round the loop, unconditionally: tracer's loop guard ends it.
                let url = format!("{}/call-loop", self.0.server1);
                match self.0.caller.get(&url).await {
                    Ok((s, body)) if s.is_success() => Ok(reply(format!("{SERVICE} → {body}"))),
                    Ok((s, body)) => Err(Status::internal(format!(
                        "{SERVICE}: server1 answered {s}: {body}"
                    ))),
                    Err(e) => Err(Status::unavailable(format!(
                        "{SERVICE}: server1 did not answer: {e}"
                    ))),
                }
            }
            Some(_) => Ok(reply(format!("{SERVICE} (callback)"))),
            None => Err(Status::invalid_argument(format!(
                "no scenario named {:?}",
                hop.scenario
            ))),
        }
    }

    async fn ping(
        &self,
        _req: tonic::Request<PingRequest>,
    ) -> Result<tonic::Response<Reply>, Status> {
        Ok(reply(SERVICE))
    }
}
