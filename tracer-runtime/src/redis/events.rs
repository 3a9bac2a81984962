//! The connection events fred reports, as spans: `redis reconnect`, `redis connection error`.

use std::borrow::Cow;
use std::sync::Arc;

use fred::clients::{Client, Pool};
use fred::interfaces::EventInterface;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::{Meta, on_done};
use crate::db;

/// The clients whose connection events the wrapper listens to: a [`Client`] itself, each
/// client of a [`Pool`].
pub trait ConnectionEvents {
    /// The clients to listen to.
    fn event_clients(&self) -> Vec<Client>;
}

impl ConnectionEvents for Client {
    fn event_clients(&self) -> Vec<Client> {
        vec![self.clone()]
    }
}

impl ConnectionEvents for Pool {
    fn event_clients(&self) -> Vec<Client> {
        self.clients().to_vec()
    }
}

/// The next event, skipping over any missed while the listener lagged; `None` once the client
/// is gone.
async fn next<T: Clone>(rx: &mut tokio::sync::broadcast::Receiver<T>) -> Option<T> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(v) => return Some(v),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}

pub(super) fn listen_client(client: &Client, meta: &Arc<Meta>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut reconnects = client.reconnect_rx();
    let m = Arc::clone(meta);
    rt.spawn(async move {
        while let Some(server) = next(&mut reconnects).await {
            if !m.setup() {
                continue;
            }
            let cx = db::start(m.service(), Some(&Context::new()), || {
                let mut a = m.attrs(Cow::Borrowed("CONNECT"), None);
                a.retain(|kv| kv.key.as_str() != semconv::SERVER_ADDRESS);
                a.retain(|kv| kv.key.as_str() != semconv::SERVER_PORT);
                a.push(KeyValue::new(
                    semconv::SERVER_ADDRESS,
                    server.host.to_string(),
                ));
                a.push(KeyValue::new(semconv::SERVER_PORT, i64::from(server.port)));
                (Cow::Borrowed("redis reconnect"), a)
            });
            db::run(cx, async {}, |_, _| {}).await;
        }
    });
    let mut errors = client.error_rx();
    let m = Arc::clone(meta);
    rt.spawn(async move {
        while let Some((error, _server)) = next(&mut errors).await {
            let cx = db::start(m.service(), Some(&Context::new()), || {
                (
                    Cow::Borrowed("redis connection error"),
                    m.attrs(Cow::Borrowed("CONNECT"), None),
                )
            });
            let _ = db::run(cx, async { Err::<(), _>(error) }, on_done).await;
        }
    });
}
