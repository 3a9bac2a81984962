//! The queue between finished spans and the exporter: bounded by bytes, every drop counted.
//!
//! The SDK's `BatchSpanProcessor` holds 2 048 spans, drops the rest without a word when a burst
//! outruns the exporter, and on shutdown waits one export timeout to flush and another to shut
//! down. [`Batcher`] replaces it for every exporter tracer sets up:
//!
//! - the queue is bounded by an estimate of the spans' memory (default [`DEFAULT_QUEUE_BYTES`],
//!   [`Builder::with_max_queue_bytes`](crate::Builder::with_max_queue_bytes)), and by a count
//!   only when `OTEL_BSP_MAX_QUEUE_SIZE` is set;
//! - a span that does not fit is dropped and counted ([`stats`](crate::stats)`().dropped`), with a
//!   [`Warning::SpansDropped`] at once and then at most one per [`WARN_EVERY`], with the total;
//! - a worker thread of its own exports batches of `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512) as
//!   soon as one is full, and whatever is queued every `OTEL_BSP_SCHEDULE_DELAY` (5 s); it needs
//!   no tokio runtime (the OTLP and Zipkin exporters run on one of their own, see `export.rs`);
//! - flushing and shutting down wait at most one export timeout (`OTEL_BSP_EXPORT_TIMEOUT`, else
//!   `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT`, else 5 s) in all; what
//!   is still queued then is counted as dropped, and the guard's `shutdown()` reports it;
//! - spans the collector rejects in an export it answers (an OTLP partial success, which the
//!   exporter reports as a success: its transport notes them in [`Rejections`]) are counted as
//!   dropped, not exported, with a [`Warning::SpansRejected`], and the shutdown reports them too;
//! - an exporter that panics (one given to `with_exporter` is the user's code) does not kill
//!   the worker: a panic in an export fails that export (its spans counted as lost in a failed
//!   export, with a [`Warning::ExportFailed`] saying the exporter panicked), and the next batch
//!   goes to the exporter as usual; a panic in its `set_resource` or `shutdown` is ignored.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::InitError;

use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::recorder::Ended;
use crate::stats;
use crate::warn::{Throttle, Warning, warn};

/// What a pipeline's worker hands its batches to: an exporter of the SDK's (see [`Sdk`]), or
/// one of tracer's that also takes the recorder's spans as they were recorded ([`Ended`]), so
/// that no `SpanData` is made for them (the OTLP/gRPC exporter, which writes its bytes itself).
pub(crate) trait Export: Send + 'static {
    /// Whether it takes [`Ended`] spans.
    fn takes_ended(&self) -> bool {
        false
    }
    /// Exports a batch: `spans` made `SpanData`, and `ended` as they were recorded (none unless
    /// [`takes_ended`](Self::takes_ended)).
    fn export(
        &self,
        spans: Vec<SpanData>,
        ended: Vec<Ended>,
    ) -> impl Future<Output = OTelSdkResult> + Send;
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult;
    fn set_resource(&mut self, resource: &Resource);
}

/// An exporter of the SDK's, which takes `SpanData` only.
#[derive(Debug)]
pub(crate) struct Sdk<E>(pub(crate) E);

impl<E: SpanExporter + 'static> Export for Sdk<E> {
    fn export(
        &self,
        mut spans: Vec<SpanData>,
        ended: Vec<Ended>,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        // Never given any (`takes_ended` is false); made `SpanData` if it were.
        spans.extend(ended.into_iter().map(Ended::into_data));
        self.0.export(spans)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// The default bound of a pipeline's queue: 128 MiB of spans (about 200 000 `#[traced]` spans).
pub(crate) const DEFAULT_QUEUE_BYTES: usize = 128 << 20;

/// At most one [`Warning::SpansDropped`] per this interval (the first one at once).
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The most spans a new batch makes room for at once.
const MAX_BATCH_ROOM: usize = 4096;

/// The batch settings, from the builder and the `OTEL_BSP_*` variables.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_queue_spans: Option<usize>,
    pub(crate) max_batch: usize,
    pub(crate) delay: Duration,
    pub(crate) timeout: Duration,
    /// The longest a string attribute value may be, in characters (`None`: no limit; see
    /// [`limit_values`]).
    pub(crate) max_value_chars: Option<usize>,
}

impl Config {
    /// The settings from the environment, `max_queue_bytes` from the builder if it was given; a
    /// malformed number is an error naming its variable.
    pub(crate) fn from_env(max_queue_bytes: Option<usize>) -> Result<Config, InitError> {
        let num = crate::env::number;
        // A timeout of 0 would give up on every export and every wait at once: with the
        // collector up, the guard would drop whatever is queued. Refused, naming its variable
        // (OpenTelemetry's file configuration reads 0 as "no limit", which would let a hung
        // collector hold the program's exit forever: not that either).
        let timeout_of = |var: &'static str| -> Result<Option<u64>, InitError> {
            match num(var)? {
                Some(0) => Err(InitError::InvalidConfig(format!(
                    "{var} `0`: a timeout of 0 would drop every span still queued at shutdown; \
                     give a number of milliseconds above 0"
                ))),
                n => Ok(n),
            }
        };
        let timeout = timeout_of("OTEL_BSP_EXPORT_TIMEOUT")?
            .or(timeout_of("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?)
            .or(timeout_of("OTEL_EXPORTER_OTLP_TIMEOUT")?)
            .map_or(Duration::from_secs(5), Duration::from_millis);
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Config {
            max_queue_bytes: max_queue_bytes.unwrap_or(DEFAULT_QUEUE_BYTES).max(1),
            max_queue_spans: num("OTEL_BSP_MAX_QUEUE_SIZE")?.map(|n| to_usize(n).max(1)),
            max_batch: num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")?.map_or(512, |n| to_usize(n).max(1)),
            delay: num("OTEL_BSP_SCHEDULE_DELAY")?
                .map_or(Duration::from_secs(5), Duration::from_millis),
            timeout,
            max_value_chars: num("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")?
                .or(num("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")?)
                .map(to_usize),
        })
    }
}

/// What the collector rejected in the exports of one exporter, noted by its transport as the
/// answers come (the `rejected_spans` of an OTLP partial success, or the `rejected_data_points`
/// for the metrics exporter) and taken after each export by its pipeline (the metrics
/// exporter's wrapper, `red/otlp.rs`): the exporter itself says Ok.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    /// Spans, or data points.
    count: AtomicU64,
    /// The latest partial success's error message.
    message: Mutex<String>,
}

impl Rejections {
    /// An answer rejected `count` spans or data points (none when 0 or less), saying `message`.
    #[cfg_attr(not(feature = "_otlp"), allow(dead_code))]
    pub(crate) fn note(&self, count: i64, message: &str) {
        let Ok(n @ 1..) = u64::try_from(count) else {
            return;
        };
        self.count.fetch_add(n, Ordering::Relaxed);
        *self.message.lock().unwrap_or_else(PoisonError::into_inner) = message.to_owned();
    }

    /// The spans (or data points) rejected since the previous call, and the latest message.
    pub(crate) fn take(&self) -> (u64, String) {
        let n = self.count.swap(0, Ordering::Relaxed);
        if n == 0 {
            return (0, String::new());
        }
        let message =
            std::mem::take(&mut *self.message.lock().unwrap_or_else(PoisonError::into_inner));
        (n, message)
    }
}

/// A span processor that queues finished spans for an exporter on a thread of its own.
pub(crate) struct Batcher {
    shared: Arc<Shared>,
}

/// What the guard and the service keep of a pipeline: its queue (the collector hands it spans) and its bound.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Shared>);

impl Handle {
    /// Spans this pipeline dropped so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The queue's bound, for the report.
    pub(crate) fn max_queue_bytes(&self) -> usize {
        self.0.config.max_queue_bytes
    }

    /// Whether its exporter takes the recorder's spans as they were recorded ([`Ended`]): it
    /// does, and no limit on the values' length is to be applied to them.
    #[inline]
    pub(crate) fn takes_ended(&self) -> bool {
        self.0.ended
    }
}

struct Shared {
    config: Config,
    /// The exporter takes [`Ended`] spans (see [`Handle::takes_ended`]).
    ended: bool,
    /// Its service's counters.
    counts: Arc<stats::Counts>,
    /// What the collector rejected in the exporter's exports, when its transport says.
    rejections: Option<Arc<Rejections>>,
    queue: Mutex<Queue>,
    /// The worker waits on it for spans, a flush or the shutdown.
    wake: Condvar,
    /// Flushes and the shutdown wait on it for the worker's progress.
    progress: Condvar,
    dropped: AtomicU64,
    /// A shutdown gave up waiting and counted what was left as dropped.
    abandoned: std::sync::atomic::AtomicBool,
    warned: Mutex<Throttle<u64>>,
}

#[derive(Default)]
struct Queue {
    /// The queued spans in batches of at most `max_batch`, each allocated at its full size once:
    /// no span is moved again until the exporter gets its batch.
    batches: VecDeque<Batch>,
    /// Spans queued.
    len: usize,
    bytes: usize,
    /// Spans accepted since the start.
    pushed: u64,
    /// Spans the worker took from the queue.
    taken: u64,
    /// Spans whose export finished (exported or failed).
    settled: u64,
    /// Spans the exporter accepted: the progress a flush and the shutdown wait on (a failed
    /// export is none: a collector that does not answer fails every export after the exporter's
    /// own timeout, and would hold the shutdown that long per batch).
    exported: u64,
    /// Spans in exports that failed.
    failed: u64,
    /// Spans the collector rejected in exports it answered.
    rejected: u64,
    /// A flush wants every span up to here taken.
    flush_to: u64,
    shutdown: bool,
    /// When the guard began this pipeline's shutdown ([`Handle::begin_shutdown`]), which the
    /// processor's shutdown has not waited for yet: its export timeout runs from then.
    begun: Option<Instant>,
    /// The worker has exported everything and stopped.
    finished: bool,
    resource: Option<Resource>,
}

/// Queued spans that leave together, and their weight (see [`weight`]).
struct Batch {
    spans: Vec<SpanData>,
    /// The recorder's spans as they were recorded, for an exporter that takes them.
    ended: Vec<Ended>,
    bytes: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.spans.len() + self.ended.len()
    }
}

/// What a batch holds: a `SpanData`, or an [`Ended`] span.
trait Item: Sized {
    fn list(batch: &mut Batch) -> &mut Vec<Self>;
    /// Its values cut to `max` characters (see [`limit_values`]); never asked of an [`Ended`]
    /// span (a pipeline with a limit takes none).
    fn limit(&mut self, max: usize);
    fn weight(&self) -> usize;
}

impl Item for SpanData {
    #[inline(always)]
    fn list(batch: &mut Batch) -> &mut Vec<SpanData> {
        &mut batch.spans
    }
    #[inline(always)]
    fn limit(&mut self, max: usize) {
        limit_values(self, max);
    }
    #[inline(always)]
    fn weight(&self) -> usize {
        weight(self) as usize
    }
}

impl Item for Ended {
    #[inline(always)]
    fn list(batch: &mut Batch) -> &mut Vec<Ended> {
        &mut batch.ended
    }
    fn limit(&mut self, _max: usize) {}
    #[inline(always)]
    fn weight(&self) -> usize {
        Ended::weight(self)
    }
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// A pipeline to `exporter`, its worker thread started; what the collector rejects is read
    /// from `rejections` after each export. Fails only if the thread cannot be spawned.
    pub(crate) fn new<E: Export>(
        exporter: E,
        rejections: Option<Arc<Rejections>>,
        config: Config,
        counts: Arc<stats::Counts>,
    ) -> std::io::Result<(Batcher, Handle)> {
        let ended = exporter.takes_ended() && config.max_value_chars.is_none();
        let shared = Arc::new(Shared {
            ended,
            config,
            counts,
            rejections,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            progress: Condvar::new(),
            dropped: AtomicU64::new(0),
            abandoned: std::sync::atomic::AtomicBool::new(false),
            warned: Mutex::new(Throttle::new(WARN_EVERY, 0)),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("tracer-batch".to_owned())
            .spawn(move || worker.run(exporter))?;
        Ok((
            Batcher {
                shared: Arc::clone(&shared),
            },
            Handle(shared),
        ))
    }
}

impl Drop for Batcher {
    /// A pipeline that no processor holds any more stops its worker (after an export of what
    /// is queued) instead of leaving it waiting forever: its service's guard shut it down
    /// already, or an `install()` that failed after making it dropped it.
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        if !q.shutdown {
            q.shutdown = true;
            drop(q);
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` spans lost and warns, at most once per [`WARN_EVERY`].
    #[inline]
    fn dropped(&self, n: u64, why: &'static str) {
        if n != 0 {
            self.lost(n, why);
        }
    }

    #[cold]
    fn lost(&self, n: u64, why: &'static str) {
        stats::spans_dropped(&self.counts, n);
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let due = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(Instant::now(), |since| *since += n);
        let Some(dropped) = due else { return };
        warn(Warning::SpansDropped {
            dropped,
            total,
            reason: why,
        });
    }

    /// The worker: exports full batches at once, the rest every `delay`, everything on a flush
    /// or the shutdown; then stops. Never inlined: the benchmarks count the export thread's
    /// instructions by this function's name (callgrind's `--toggle-collect`).
    #[inline(never)]
    fn run<E: Export>(&self, mut exporter: E) {
        let mut last_export = Instant::now();
        let mut q = self.lock();
        loop {
            if let Some(r) = q.resource.take() {
                // A panic here leaves the exporter without the resource, and the worker running.
                let _ = unpanicked(|| exporter.set_resource(&r));
            }
            let due = |q: &Queue| {
                q.batches.len() > 1
                    || q.len >= self.config.max_batch
                    || q.taken < q.flush_to
                    || q.shutdown
            };
            let timer = last_export.elapsed() >= self.config.delay;
            if !(due(&q) || timer && q.len > 0) {
                if timer {
                    last_export = Instant::now();
                }
                let wait = self
                    .config
                    .delay
                    .saturating_sub(last_export.elapsed())
                    .max(Duration::from_millis(1));
                q = self
                    .wake
                    .wait_timeout(q, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let Some(batch) = q.batches.pop_front() else {
                if q.shutdown {
                    drop(q);
                    let _ = unpanicked(|| exporter.shutdown_with_timeout(self.config.timeout));
                    let mut q = self.lock();
                    q.finished = true;
                    self.progress.notify_all();
                    return;
                }
                q.flush_to = q.flush_to.min(q.taken);
                self.progress.notify_all();
                continue;
            };
            let n = batch.len();
            q.len -= n;
            q.bytes -= batch.bytes;
            q.taken += n as u64;
            drop(q);
            last_export = Instant::now();
            // An exporter of the user's that panics fails this export: its spans are lost and
            // counted, and the worker goes on with the next batch.
            let result = unpanicked(|| {
                futures_executor::block_on(exporter.export(batch.spans, batch.ended))
            })
            .unwrap_or_else(|message| {
                Err(OTelSdkError::InternalFailure(format!(
                    "the exporter panicked: {message}"
                )))
            });
            // What the collector rejected of this batch (never more than the batch), taken after
            // a failed export too: it belongs to no other.
            let (rejected, message) = self
                .rejections
                .as_ref()
                .map(|r| r.take())
                .unwrap_or_default();
            let rejected = rejected.min(n as u64);
            let mut accepted = false;
            if self.abandoned.load(Ordering::Relaxed) {
                // Counted as dropped by the shutdown that gave up on this export.
            } else if let Err(e) = &result {
                stats::export_failed(&self.counts, n as u64, e);
            } else {
                stats::exported(&self.counts, n as u64 - rejected);
                if rejected > 0 {
                    stats::spans_rejected(&self.counts, rejected, &message);
                }
                accepted = true;
            }
            q = self.lock();
            q.settled += n as u64;
            if accepted {
                // The collector answered: progress, whatever it kept.
                q.exported += n as u64;
                q.rejected += rejected;
            } else {
                q.failed += n as u64;
            }
            self.progress.notify_all();
        }
    }

    /// Waits until every span accepted before the call has been exported, or until the exporter
    /// has accepted nothing for one export timeout.
    /// An export that failed meanwhile is an error: the spans it held are lost; so are spans the
    /// collector rejected meanwhile.
    fn flush(&self) -> OTelSdkResult {
        let mut q = self.lock();
        let (failed, rejected) = (q.failed, q.rejected);
        let target = q.pushed;
        q.flush_to = q.flush_to.max(target);
        self.wake.notify_one();
        let mut stalled = Stall::new(self.config.timeout, q.exported);
        while q.settled < target && !q.finished {
            let Some(left) = stalled.left(q.exported) else {
                return Err(OTelSdkError::Timeout(self.config.timeout));
            };
            q = self
                .progress
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        match (q.failed - failed, q.rejected - rejected) {
            (0, 0) => Ok(()),
            (lost, 0) => Err(OTelSdkError::InternalFailure(format!(
                "{lost} span(s) lost in exports that failed"
            ))),
            (0, rejected) => Err(OTelSdkError::InternalFailure(format!(
                "{rejected} span(s) rejected by the collector"
            ))),
            (lost, rejected) => Err(OTelSdkError::InternalFailure(format!(
                "{lost} span(s) lost in exports that failed, {rejected} rejected by the collector"
            ))),
        }
    }
}

impl Handle {
    /// Begins the shutdown: the worker exports what is queued and stops, and the processor's
    /// `shutdown_with_timeout` then waits for it, its export timeout counted from now. The guard
    /// begins every pipeline's shutdown at once, so that pipelines to a collector that does not
    /// answer cost one export timeout in all, not one each (the provider shuts its processors
    /// down one after the other).
    pub(crate) fn begin_shutdown(&self) {
        let mut q = self.0.lock();
        if !q.shutdown {
            q.shutdown = true;
            q.begun = Some(Instant::now());
            drop(q);
            self.0.wake.notify_one();
        }
    }

    /// Queues `spans`, each made a `SpanData` (or, when the exporter [takes
    /// them](Self::takes_ended), an [`Ended`] span) by `data` as it is queued, under one lock:
    /// the collector's hand-over of a service's spans.
    #[allow(private_bounds)]
    pub(crate) fn push_all<T, I: Item>(
        &self,
        spans: impl Iterator<Item = T>,
        data: impl FnMut(T) -> I,
    ) {
        self.0.push_all(spans, data);
    }
}

impl Shared {
    /// Queues `spans`, each made a `SpanData` by `data`; those that do not fit (or come after
    /// the shutdown) are dropped and counted.
    fn push_all<T, I: Item>(&self, spans: impl Iterator<Item = T>, mut data: impl FnMut(T) -> I) {
        let (mut full, mut shut, mut wake) = (0, 0, false);
        let mut q = self.lock();
        for span in spans {
            match self.push(&mut q, || data(span)) {
                Ok(w) => wake |= w,
                Err(Refused::Full) => full += 1,
                Err(Refused::Shut) => shut += 1,
            }
        }
        drop(q);
        self.dropped(full, "the export queue is full");
        self.dropped(shut, "the pipeline is shut down");
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queues the span `make` makes in `q`: whether a batch is now full (the worker is to be
    /// woken), or why it was refused. The span is made in its batch's slot and weighed there
    /// (a `SpanData` is a few hundred bytes: made elsewhere, it would be copied in), and taken
    /// out again when it does not fit.
    #[inline(always)]
    fn push<I: Item>(&self, q: &mut Queue, make: impl FnOnce() -> I) -> Result<bool, Refused> {
        if q.shutdown {
            return Err(Refused::Shut);
        }
        if self.config.max_queue_spans.is_some_and(|max| q.len >= max) {
            return Err(Refused::Full);
        }
        let max_batch = self.config.max_batch;
        if q.batches.back().is_none_or(|b| b.len() >= max_batch) {
            // A batch size from the environment may be huge (2^31 - 1): room for a first part
            // of it, the rest as it fills; in the list this pipeline's spans mostly go to.
            let room = max_batch.min(MAX_BATCH_ROOM);
            let (data, ended) = if self.ended { (0, room) } else { (room, 0) };
            q.batches.push_back(Batch {
                spans: Vec::with_capacity(data),
                ended: Vec::with_capacity(ended),
                bytes: 0,
            });
        }
        let Some(open) = q.batches.back_mut() else {
            return Err(Refused::Full);
        };
        let list = I::list(open);
        list.push(make());
        if let Some(max) = self.config.max_value_chars
            && let Some(s) = list.last_mut()
        {
            s.limit(max);
        }
        let w = list.last().map_or(0, I::weight);
        if q.bytes + w > self.config.max_queue_bytes {
            list.pop();
            if open.len() == 0 {
                q.batches.pop_back();
            }
            return Err(Refused::Full);
        }
        open.bytes += w;
        let wake = open.len() == max_batch;
        q.len += 1;
        q.bytes += w;
        q.pushed += 1;
        Ok(wake)
    }
}

/// Runs `f`, a call into the exporter (the user's own, given to `with_exporter`), on the
/// worker: a panic in it is caught and returned as its message, so that the worker lives on (a
/// worker that died would leave every later span queued until the shutdown gave up on it).
fn unpanicked<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|payload| crate::panic::payload_message(&*payload))
}

/// Why a span was not queued.
enum Refused {
    Full,
    Shut,
}

/// The export timeout, counted from the exporter's latest progress (spans it accepted): a
/// backlog drains whole into a collector that answers, and one that does not answer (whose
/// exports hang, or fail one after the other) is given up on after one timeout.
struct Stall {
    timeout: Duration,
    since: Instant,
    exported: u64,
}

impl Stall {
    fn new(timeout: Duration, exported: u64) -> Stall {
        Stall {
            timeout,
            since: Instant::now(),
            exported,
        }
    }

    /// The time left to wait, `None` when the exporter has accepted nothing for the whole
    /// timeout.
    fn left(&mut self, exported: u64) -> Option<Duration> {
        if exported != self.exported {
            self.exported = exported;
            self.since = Instant::now();
        }
        let left = self.timeout.saturating_sub(self.since.elapsed());
        (!left.is_zero()).then_some(left)
    }
}

impl SpanProcessor for Batcher {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let s = &self.shared;
        let mut q = s.lock();
        let pushed = s.push(&mut q, || span);
        drop(q);
        match pushed {
            Ok(true) => s.wake.notify_one(),
            Ok(false) => {}
            Err(Refused::Full) => s.dropped(1, "the export queue is full"),
            Err(Refused::Shut) => s.dropped(1, "the pipeline is shut down"),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.shared.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let s = &self.shared;
        let timeout = timeout.min(s.config.timeout);
        let mut q = s.lock();
        let since = match q.begun.take() {
            Some(begun) => begun,
            None if q.shutdown => return Err(OTelSdkError::AlreadyShutdown),
            None => {
                q.shutdown = true;
                s.wake.notify_one();
                Instant::now()
            }
        };
        let mut stalled = Stall::new(timeout, q.exported);
        stalled.since = since;
        while !q.finished {
            let Some(left) = stalled.left(q.exported) else {
                // The exporter does not answer: what it has not taken is lost, and what it holds
                // is lost with it when its runtime goes.
                let lost = q.pushed.saturating_sub(q.settled);
                q.bytes = 0;
                q.batches.clear();
                q.len = 0;
                q.settled = q.pushed;
                s.abandoned.store(true, Ordering::Relaxed);
                drop(q);
                s.dropped(
                    lost,
                    "the exporter did not answer within the export timeout",
                );
                return Err(OTelSdkError::Timeout(timeout));
            };
            q = s
                .progress
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.lock().resource = Some(resource.clone());
        self.shared.wake.notify_one();
    }
}

/// An estimate of the memory a queued span holds (saturating at 4 GiB): the struct and what its attributes, events
/// and links point to.
#[inline(always)]
fn weight(s: &SpanData) -> u32 {
    // Most spans: a borrowed name and nothing in their lists.
    if s.attributes.is_empty()
        && s.events.events.is_empty()
        && s.links.links.is_empty()
        && matches!(s.name, std::borrow::Cow::Borrowed(_))
    {
        return std::mem::size_of::<SpanData>() as u32;
    }
    weight_of_lists(s)
}

/// Cuts every string attribute value of `s` longer than `max` characters to its first `max`
/// (each string of an array too), on the span, its events and its links, as the standard
/// attribute value length limit asks; other values stay as they are. Weighed after: a value cut
/// takes no room in the queue.
#[cold]
fn limit_values(s: &mut SpanData, max: usize) {
    let cut_one = |v: &mut opentelemetry::StringValue| {
        if let Some(t) = truncated(v.as_str(), max) {
            *v = t.into();
        }
    };
    let cut = |kvs: &mut [KeyValue]| {
        for kv in kvs {
            match &mut kv.value {
                Value::String(v) => cut_one(v),
                Value::Array(opentelemetry::Array::String(list)) => {
                    list.iter_mut().for_each(cut_one)
                }
                _ => {}
            }
        }
    };
    cut(&mut s.attributes);
    for e in s.events.events.iter_mut() {
        cut(&mut e.attributes);
    }
    for l in s.links.links.iter_mut() {
        cut(&mut l.attributes);
    }
}

/// `text`'s first `max` characters, when it has more.
fn truncated(text: &str, max: usize) -> Option<String> {
    // Never more characters than bytes: a text that short is kept without counting.
    if text.len() <= max {
        return None;
    }
    let (end, _) = text.char_indices().nth(max)?;
    text.get(..end).map(str::to_owned)
}

/// What a list of attributes weighs in the queue: the list, and the texts of its keys and
/// string values (an array counted as 64 bytes).
pub(crate) fn attrs_weight(a: &[KeyValue]) -> usize {
    std::mem::size_of_val(a)
        + a.iter()
            .map(|kv| {
                kv.key.as_str().len()
                    + match &kv.value {
                        Value::String(v) => v.as_str().len(),
                        Value::Array(_) => 64,
                        _ => 0,
                    }
            })
            .sum::<usize>()
}

/// [`weight`] of a span with a name or lists of its own.
#[inline(never)]
fn weight_of_lists(s: &SpanData) -> u32 {
    use std::mem::size_of;
    let attrs = attrs_weight;
    let name = match &s.name {
        std::borrow::Cow::Owned(n) => n.len(),
        std::borrow::Cow::Borrowed(_) => 0,
    };
    let bytes = size_of::<SpanData>()
        + name
        + attrs(&s.attributes)
        + s.events
            .events
            .iter()
            .map(|e| size_of::<opentelemetry::trace::Event>() + e.name.len() + attrs(&e.attributes))
            .sum::<usize>()
        + s.links
            .links
            .iter()
            .map(|l| size_of::<opentelemetry::trace::Link>() + attrs(&l.attributes))
            .sum::<usize>();
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::sync::atomic::AtomicUsize;

    fn span(i: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("span {i}").into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![KeyValue::new("i", i as i64)],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    impl SpanExporter for Count {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn config(bytes: usize) -> Config {
        Config {
            max_queue_bytes: bytes,
            max_queue_spans: None,
            max_batch: 512,
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_value_chars: None,
        }
    }

    #[test]
    fn texts_are_cut_to_a_number_of_characters() {
        assert_eq!(truncated("abc", 3), None);
        assert_eq!(truncated("abcd", 3).as_deref(), Some("abc"));
        assert_eq!(truncated("abcd", 0).as_deref(), Some(""));
        // Four characters in eight bytes: within a limit of four, cut at a character's edge
        // below it.
        assert_eq!(truncated("éééé", 4), None);
        assert_eq!(truncated("éééé", 3).as_deref(), Some("ééé"));
        assert_eq!(truncated("", 0), None);
    }

    #[test]
    fn everything_accepted_is_exported_by_a_flush_and_by_the_shutdown() {
        let count = Count::default();
        let (b, h) = Batcher::new(
            Sdk(count.clone()),
            None,
            config(DEFAULT_QUEUE_BYTES),
            stats::Counts::new(),
        )
        .unwrap();
        for i in 0..1500 {
            b.on_end(span(i));
        }
        b.force_flush().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1500);
        for i in 0..10 {
            b.on_end(span(i));
        }
        b.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1510);
        assert_eq!(h.dropped(), 0);
        b.on_end(span(0));
        assert_eq!(h.dropped(), 1, "a span after the shutdown is counted");
    }

    #[test]
    fn spans_past_the_byte_bound_are_dropped_and_counted() {
        #[derive(Debug)]
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Count);
        impl SpanExporter for Stuck {
            async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
                let (m, c) = &*self.0;
                let mut go = m.lock().unwrap();
                while !*go {
                    go = c.wait(go).unwrap();
                }
                assert!(!batch.is_empty(), "an empty batch was exported");
                self.1.0.fetch_add(batch.len(), Ordering::SeqCst);
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let exported = Count::default();
        let w = weight(&span(100));
        let mut c = config(10 * w as usize);
        c.max_batch = 1;
        let (b, h) = Batcher::new(
            Sdk(Stuck(Arc::clone(&gate), exported.clone())),
            None,
            c,
            stats::Counts::new(),
        )
        .unwrap();
        for i in 100..200 {
            b.on_end(span(i));
        }
        // One span may be in the exporter's hands, ten queued: the rest dropped.
        let dropped = h.dropped();
        assert!((89..=90).contains(&dropped), "{dropped}");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        b.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(h.dropped(), dropped);
        // A refused span is made, weighed and taken out again: what was not dropped is
        // exported, in batches none of which is empty.
        assert_eq!(exported.0.load(Ordering::SeqCst) as u64 + dropped, 100);
    }

    #[test]
    fn spans_the_collector_rejects_are_counted_lost_not_exported() {
        /// Accepts every batch, its collector rejecting `reject` spans of each (more than a
        /// batch holds, for the second batch on: a collector's count is not trusted past it).
        #[derive(Debug)]
        struct Rejecting(Arc<Rejections>, AtomicUsize);
        impl SpanExporter for Rejecting {
            async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
                let reject = match self.1.fetch_add(1, Ordering::SeqCst) {
                    0 => 3,
                    _ => batch.len() as i64 + 5,
                };
                self.0.note(-1, "ignored");
                self.0.note(reject, "over quota");
                Ok(())
            }
        }
        let rejections = Arc::new(Rejections::default());
        let counts = stats::Counts::new();
        // No batch fills (512 spans): the first export is the flush's, so the flush sees its
        // rejection. (With batches of 10, the worker could export the first one before the
        // flush began, and the flush then rightly found nothing new: the test failed under
        // load.)
        let (b, h) = Batcher::new(
            Sdk(Rejecting(Arc::clone(&rejections), AtomicUsize::new(0))),
            Some(rejections),
            config(DEFAULT_QUEUE_BYTES),
            Arc::clone(&counts),
        )
        .unwrap();
        for i in 0..10 {
            b.on_end(span(i));
        }
        let e = b.force_flush().unwrap_err();
        assert!(e.to_string().contains("3 span(s) rejected"), "{e}");
        let s = counts.snapshot();
        assert_eq!((s.exported, s.rejected_by_collector, s.dropped), (7, 3, 3));
        for i in 0..4 {
            b.on_end(span(i));
        }
        b.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        let s = counts.snapshot();
        assert_eq!((s.exported, s.rejected_by_collector, s.dropped), (7, 7, 7));
        assert_eq!(h.dropped(), 0, "none dropped before export");
    }
}
