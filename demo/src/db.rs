//! server3's MySQL and Redis calls, each a CLIENT span.

use std::fmt;
use std::time::Duration;

use fred::prelude::*;
use mysql_async::prelude::Queryable as _;
use tokio::sync::Mutex;
use tracer_runtime::traced;

/// How long one database call may take, connecting included.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

const VISITS_KEY: &str = "tracer-demo:visits";
const GREETING_KEY: &str = "tracer-demo:greeting";
const MISSING_TABLE_SQL: &str = "SELECT id, name FROM tracer_demo_missing_table WHERE id = 1";

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
    mysql: mysql_async::Pool,
    redis_config: Config,
    /// Connected on first use, and again after a failure: server3 starts whether or not Redis
    /// is up, and each scenario shows the state of the moment.
    redis: Mutex<Option<Client>>,
}

impl Db {
    pub(crate) fn new(mysql_url: &str, redis_url: &str) -> Result<Db, crate::cli::Error> {
        let opts = mysql_async::Opts::from_url(mysql_url)
            .map_err(|e| format!("invalid MySQL URL {mysql_url:?}: {e}"))?;
        let redis_config = Config::from_url(redis_url)
            .map_err(|e| format!("invalid Redis URL {redis_url:?}: {e}"))?;
        Ok(Db {
            mysql: mysql_async::Pool::new(opts),
            redis_config,
            redis: Mutex::new(None),
        })
    }

    pub(crate) async fn close(&self) {
        let _ = self.mysql.clone().disconnect().await;
        if let Some(c) = self.redis.lock().await.take() {
            let _ = c.quit().await;
        }
    }

    async fn redis(&self) -> Result<Client, DbError> {
        let mut slot = self.redis.lock().await;
        if let Some(c) = &*slot
            && c.is_connected()
        {
            return Ok(c.clone());
        }
        let client = Builder::from_config(self.redis_config.clone())
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
            .with_performance_config(|p| p.default_command_timeout = DB_TIMEOUT)
            .build()
            .map_err(DbError::Redis)?;
        bounded(client.init(), DbError::Redis).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// normal: `SELECT VERSION()`.
    #[traced(kind = client, err, name = "SELECT", fields(db.system.name = "mysql", db.query.text = "SELECT VERSION()"))]
    pub(crate) async fn mysql_version(&self) -> Result<String, DbError> {
        let mut conn = bounded(self.mysql.get_conn(), DbError::Mysql).await?;
        let v: Option<String> =
            bounded(conn.query_first("SELECT VERSION()"), DbError::Mysql).await?;
        Ok(v.unwrap_or_default())
    }

    /// mysql-error: a table that does not exist.
    #[traced(kind = client, err, name = "SELECT tracer_demo_missing_table", fields(db.system.name = "mysql", db.query.text = "SELECT id, name FROM tracer_demo_missing_table WHERE id = ?"))]
    pub(crate) async fn mysql_missing_table(&self) -> Result<(), DbError> {
        let mut conn = bounded(self.mysql.get_conn(), DbError::Mysql).await?;
        bounded(conn.query_drop(MISSING_TABLE_SQL), DbError::Mysql).await
    }

    /// normal: `INCR tracer-demo:visits`.
    #[traced(kind = client, err, name = "INCR", fields(db.system.name = "redis", db.query.text = "INCR tracer-demo:visits"))]
    pub(crate) async fn redis_visits(&self) -> Result<i64, DbError> {
        let c = self.redis().await?;
        bounded(c.incr(VISITS_KEY), DbError::Redis).await
    }

    /// redis-error: a string under the key, then a list push onto it: WRONGTYPE.
    pub(crate) async fn redis_wrongtype(&self) -> Result<(), DbError> {
        self.redis_set_greeting().await?;
        self.redis_push_greeting().await
    }

    #[traced(kind = client, err, name = "SET", fields(db.system.name = "redis", db.query.text = "SET tracer-demo:greeting ?"))]
    async fn redis_set_greeting(&self) -> Result<(), DbError> {
        let c = self.redis().await?;
        bounded(
            c.set::<(), _, _>(GREETING_KEY, "hello", None, None, false),
            DbError::Redis,
        )
        .await
    }

    #[traced(kind = client, err, name = "LPUSH", fields(db.system.name = "redis", db.query.text = "LPUSH tracer-demo:greeting ?"))]
    async fn redis_push_greeting(&self) -> Result<(), DbError> {
        let c = self.redis().await?;
        bounded(c.lpush::<i64, _, _>(GREETING_KEY, "world"), DbError::Redis)
            .await
            .map(drop)
    }
}
