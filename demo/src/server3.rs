//! server3: gRPC. Called by server2; uses MySQL and Redis, and calls server2 back over gRPC.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tracer_runtime::grpc::GrpcServerLayer;

use crate::config::{Addrs, Error, ServerArgs};
use crate::db::Db;
use crate::grpc::{describe, reply};
use crate::pb::server2_client::Server2Client;
use crate::pb::server3_server::{Server3 as Server3Rpc, Server3Server};
use crate::pb::{Hop, PingRequest, Reply};
use crate::scenario::Scenario;

pub(crate) const SERVICE: &str = "server3";

/// lock-contention: how long a request holds the connection slot.
const SLOT_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

struct Server3 {
    db: Db,
    /// lock-contention: one "connection slot" (as HotROD simulates its MySQL), a traced lock:
    /// a request that waits for it gets a `lock connection-slot` span.
    slot: tracer_runtime::sync::Mutex<()>,
    server2: Server2Client<crate::grpc::Traced>,
}

pub(crate) async fn main(addrs: &Addrs, args: &ServerArgs) -> Result<(), Error> {
    let guard = tracer_runtime::init(SERVICE)
        .with_prometheus(addrs.server3_metrics.to_string())
        .with_switch_endpoint(std::env::var("TRACER_SWITCH_TOKEN").ok())
        .install()?;
    crate::logging::install();
    let listener = TcpListener::bind(addrs.server3_grpc)
        .await
        .map_err(|e| format!("{SERVICE}: cannot listen on {}: {e}", addrs.server3_grpc))?;
    // The driver waits for this line: the server is ready.
    println!("{SERVICE}: gRPC on {}", addrs.server3_grpc);
    let state = Server3 {
        db: Db::new(&addrs.mysql_url, &addrs.redis_url).await?,
        slot: tracer_runtime::sync::Mutex::new("connection-slot", ()),
        server2: Server2Client::new(crate::grpc::channel(addrs.server2_grpc)),
    };
    let state = Arc::new(state);
    let grpc = tonic::transport::Server::builder()
        .layer(GrpcServerLayer::new(SERVICE))
        .add_service(Server3Server::new(Rpc(Arc::clone(&state))))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::select! {
        r = grpc => r.map_err(|e| format!("{SERVICE}: gRPC server: {e}"))?,
        () = crate::shutdown::requested(args.until_stdin_closes) => {}
    }
    state.db.close().await;
    drop(guard); // flushes the spans
    Ok(())
}

impl Server3 {
    async fn callback(&self, scenario: Scenario) -> Result<String, Status> {
        let hop = Hop {
            scenario: scenario.name().to_owned(),
        };
        match self.server2.clone().callback(hop).await {
            Ok(r) => Ok(r.into_inner().text),
            Err(status) => Err(Status::internal(format!(
                "{SERVICE}: server2 answered {}",
                describe(&status)
            ))),
        }
    }

    /// lock-contention: the work done holding the one connection slot.
    async fn with_slot(&self) -> String {
        let _slot = self.slot.lock().await;
        log::info!(target: SERVICE, "holding the connection slot for {SLOT_HOLD:?}");
        tokio::time::sleep(SLOT_HOLD).await;
        format!("{SERVICE} (held the connection slot)")
    }

    /// normal: one MySQL query, one Redis command, one call back to server2; every step runs
    /// even when one before it failed, so each shows in the trace.
    async fn normal(&self) -> Result<String, Status> {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        match self.db.mysql_version().await {
            Ok(v) => done.push(format!("MySQL {v}")),
            Err(e) => failed.push(format!("mysql: {e}")),
        }
        match self.db.redis_visits(crate::db::VISITS_KEY).await {
            Ok(n) => done.push(format!("Redis visits={n}")),
            Err(e) => failed.push(format!("redis: {e}")),
        }
        match self.callback(Scenario::Normal).await {
            Ok(text) => done.push(format!("→ {text}")),
            Err(status) => failed.push(status.message().to_owned()),
        }
        if failed.is_empty() {
            Ok(format!("{SERVICE}: {}", done.join(", ")))
        } else {
            log::warn!(target: SERVICE, "normal: {}", failed.join("; "));
            Err(Status::internal(failed.join("; ")))
        }
    }
}

struct Rpc(Arc<Server3>);

#[tonic::async_trait]
impl Server3Rpc for Rpc {
    async fn work(&self, req: tonic::Request<Hop>) -> Result<tonic::Response<Reply>, Status> {
        let hop = req.into_inner();
        let s = &self.0;
        let text = match Scenario::from_name(&hop.scenario) {
            Some(Scenario::Normal) => s.normal().await?,
            Some(Scenario::NestedGrpc) => {
                let text = s.callback(Scenario::NestedGrpc).await?;
                format!("{SERVICE} → {text}")
            }
            Some(Scenario::GrpcPanic) => {
                panic!("grpc-panic: server3's handler panicked on purpose")
            }
            Some(Scenario::MysqlError) => {
                s.db.mysql_missing_table().await.map_err(|e| {
                    log::error!(target: SERVICE, "mysql-error: {e}");
                    Status::internal(format!("mysql: {e}"))
                })?;
                format!("{SERVICE}: the missing table was found")
            }
            Some(Scenario::RedisError) => {
                s.db.redis_wrongtype(crate::db::GREETING_KEY)
                    .await
                    .map_err(|e| {
                        log::error!(target: SERVICE, "redis-error: {e}");
                        Status::internal(format!("redis: {e}"))
                    })?;
                format!("{SERVICE}: Redis accepted a list push onto a string")
            }
            Some(Scenario::LockContention) => s.with_slot().await,
            Some(Scenario::CallLoop) => {
                // On round the loop, unconditionally: tracer's loop guard ends it.
                let text = s.callback(Scenario::CallLoop).await?;
                format!("{SERVICE} → {text}")
            }
            _ => {
                return Err(Status::invalid_argument(format!(
                    "{SERVICE} has no part in scenario {:?}",
                    hop.scenario
                )));
            }
        };
        Ok(reply(text))
    }

    async fn ping(
        &self,
        _req: tonic::Request<PingRequest>,
    ) -> Result<tonic::Response<Reply>, Status> {
        Ok(reply(SERVICE))
    }
}
