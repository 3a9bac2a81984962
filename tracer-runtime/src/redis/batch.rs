//! Pipelines and transactions: their commands queued, sent in one span.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fred::clients::{Pipeline, Transaction};
use fred::interfaces::{ClientLike, FredResult};
use fred::types::FromValue;
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::text::{TEXT_CAP, Text};
use super::{Meta, on_done, record_error};
use crate::db;

/// The commands queued in a pipeline or a transaction, for its span.
#[derive(Debug)]
pub(super) struct Batch {
    meta: Arc<Meta>,
    count: AtomicUsize,
    texts: Mutex<Queued>,
}

/// What the span tells of the queued commands: their texts, and whether they are all one
/// command (which one).
#[derive(Debug, Default)]
struct Queued {
    text: String,
    command: Option<&'static str>,
    mixed: bool,
}

impl Batch {
    pub(super) fn new(meta: &Arc<Meta>) -> Self {
        Batch {
            meta: Arc::clone(meta),
            count: AtomicUsize::new(0),
            texts: Mutex::new(Queued::default()),
        }
    }

    pub(super) fn queue(&self, command: &'static str, text: impl FnOnce(&mut Text<'_>)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !crate::switch::on() {
            return;
        }
        let mut buf = Vec::with_capacity(48);
        buf.extend_from_slice(command.as_bytes());
        let mut t = Text(&mut buf);
        text(&mut t);
        let mut queued = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        match queued.command {
            None => queued.command = Some(command),
            Some(c) => queued.mixed |= c != command,
        }
        let all = &mut queued.text;
        if all.len() >= TEXT_CAP {
            return;
        }
        if !all.is_empty() {
            all.push('\n');
        }
        all.push_str(&t.lossy());
        if all.len() > TEXT_CAP {
            let mut cut = TEXT_CAP;
            while !all.is_char_boundary(cut) {
                cut -= 1;
            }
            all.truncate(cut);
            all.push('…');
        }
    }

    /// The span of the batch, named `operation`; a pipeline (`same_named`) of two commands or
    /// more that are all one command `X` is `BATCH X`, as the conventions ask for a batch of
    /// operations of one name.
    pub(super) fn start(&self, operation: &'static str, same_named: bool) -> Option<db::Op> {
        db::start(self.meta.service(), None, || {
            let queued = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
            let text = Arc::from(queued.text.as_str());
            let operation: Cow<'static, str> = match queued.command {
                Some(c)
                    if same_named && !queued.mixed && self.count.load(Ordering::Relaxed) >= 2 =>
                {
                    crate::attrs::interned(&format!("BATCH {c}"))
                }
                _ => Cow::Borrowed(operation),
            };
            drop(queued);
            let mut a = self.meta.attrs(operation.clone(), Some(text));
            // One command is no batch (the conventions: the size SHOULD never be 1); an empty
            // one is, of size 0.
            let count = self.count.load(Ordering::Relaxed);
            if count != 1 {
                a.push(KeyValue::new(
                    semconv::DB_OPERATION_BATCH_SIZE,
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            (operation, a)
        })
    }
}

/// A traced fred [`Pipeline`], from [`Traced::pipeline`](super::Traced::pipeline).
#[derive(Debug)]
pub struct TracedPipeline<C: ClientLike> {
    pub(super) inner: Pipeline<C>,
    pub(super) batch: Batch,
}

impl<C: ClientLike> TracedPipeline<C> {
    pub(super) fn new(inner: Pipeline<C>, meta: &Arc<Meta>) -> Self {
        TracedPipeline {
            inner,
            batch: Batch::new(meta),
        }
    }

    /// Sends every queued command and returns all the results (fred's `all`), in a `PIPELINE`
    /// span (`BATCH <command>` when the commands are all one).
    pub async fn all<R: FromValue>(&self) -> FredResult<R> {
        let cx = self.batch.start("PIPELINE", true);
        db::run(cx, self.inner.all(), on_done).await
    }

    /// Sends every queued command and returns each result (fred's `try_all`); the span is Error
    /// when any command failed.
    pub async fn try_all<R: FromValue>(&self) -> Vec<FredResult<R>> {
        let cx = self.batch.start("PIPELINE", true);
        db::run(
            cx,
            self.inner.try_all(),
            |span, out: &Vec<FredResult<R>>| {
                if let Some(Err(e)) = out.iter().find(|r| r.is_err()) {
                    record_error(span, e);
                }
            },
        )
        .await
    }

    /// Sends every queued command and returns the last result (fred's `last`).
    pub async fn last<R: FromValue>(&self) -> FredResult<R> {
        let cx = self.batch.start("PIPELINE", true);
        db::run(cx, self.inner.last(), on_done).await
    }

    /// The wrapped pipeline (commands queued on it directly are not listed in the span).
    pub fn inner(&self) -> &Pipeline<C> {
        &self.inner
    }
}

/// A traced fred [`Transaction`], from [`Traced::multi`](super::Traced::multi).
#[derive(Debug)]
pub struct TracedTransaction {
    pub(super) inner: Transaction,
    pub(super) batch: Batch,
}

impl TracedTransaction {
    /// Runs the queued commands (`MULTI` ... `EXEC`, fred's `exec`) in one `MULTI` span.
    pub async fn exec<R: FromValue>(&self, abort_on_error: bool) -> FredResult<R> {
        let cx = self.batch.start("MULTI", false);
        db::run(cx, self.inner.exec(abort_on_error), on_done).await
    }

    /// How many commands are queued.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no command is queued.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// The wrapped transaction (commands queued on it directly are not listed in the span).
    pub fn inner(&self) -> &Transaction {
        &self.inner
    }
}
