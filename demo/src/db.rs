//! server3's MySQL and Redis calls, through tracer's traced wrappers: a CLIENT span per
//! statement, command and connection attempt. Each helper is `#[traced(err)]`: an INTERNAL span
//! that groups the calls of one step and records the error the step returns.

use std::fmt;
use std::time::Duration;

use fred::prelude::{Builder, ClientLike as _, Config};
use tokio::sync::Mutex;
use tracer_runtime::mysql::TracedPool;
use tracer_runtime::redis::TracedClient;
use tracer_runtime::traced;

/// How long one database call may take, connecting included.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

/// The key of `normal`'s visit counter.
pub(crate) const VISITS_KEY: &str = "tracer-demo:visits";
/// The key `redis-error` writes a string under, then pushes onto as a list.
pub(crate) const GREETING_KEY: &str = "tracer-demo:greeting";

/// A database call's failure.
#[derive(Debug)]
pub(crate) enum DbError {
    Mysql(mysql_async::Error),
    Redis(fred::error::Error),
    Timeout,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Mysql(e) => write!(f, "{e}"),
            DbError::Redis(e) => write!(f, "{e}"),
            DbError::Timeout => write!(f, "no answer within {DB_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for DbError {}

async fn bounded<T, E>(
    fut: impl Future<Output = Result<T, E>>,
    wrap: impl FnOnce(E) -> DbError,
) -> Result<T, DbError> {
    match tokio::time::timeout(DB_TIMEOUT, fut).await {
        Ok(r) => r.map_err(wrap),
        Err(_) => Err(DbError::Timeout),
    }
}

pub(crate) struct Db {
    mysql: TracedPool,
    redis_config: Config,
    /// Connected at start-up when Redis is up, else on first use, and again after a failure:
    /// server3 starts whether or not Redis is up, and each scenario shows the state of the
    /// moment (a failed connection is a `redis connect` span in the scenario's trace).
    redis: Mutex<Option<TracedClient>>,
}

impl Db {
    /// Prepares the MySQL pool (it connects on first use) and connects to Redis if it is up.
    pub(crate) async fn new(mysql_url: &str, redis_url: &str) -> Result<Db, crate::config::Error> {
        let mysql = TracedPool::from_url(mysql_url)
            .map_err(|e| format!("invalid MySQL URL {mysql_url:?}: {e}"))?;
        let redis_config = Config::from_url(redis_url)
            .map_err(|e| format!("invalid Redis URL {redis_url:?}: {e}"))?;
        let db = Db {
            mysql,
            redis_config,
            redis: Mutex::new(None),
        };
        // Untraced: a connection made before any request belongs to no scenario's trace.
        if let Ok(client) = db.redis_client() {
            let connected = tokio::time::timeout(DB_TIMEOUT, client.inner().init()).await;
            if matches!(connected, Ok(Ok(_))) {
                *db.redis.lock().await = Some(client);
            }
        }
        Ok(db)
    }

    fn redis_client(&self) -> Result<TracedClient, DbError> {
        let client = Builder::from_config(self.redis_config.clone())
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
            .with_performance_config(|p| p.default_command_timeout = DB_TIMEOUT)
            .build()
            .map_err(DbError::Redis)?;
        Ok(TracedClient::new(client))
    }

    pub(crate) async fn close(&self) {
        let _ = self.mysql.inner().clone().disconnect().await;
        if let Some(c) = self.redis.lock().await.take() {
            let _ = c.inner().quit().await;
        }
    }

    /// A connected Redis client: the one made before, or a new one (a `redis connect` span).
    async fn redis(&self) -> Result<TracedClient, DbError> {
        let mut slot = self.redis.lock().await;
        if let Some(c) = &*slot
            && c.is_connected()
        {
            return Ok(c.clone());
        }
        let client = self.redis_client()?;
        bounded(client.init(), DbError::Redis).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// normal: the server's version.
    #[traced(err)]
    pub(crate) async fn mysql_version(&self) -> Result<String, DbError> {
        let mut conn = bounded(self.mysql.get_conn(), DbError::Mysql).await?;
        log::info!(target: "server3", "mysql: SELECT VERSION()");
        let v: Option<String> =
            bounded(conn.query_first("SELECT VERSION()"), DbError::Mysql).await?;
        Ok(v.unwrap_or_default())
    }

    /// mysql-error: a table that does not exist.
    #[traced(err)]
    pub(crate) async fn mysql_missing_table(&self) -> Result<(), DbError> {
        let mut conn = bounded(self.mysql.get_conn(), DbError::Mysql).await?;
        log::info!(target: "server3", "mysql: SELECT id, name FROM tracer_demo_missing_table WHERE id = ?");
        bounded(
            conn.query_drop("SELECT id, name FROM tracer_demo_missing_table WHERE id = 1"),
            DbError::Mysql,
        )
        .await
    }

    /// normal: a visit counter under `key` (recorded on the span: `args(key)`).
    #[traced(err, args(key))]
    pub(crate) async fn redis_visits(&self, key: &str) -> Result<i64, DbError> {
        let c = self.redis().await?;
        log::info!(target: "server3", "redis: INCR {key}");
        bounded(c.incr(key), DbError::Redis).await
    }

    /// redis-error: a string under `key`, then a list push onto it: WRONGTYPE.
    #[traced(err, args(key))]
    pub(crate) async fn redis_wrongtype(&self, key: &str) -> Result<(), DbError> {
        let c = self.redis().await?;
        log::info!(target: "server3", "redis: SET {key} ?");
        bounded(
            c.set::<(), _, _>(key, "hello", None, None, false),
            DbError::Redis,
        )
        .await?;
        log::info!(target: "server3", "redis: LPUSH {key} ?");
        bounded(c.lpush::<i64, _, _>(key, "world"), DbError::Redis)
            .await
            .map(drop)
    }
}
