//! What server2 and server3 share on the gRPC side: traced clients over lazy channels.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tracer_runtime::grpc::{GrpcClient, GrpcClientLayer};

use crate::config::CALL_TIMEOUT;
use crate::pb;

/// A channel behind a CLIENT span per RPC (the context in the metadata).
pub(crate) type Traced = GrpcClient<Channel>;

/// A traced channel to `addr`; it connects on first use, so the servers may start in any order.
pub(crate) fn channel(addr: SocketAddr) -> Traced {
    let uri: http::Uri = format!("http://{addr}")
        .parse()
        .expect("a socket address makes a valid URI");
    let channel = Endpoint::from(uri.clone())
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new().with_server_uri(&uri))
        .service(channel)
}

pub(crate) fn reply(text: impl Into<String>) -> tonic::Response<pb::Reply> {
    tonic::Response::new(pb::Reply { text: text.into() })
}

/// `CODE: message`, for a relayed error.
pub(crate) fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
