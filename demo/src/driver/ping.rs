//! `demo ping`: do the servers answer?

use std::net::SocketAddr;
use std::time::Duration;

use super::play::{plain_client, play};
use crate::config::{Addrs, Error};

/// `demo ping`: HTTP `/healthz` on server1 and server2, gRPC `Ping` on server2 and server3, none
/// of them traced.
pub(crate) async fn ping(addrs: &Addrs) -> Result<(), Error> {
    let client = plain_client();
    let mut failed = Vec::new();
    for (name, addr) in [
        ("server1", addrs.server1_http),
        ("server2", addrs.server2_http),
    ] {
        let url = format!("http://{addr}/healthz");
        match play(&client, &url).await {
            Ok(p) if p.status.is_success() => println!("{name} HTTP {addr}: ok"),
            Ok(p) => failed.push(format!("{name} HTTP {addr}: {}", p.status)),
            Err(e) => failed.push(format!("{name} HTTP {addr}: {e}")),
        }
    }
    let grpc = |addr: SocketAddr| {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map(|e| e.timeout(Duration::from_secs(5)).connect_lazy())
    };
    let req = crate::pb::PingRequest {};
    let r2 = match grpc(addrs.server2_grpc) {
        Ok(ch) => crate::pb::server2_client::Server2Client::new(ch)
            .ping(req)
            .await
            .map_err(|s| crate::grpc::describe(&s)),
        Err(e) => Err(e.to_string()),
    };
    let r3 = match grpc(addrs.server3_grpc) {
        Ok(ch) => crate::pb::server3_client::Server3Client::new(ch)
            .ping(req)
            .await
            .map_err(|s| crate::grpc::describe(&s)),
        Err(e) => Err(e.to_string()),
    };
    for (name, addr, r) in [
        ("server2", addrs.server2_grpc, r2),
        ("server3", addrs.server3_grpc, r3),
    ] {
        match r {
            Ok(_) => println!("{name} gRPC {addr}: ok"),
            Err(e) => failed.push(format!("{name} gRPC {addr}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("not answering: {}", failed.join("; ")).into())
    }
}
