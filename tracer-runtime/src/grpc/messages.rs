//! `rpc.message` events: which messages of a call become events, the cap per span, and the
//! reader that turns one direction's bytes into events (and payload events).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use opentelemetry::KeyValue;

use crate::stack::span::SpanCx;

use super::framing::{FrameEvent, Frames};
use super::payloads::Tap;

/// Default cap on `rpc.message` events per span.
pub const DEFAULT_MAX_MESSAGE_EVENTS: usize = 128;

/// Which messages become `rpc.message` events.
///
/// The semantic conventions deprecated the `rpc.message` event and Go's `otelgrpc` dropped it;
/// for a unary call it repeats what the span already says. For streams, per-message timing is
/// what users of tracer asked for. So by default ([`MessageEvents::Streaming`]) a call's events
/// are recorded once it turns out to be a stream: a call that carries a second message in either
/// direction gets every message as an event (the first ones with their own times); a call that
/// ends with at most one message each way, as a unary call does, gets none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageEvents {
    /// Events for streaming calls only (the default).
    #[default]
    Streaming,
    /// Events for every call, unary too.
    All,
    /// No `rpc.message` events (payload events asked for with `with_payloads` still are).
    None,
}

/// A message seen before the call was known to be a stream.
#[derive(Debug)]
struct Pending {
    at: std::time::SystemTime,
    sent: bool,
    compressed: bool,
    len: u32,
    id: u64,
}

/// Per-span message-event accounting, shared by the request and response bodies of one RPC.
#[derive(Debug)]
pub(crate) struct Messages {
    cap: usize,
    mode: MessageEvents,
    recorded: AtomicUsize,
    dropped: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
    /// `Streaming` mode: the messages held back until a second one in a direction shows a stream
    /// (at most the first of each direction, in the order they came: no allocation).
    pending: std::sync::Mutex<Option<[Option<Pending>; 2]>>,
}

impl Messages {
    pub(crate) fn new(cap: usize, mode: MessageEvents) -> Self {
        Messages {
            cap,
            mode,
            recorded: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            pending: std::sync::Mutex::new(
                (mode == MessageEvents::Streaming).then_some([None, None]),
            ),
        }
    }

    pub(crate) fn message(&self, cx: &mut SpanCx, sent: bool, compressed: bool, len: u32) -> u64 {
        let id = if sent { &self.sent } else { &self.received }.fetch_add(1, Ordering::Relaxed) + 1;
        match self.mode {
            MessageEvents::None => return id,
            MessageEvents::All => {}
            MessageEvents::Streaming => {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(held) = pending.as_mut() {
                    // The first message of its direction: held in the first free slot (there
                    // are two: one per direction).
                    if id < 2
                        && let Some(slot) = held.iter_mut().find(|p| p.is_none())
                    {
                        *slot = Some(Pending {
                            at: std::time::SystemTime::now(),
                            sent,
                            compressed,
                            len,
                            id,
                        });
                        return id;
                    }
                    // A stream: the held messages first, at their own times.
                    for p in pending.take().into_iter().flatten().flatten() {
                        self.event(cx, Some(p.at), p.sent, p.compressed, p.len, p.id);
                    }
                }
            }
        }
        self.event(cx, None, sent, compressed, len, id);
        id
    }

    fn event(
        &self,
        cx: &mut SpanCx,
        at: Option<std::time::SystemTime>,
        sent: bool,
        compressed: bool,
        len: u32,
        id: u64,
    ) {
        if self.recorded.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let size_key = if compressed {
            "rpc.message.compressed_size"
        } else {
            "rpc.message.uncompressed_size"
        };
        let attrs = vec![
            KeyValue::new("rpc.message.type", if sent { "SENT" } else { "RECEIVED" }),
            KeyValue::new("rpc.message.id", id as i64),
            KeyValue::new(size_key, i64::from(len)),
        ];
        match at {
            Some(at) => cx.add_event_with_timestamp("rpc.message", at, attrs),
            None => cx.add_event("rpc.message", attrs),
        }
    }

    pub(crate) fn payload(&self, cx: &mut SpanCx, sent: bool, id: u64, text: String) {
        if self.recorded.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        cx.add_event(
            "rpc.message.payload",
            vec![
                KeyValue::new("rpc.message.type", if sent { "SENT" } else { "RECEIVED" }),
                KeyValue::new("rpc.message.id", id as i64),
                KeyValue::new("rpc.message.payload", text),
            ],
        );
    }

    pub(crate) fn finish(&self, cx: &mut SpanCx) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            cx.set_attribute(KeyValue::new("rpc.message.events_dropped", dropped as i64));
        }
    }
}

/// Turns the bytes of one direction of an RPC into `rpc.message` events (and payload events).
pub(crate) struct MessageReader {
    frames: Frames,
    sent: bool,
    tap: Option<Tap>,
    buf: Option<Vec<u8>>,
    id: u64,
}

impl MessageReader {
    pub(crate) fn new(sent: bool, tap: Option<Tap>) -> Self {
        MessageReader {
            frames: Frames::default(),
            sent,
            tap,
            buf: None,
            id: 0,
        }
    }

    pub(crate) fn feed(&mut self, cx: &mut SpanCx, messages: &Messages, data: &[u8]) {
        let MessageReader {
            frames,
            sent,
            tap,
            buf,
            id,
        } = self;
        frames.feed(data, |ev| match ev {
            FrameEvent::Start { compressed, len } => {
                *id = messages.message(cx, *sent, compressed, len);
                *buf = tap
                    .as_ref()
                    .filter(|t| !compressed && (len as usize) <= t.max_bytes)
                    .map(|_| Vec::with_capacity(len as usize));
            }
            FrameEvent::Bytes(b) => {
                if let Some(v) = buf.as_mut() {
                    v.extend_from_slice(b);
                }
            }
            FrameEvent::End => {
                if let (Some(v), Some(t)) = (buf.take(), tap.as_ref())
                    && let Some(text) = (t.decode)(&v)
                {
                    messages.payload(cx, *sent, *id, text);
                }
            }
        });
    }
}
