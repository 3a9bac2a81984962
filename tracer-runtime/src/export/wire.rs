//! The OTLP/protobuf bytes of an export request, written straight from the spans.
//!
//! opentelemetry-proto's way from `SpanData` to the wire is a tree of its generated messages
//! first: a `String` for every attribute's key and every string value, a `Vec` for every id,
//! every attribute list and every event, all allocated, encoded by prost, then freed. For a span
//! with six attributes that is some twenty allocations on the export thread, and tracer's
//! exporter also had to clone the whole batch to keep it for a retry. Here each span's bytes are
//! written as they are read, with prost's encoding primitives, into one buffer per batch (kept
//! for the retries as it is); only what is shared by a batch (the resource, each
//! instrumentation scope) goes through opentelemetry-proto's messages, once.
//!
//! The bytes decode to exactly the request opentelemetry-proto builds from the same spans
//! (`group_spans_by_resource_and_scope`): the property test below holds the two side by side.

use std::time::{SystemTime, UNIX_EPOCH};

use std::borrow::Cow;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use prost::encoding::{WireType, encoded_len_varint, key_len};

use crate::attrs::Blocks;
use crate::recorder::Ended;
use crate::sink::Scope;

/// What a batch's request starts with: its resource's field of `ResourceSpans`, and the
/// resource's schema URL's (made when the exporter is given its resource; before that, an empty
/// resource's, as opentelemetry-proto's exporter sends then).
#[derive(Debug)]
pub(crate) struct Resource {
    /// `ResourceSpans.resource` (tag 1), whole.
    field: Vec<u8>,
    /// `ResourceSpans.schema_url` (tag 3), whole; empty when there is none.
    schema_url: Vec<u8>,
}

impl Default for Resource {
    fn default() -> Resource {
        Resource::new(&opentelemetry_sdk::Resource::builder_empty().build())
    }
}

impl Resource {
    pub(crate) fn new(resource: &opentelemetry_sdk::Resource) -> Resource {
        let with_schema = ResourceAttributesWithSchema::from(resource);
        let message = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: with_schema.attributes.0,
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let mut field = Vec::new();
        prost::encoding::message::encode(1, &message, &mut field);
        let mut schema_url = Vec::new();
        string(
            3,
            with_schema.schema_url.as_deref().unwrap_or_default(),
            &mut schema_url,
        );
        Resource { field, schema_url }
    }
}

/// The spans of one instrumentation scope in a batch: the scope, and its spans' fields of
/// `ScopeSpans` (tag 2 each, whole).
struct Group<'a> {
    scope: Cow<'a, InstrumentationScope>,
    spans: Vec<u8>,
}

/// A span's instrumentation scope: the SDK's, or a recorder span's parts.
#[derive(Clone, Copy)]
enum ScopeOf<'a> {
    Sdk(&'a InstrumentationScope),
    Parts(Scope),
}

impl<'a> ScopeOf<'a> {
    /// Whether `group` is this scope's: at once when made from the same texts (tracer's spans'
    /// scopes are), else field by field.
    fn is(self, group: &InstrumentationScope) -> bool {
        match self {
            ScopeOf::Sdk(s) => same_scope(group, s),
            ScopeOf::Parts(p) => {
                let plain = group.schema_url().is_none() && group.attributes().next().is_none();
                plain
                    && ((std::ptr::eq(group.name(), p.name)
                        && match (group.version(), p.version) {
                            (Some(x), Some(y)) => std::ptr::eq(x, y),
                            (None, None) => true,
                            _ => false,
                        })
                        || (group.name() == p.name && group.version() == p.version))
            }
        }
    }

    fn scope(self) -> Cow<'a, InstrumentationScope> {
        match self {
            ScopeOf::Sdk(s) => Cow::Borrowed(s),
            ScopeOf::Parts(p) => Cow::Owned(p.build()),
        }
    }
}

/// The group of `scope` in `groups`, added (with room for `left` more spans) if it has none.
fn group_of<'a>(groups: &mut Vec<Group<'a>>, scope: ScopeOf<'a>, left: usize) -> usize {
    match groups.iter().rposition(|g| scope.is(&g.scope)) {
        Some(at) => at,
        None => {
            // Room for the first span, then (see `in_place`) for the rest of the batch as
            // long as it: one allocation more when the batch has one scope, as tracer's spans
            // do.
            let _ = left;
            groups.push(Group {
                scope: scope.scope(),
                spans: Vec::with_capacity(512),
            });
            groups.len() - 1
        }
    }
}

/// The bytes of an export request, in the parts they were written in (sent one after the
/// other: the spans are not copied into one buffer first).
#[derive(Clone, Debug, Default)]
pub(crate) struct Body(Vec<Bytes>);

impl Body {
    /// The bytes in one piece.
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Bytes {
        let mut all = Vec::new();
        for part in &self.0 {
            all.extend_from_slice(part);
        }
        Bytes::from(all)
    }
}

/// An export request as the body of a gRPC call: its message's prefix (compressed or not, its
/// length), then its parts as they were written, one frame each (none copied), or its bytes
/// gzip-compressed.
#[derive(Clone, Debug)]
pub(crate) struct Frames(std::collections::VecDeque<Bytes>);

impl Frames {
    /// An error when the request is too long for a gRPC message (4 GiB), or cannot be
    /// compressed.
    pub(crate) fn new(body: &Body, gzip: bool) -> Result<Frames, String> {
        let mut parts = std::collections::VecDeque::with_capacity(body.0.len() + 1);
        parts.push_back(Bytes::new());
        if gzip {
            use std::io::Write as _;
            let total = body.0.iter().map(Bytes::len).sum::<usize>();
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(total / 4),
                flate2::Compression::default(),
            );
            for part in &body.0 {
                z.write_all(part).map_err(|e| e.to_string())?;
            }
            parts.push_back(Bytes::from(z.finish().map_err(|e| e.to_string())?));
        } else {
            parts.extend(body.0.iter().filter(|p| !p.is_empty()).cloned());
        }
        let len = parts.iter().map(Bytes::len).sum::<usize>();
        let len = u32::try_from(len).map_err(|_| format!("{len} bytes, over 4 GiB"))?;
        let mut prefix = [u8::from(gzip), 0, 0, 0, 0];
        prefix[1..].copy_from_slice(&len.to_be_bytes());
        parts[0] = Bytes::copy_from_slice(&prefix);
        Ok(Frames(parts))
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .pop_front()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

/// The bytes of the `ExportTraceServiceRequest` of `batch` and `ended` (the recorder's spans,
/// as they were recorded) from `resource`: one `ResourceSpans`, the spans grouped by
/// instrumentation scope in the order each scope first appears, each group's spans in order,
/// `batch`'s then `ended`'s (as opentelemetry-proto groups the spans of `batch` followed by the
/// `SpanData` of `ended`).
pub(crate) fn request(batch: &[SpanData], ended: &[Ended], resource: &Resource) -> Body {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let total = batch.len() + ended.len();
    for (i, span) in batch.iter().enumerate() {
        let at = group_of(
            &mut groups,
            ScopeOf::Sdk(&span.instrumentation_scope),
            total - i,
        );
        in_place(&mut groups[at].spans, total - i, |buf| span_body(span, buf));
    }
    // The group of the previous span's scope (most batches have one), known without a search.
    let mut last: Option<(Scope, usize)> = None;
    for (i, span) in ended.iter().enumerate() {
        let at = match last {
            Some((scope, at)) if scope.same(span.scope) => at,
            _ => {
                let at = group_of(&mut groups, ScopeOf::Parts(span.scope), ended.len() - i);
                last = Some((span.scope, at));
                at
            }
        };
        in_place(&mut groups[at].spans, ended.len() - i, |buf| {
            ended_body(span, buf);
        });
    }
    // Each group's `ScopeSpans`: its scope (tag 1), its spans, its schema URL (tag 3).
    let scopes: Vec<(Vec<u8>, Vec<u8>)> = groups
        .iter()
        .map(|g| {
            let scope = opentelemetry_proto::tonic::common::v1::InstrumentationScope::from((
                &*g.scope, None,
            ));
            let mut head = Vec::new();
            prost::encoding::message::encode(1, &scope, &mut head);
            let mut tail = Vec::new();
            string(3, g.scope.schema_url().unwrap_or_default(), &mut tail);
            (head, tail)
        })
        .collect();
    let scope_len =
        |g: &Group<'_>, (head, tail): &(Vec<u8>, Vec<u8>)| head.len() + g.spans.len() + tail.len();
    let resource_spans_len = resource.field.len()
        + groups
            .iter()
            .zip(&scopes)
            .map(|(g, s)| len_field(2, scope_len(g, s)))
            .sum::<usize>()
        + resource.schema_url.len();
    // Up to each group's spans, then the spans as they were written, and so on.
    let mut parts = Vec::with_capacity(2 * groups.len() + 1);
    let mut head = Vec::with_capacity(16 + resource.field.len());
    encode_key(1, WireType::LengthDelimited, &mut head);
    encode_varint(resource_spans_len as u64, &mut head);
    head.extend_from_slice(&resource.field);
    for (g, (scope_head, scope_tail)) in groups.into_iter().zip(scopes) {
        encode_key(2, WireType::LengthDelimited, &mut head);
        encode_varint(
            (scope_head.len() + g.spans.len() + scope_tail.len()) as u64,
            &mut head,
        );
        head.extend_from_slice(&scope_head);
        parts.push(Bytes::from(std::mem::take(&mut head)));
        parts.push(Bytes::from(g.spans));
        head = scope_tail;
    }
    head.extend_from_slice(&resource.schema_url);
    if !head.is_empty() {
        parts.push(Bytes::from(head));
    }
    Body(parts)
}

/// One span's field (tag 2) of a `ScopeSpans`, its body written by `write` straight into `buf`
/// behind room for a two-byte length (most spans' length), moved only when its length takes
/// another number of bytes. The first span of a buffer tells how much room the `left` others
/// will want.
#[inline]
fn in_place(buf: &mut Vec<u8>, left: usize, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(2, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    write(buf);
    let len = buf.len() - at - 2;
    if (0x80..0x4000).contains(&len) {
        buf[at] = (len as u8 & 0x7F) | 0x80;
        buf[at + 1] = (len >> 7) as u8;
    } else if len < 0x80 {
        // A short span (one without attributes): its body moved back by a byte.
        buf[at] = len as u8;
        buf.copy_within(at + 2.., at + 1);
        buf.truncate(buf.len() - 1);
    } else {
        let mut prefix = Vec::with_capacity(10);
        encode_varint(len as u64, &mut prefix);
        buf.splice(at..at + 2, prefix);
    }
    if at <= 1 && left > 1 {
        buf.reserve((left - 1) * (len + 4));
    }
}

/// Whether two scopes are the same: at once when made from the same texts (tracer's spans'
/// scopes are), else field by field.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    let same = |x: Option<&str>, y: Option<&str>| match (x, y) {
        (Some(x), Some(y)) => std::ptr::eq(x, y),
        (None, None) => true,
        _ => false,
    };
    (std::ptr::eq(a.name(), b.name())
        && same(a.version(), b.version())
        && same(a.schema_url(), b.schema_url())
        && a.attributes().next().is_none()
        && b.attributes().next().is_none())
        || a == b
}

/// What one `Span` message is written from: a `SpanData`'s fields, or an [`Ended`] span's.
struct Parts<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    state: &'a TraceState,
    parent: SpanId,
    flags: u32,
    name: &'a str,
    kind: &'a SpanKind,
    /// Nanoseconds since the epoch.
    start: u64,
    end: u64,
    /// Attributes shared with other spans, written before `attrs`, as they were encoded once.
    blocks: &'a Blocks,
    attrs: &'a [KeyValue],
    dropped_attrs: u32,
    events: &'a SpanEvents,
    links: &'a SpanLinks,
    status: &'a Status,
}

/// The fields of one `Span` message of a `SpanData`.
fn span_body(span: &SpanData, buf: &mut Vec<u8>) {
    let sc = &span.span_context;
    body(
        &Parts {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            state: sc.trace_state(),
            parent: span.parent_span_id,
            flags: flags(span.parent_span_is_remote, sc),
            name: &span.name,
            kind: &span.span_kind,
            start: nanos(span.start_time),
            end: nanos(span.end_time),
            blocks: &None,
            attrs: &span.attributes,
            dropped_attrs: span.dropped_attributes_count,
            events: &span.events,
            links: &span.links,
            status: &span.status,
        },
        buf,
    );
}

/// The fields of one `Span` message of a recorder span (sampled, never remote itself).
fn ended_body(span: &Ended, buf: &mut Vec<u8>) {
    if plain_body(span, buf) {
        return;
    }
    let rest = span.rest();
    let flags = u32::from(TraceFlags::SAMPLED.to_u8()) | 0x100;
    body(
        &Parts {
            trace_id: span.trace_id,
            span_id: span.span_id,
            state: rest.state,
            parent: span.parent,
            flags: if span.parent_remote {
                flags | 0x200
            } else {
                flags
            },
            name: span.name(),
            kind: span.kind(),
            start: span.start,
            end: span.end,
            blocks: &span.blocks,
            attrs: &span.attrs,
            dropped_attrs: rest.dropped_attrs,
            events: rest.events,
            links: rest.links,
            status: rest.status,
        },
        buf,
    );
}

/// The fields of one `Span` message of a recorder span that has nothing more than ids, its call
/// site's name (under 128 bytes), times and attributes (most spans), written in a few copies of
/// fixed length: what [`body`] writes for it, byte for byte. False, and nothing written, for
/// any other.
#[inline]
fn plain_body(span: &Ended, buf: &mut Vec<u8>) -> bool {
    let name = span.meta.name.as_bytes();
    if !span.is_plain() || name.is_empty() || name.len() >= 0x80 || span.start == 0 || span.end == 0
    {
        return false;
    }
    let remote: u8 = if span.parent_remote { 0x02 } else { 0 };
    // Trace id (1), span id (2), parent (4) when there is one, flags (16: sampled, the
    // parent's remoteness said).
    let mut ids = [0u8; 44];
    ids[0] = 0x0A;
    ids[1] = 16;
    ids[2..18].copy_from_slice(&span.trace_id.to_bytes());
    ids[18] = 0x12;
    ids[19] = 8;
    ids[20..28].copy_from_slice(&span.span_id.to_bytes());
    if span.parent == SpanId::INVALID {
        ids[28..34].copy_from_slice(&[0x85, 0x01, 0x01, 0x01 | remote, 0, 0]);
        buf.reserve(34 + 2 + name.len() + 20 + 2);
        buf.extend_from_slice(&ids[..34]);
    } else {
        ids[28] = 0x22;
        ids[29] = 8;
        ids[30..38].copy_from_slice(&span.parent.to_bytes());
        ids[38..44].copy_from_slice(&[0x85, 0x01, 0x01, 0x01 | remote, 0, 0]);
        buf.reserve(44 + 2 + name.len() + 20 + 2);
        buf.extend_from_slice(&ids);
    }
    // Name (5), kind (6), start (7) and end (8).
    buf.extend_from_slice(&[0x2A, name.len() as u8]);
    buf.extend_from_slice(name);
    let mut times = [0u8; 20];
    times[0] = 0x30;
    times[1] = kind(span.kind()) as u8;
    times[2] = 0x39;
    times[3..11].copy_from_slice(&span.start.to_le_bytes());
    times[11] = 0x41;
    times[12..20].copy_from_slice(&span.end.to_le_bytes());
    buf.extend_from_slice(&times);
    for b in span.blocks.iter() {
        buf.extend_from_slice(b.wire());
    }
    for kv in &span.attrs {
        key_value(9, kv, buf);
    }
    // `Status` (15), unset: empty.
    buf.extend_from_slice(&[0x7A, 0x00]);
    true
}

/// The fields of one `Span` message (its body, without its own tag and length).
fn body(span: &Parts<'_>, buf: &mut Vec<u8>) {
    bytes(1, &span.trace_id.to_bytes(), buf);
    bytes(2, &span.span_id.to_bytes(), buf);
    if *span.state != TraceState::NONE {
        string(3, &span.state.header(), buf);
    }
    if span.parent != SpanId::INVALID {
        bytes(4, &span.parent.to_bytes(), buf);
    }
    fixed32(16, span.flags, buf);
    string(5, span.name, buf);
    uint(6, kind(span.kind), buf);
    fixed64(7, span.start, buf);
    fixed64(8, span.end, buf);
    for b in span.blocks.iter() {
        buf.extend_from_slice(b.wire());
    }
    for kv in span.attrs {
        key_value(9, kv, buf);
    }
    uint(10, u64::from(span.dropped_attrs), buf);
    // Events and links are few: each written apart to learn its length.
    let mut nested = Vec::new();
    for event in span.events.iter() {
        nested.clear();
        fixed64(1, nanos(event.timestamp), &mut nested);
        string(2, &event.name, &mut nested);
        for kv in &event.attributes {
            key_value(3, kv, &mut nested);
        }
        uint(4, u64::from(event.dropped_attributes_count), &mut nested);
        field(11, &nested, buf);
    }
    uint(12, u64::from(span.events.dropped_count), buf);
    for link in span.links.iter() {
        nested.clear();
        let lc = &link.span_context;
        bytes(1, &lc.trace_id().to_bytes(), &mut nested);
        bytes(2, &lc.span_id().to_bytes(), &mut nested);
        string(3, &lc.trace_state().header(), &mut nested);
        for kv in &link.attributes {
            key_value(4, kv, &mut nested);
        }
        uint(5, u64::from(link.dropped_attributes_count), &mut nested);
        fixed32(6, flags(lc.is_remote(), lc), &mut nested);
        field(13, &nested, buf);
    }
    uint(14, u64::from(span.links.dropped_count), buf);
    // `Status`, always present: its message (tag 2) for an error, its code (tag 3).
    let (code, message) = match span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    nested.clear();
    string(2, message, &mut nested);
    uint(3, code, &mut nested);
    field(15, &nested, buf);
}

/// The span's flags as OTLP has them: the W3C trace flags, and whether the parent (the linked
/// span, for a link) is remote, said (`SpanFlags`' `CONTEXT_HAS_IS_REMOTE` and
/// `CONTEXT_IS_REMOTE` bits).
fn flags(remote: bool, sc: &SpanContext) -> u32 {
    let flags = u32::from(sc.trace_flags().to_u8()) | 0x100;
    if remote { flags | 0x200 } else { flags }
}

/// `SpanKind` as OTLP numbers it.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// A time in nanoseconds since the Unix epoch (0 before it).
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A varint: one byte below 128 (tags, lengths and counts, mostly), two below 16 384 (an HTTP
/// status code), without prost's loop.
#[inline(always)]
fn encode_varint(v: u64, buf: &mut Vec<u8>) {
    if v < 0x80 {
        buf.push(v as u8);
    } else if v < 0x4000 {
        buf.extend_from_slice(&[(v as u8) | 0x80, (v >> 7) as u8]);
    } else {
        prost::encoding::encode_varint(v, buf);
    }
}

/// A field's key: its tag and wire type.
#[inline(always)]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// A length-delimited field whose bytes are `body`.
fn field(tag: u32, body: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(body.len() as u64, buf);
    buf.extend_from_slice(body);
}

/// The length of a length-delimited field of `len` bytes.
fn len_field(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A `string` field, left out when empty (proto3's default).
fn string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        field(tag, s.as_bytes(), buf);
    }
}

/// A `bytes` field, left out when empty.
fn bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    if !b.is_empty() {
        field(tag, b, buf);
    }
}

/// A varint field (`uint32`, `uint64`, an enum), left out when 0.
fn uint(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn fixed64(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, buf);
        buf.put_u64_le(v);
    }
}

fn fixed32(tag: u32, v: u32, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, buf);
        buf.put_u32_le(v);
    }
}

/// One scalar of an attribute's value (an array's element, or the value itself).
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
}

impl Scalar<'_> {
    /// The length of the `AnyValue` holding it: its one field, which a oneof writes even when
    /// it holds the default.
    fn len(self) -> usize {
        match self {
            Scalar::Bool(_) => key_len(2) + 1,
            Scalar::Int(i) => key_len(3) + encoded_len_varint(i as u64),
            Scalar::Double(_) => key_len(4) + 8,
            Scalar::Str(s) => len_field(1, s.len()),
        }
    }

    /// The fields of the `AnyValue` holding it.
    fn write(self, buf: &mut Vec<u8>) {
        match self {
            Scalar::Bool(b) => {
                encode_key(2, WireType::Varint, buf);
                encode_varint(u64::from(b), buf);
            }
            Scalar::Int(i) => {
                encode_key(3, WireType::Varint, buf);
                encode_varint(i as u64, buf);
            }
            Scalar::Double(d) => {
                encode_key(4, WireType::SixtyFourBit, buf);
                buf.put_f64_le(d);
            }
            Scalar::Str(s) => field(1, s.as_bytes(), buf),
        }
    }
}

/// The scalars of an array value, each given to `f`; `None` for a kind of array this version
/// does not know (written as its text instead).
fn each_scalar(array: &Array, mut f: impl FnMut(Scalar<'_>)) -> Option<()> {
    match array {
        Array::Bool(v) => v.iter().for_each(|b| f(Scalar::Bool(*b))),
        Array::I64(v) => v.iter().for_each(|i| f(Scalar::Int(*i))),
        Array::F64(v) => v.iter().for_each(|d| f(Scalar::Double(*d))),
        Array::String(v) => v.iter().for_each(|s| f(Scalar::Str(s.as_str()))),
        #[allow(unreachable_patterns)] // `Array` is non-exhaustive
        _ => return None,
    }
    Some(())
}

/// What an attribute's value is written as: a scalar, or an array of them.
enum Any<'a> {
    One(Scalar<'a>),
    Many(&'a Array),
}

/// `value` as written; `None` for a kind of value this version does not know (written as its
/// text, where opentelemetry-proto would panic).
fn any(value: &Value) -> Option<Any<'_>> {
    Some(match value {
        Value::Bool(b) => Any::One(Scalar::Bool(*b)),
        Value::I64(i) => Any::One(Scalar::Int(*i)),
        Value::F64(d) => Any::One(Scalar::Double(*d)),
        Value::String(s) => Any::One(Scalar::Str(s.as_str())),
        Value::Array(a) if each_scalar(a, |_| ()).is_some() => Any::Many(a),
        #[allow(unreachable_patterns)] // `Value` is non-exhaustive
        _ => return None,
    })
}

/// The length of the `ArrayValue` of `array`: an `AnyValue` field (tag 1) per element.
fn array_len(array: &Array) -> usize {
    let mut len = 0;
    let _ = each_scalar(array, |s| len += len_field(1, s.len()));
    len
}

/// A `KeyValue` field: the key (tag 1) and its `AnyValue` (tag 2, always present).
fn key_value(tag: u32, kv: &KeyValue, buf: &mut Vec<u8>) {
    let key = kv.key.as_str();
    if short(tag, key, &kv.value, buf) {
        return;
    }
    // A value of a kind unknown here, as its text: made only then.
    let text;
    let value = match any(&kv.value) {
        Some(value) => value,
        None => {
            text = kv.value.as_str();
            Any::One(Scalar::Str(&text))
        }
    };
    let value_len = match &value {
        Any::One(s) => s.len(),
        Any::Many(a) => len_field(5, array_len(a)),
    };
    let len = if key.is_empty() {
        0
    } else {
        len_field(1, key.len())
    } + len_field(2, value_len);
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    string(1, key, buf);
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(value_len as u64, buf);
    match value {
        Any::One(s) => s.write(buf),
        Any::Many(a) => {
            encode_key(5, WireType::LengthDelimited, buf);
            encode_varint(array_len(a) as u64, buf);
            let _ = each_scalar(a, |s| {
                encode_key(1, WireType::LengthDelimited, buf);
                encode_varint(s.len() as u64, buf);
                s.write(buf);
            });
        }
    }
}

/// The `KeyValue` fields (tag 9) of a `Span` message holding `attrs`: a block of attributes
/// many spans share, written once (see `attrs::Block`).
#[cfg_attr(
    not(any(feature = "redis", feature = "mysql", feature = "http")),
    allow(dead_code)
)]
pub(crate) fn attributes(attrs: &[KeyValue]) -> Vec<u8> {
    let mut buf = Vec::new();
    for kv in attrs {
        key_value(9, kv, &mut buf);
    }
    buf
}

/// The commonest attribute — a string or an integer under a key, the whole field shorter than
/// 128 bytes, so that every length is one byte — written in one go (what [`key_value`] writes
/// for it, byte for byte); false, and nothing written, for any other.
#[inline]
fn short(tag: u32, key: &str, value: &Value, buf: &mut Vec<u8>) -> bool {
    if tag >= 16 || key.is_empty() {
        return false;
    }
    let k = key.as_bytes();
    // `AnyValue`: its string field, or its integer field.
    let any = match value {
        Value::String(v) => 2 + v.as_str().len(),
        Value::I64(i) => 1 + encoded_len_varint(*i as u64),
        _ => return false,
    };
    // `KeyValue`: the key's field and the value's.
    let len = 2 + k.len() + 2 + any;
    if len >= 0x80 {
        return false;
    }
    buf.reserve(2 + len);
    buf.extend_from_slice(&[(tag << 3 | 2) as u8, len as u8, 0x0A, k.len() as u8]);
    buf.extend_from_slice(k);
    match value {
        Value::String(v) => {
            let v = v.as_str().as_bytes();
            buf.extend_from_slice(&[0x12, any as u8, 0x0A, v.len() as u8]);
            buf.extend_from_slice(v);
        }
        Value::I64(i) => {
            buf.extend_from_slice(&[0x12, any as u8, 0x18]);
            encode_varint(*i as u64, buf);
        }
        _ => {}
    }
    true
}

/// tonic's decoder of the collector's answer.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Decoder;

impl tonic::codec::Decoder for Decoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use prost::Message as _;

    fn value() -> impl Strategy<Value = Value> {
        let text = || "[a-zé /?=]{0,12}";
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            (-1e12f64..1e12).prop_map(Value::F64),
            text().prop_map(|s| Value::String(s.into())),
            // Past the one-byte lengths of the short form.
            "[a-z]{100,300}".prop_map(|s| Value::String(s.into())),
            vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
            vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
            vec(-1e6f64..1e6, 0..4).prop_map(|v| Value::Array(Array::F64(v))),
            vec(text(), 0..4).prop_map(|v| Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect()
            ))),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        vec(
            ("[a-z.]{0,10}", value()).prop_map(|(k, v)| KeyValue::new(k, v)),
            0..8,
        )
    }

    fn time() -> impl Strategy<Value = SystemTime> {
        prop_oneof![
            Just(UNIX_EPOCH - Duration::from_secs(1)),
            Just(UNIX_EPOCH),
            (0u64..4_000_000_000_000_000_000).prop_map(|n| UNIX_EPOCH + Duration::from_nanos(n)),
        ]
    }

    fn context() -> impl Strategy<Value = SpanContext> {
        (
            any::<u128>(),
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(""), Just("a=1"), Just("k=v,x=y")],
        )
            .prop_map(|(t, s, sampled, remote, state)| {
                SpanContext::new(
                    TraceId::from(t),
                    SpanId::from(s),
                    if sampled {
                        TraceFlags::SAMPLED
                    } else {
                        TraceFlags::default()
                    },
                    remote,
                    TraceState::from_key_value(
                        state
                            .split(',')
                            .filter(|kv| !kv.is_empty())
                            .filter_map(|kv| kv.split_once('=')),
                    )
                    .unwrap(),
                )
            })
    }

    fn scope(i: u8) -> InstrumentationScope {
        match i {
            0 => InstrumentationScope::builder("tracer").build(),
            1 => InstrumentationScope::builder("tracer")
                .with_version("0.1.0")
                .with_schema_url("https://opentelemetry.io/schemas/1.40.0")
                .build(),
            _ => InstrumentationScope::builder("other")
                .with_attributes([KeyValue::new("lib", "x")])
                .build(),
        }
    }

    fn span() -> impl Strategy<Value = SpanData> {
        let events = vec(
            ("[a-z]{0,8}", time(), attributes(), 0u32..3)
                .prop_map(|(name, at, attrs, dropped)| Event::new(name, at, attrs, dropped)),
            0..3,
        );
        let links = vec(
            (context(), attributes(), 0u32..3).prop_map(|(sc, attrs, dropped)| {
                let mut link = Link::new(sc, attrs, 0);
                link.dropped_attributes_count = dropped;
                link
            }),
            0..3,
        );
        (
            (
                context(),
                prop_oneof![Just(0u64), any::<u64>()],
                any::<bool>(),
            ),
            ("[a-zA-Z /{}]{0,16}", 0u8..5, time(), time()),
            (attributes(), 0u32..3, events, 0u32..3, links, 0u32..3),
            (0u8..3, "[a-z ]{0,10}", 0u8..3),
        )
            .prop_map(
                |(
                    (sc, parent, parent_remote),
                    (name, kind, start, end),
                    (attrs, dropped, events, events_dropped, links, links_dropped),
                    (status, description, scope_of),
                )| SpanData {
                    span_context: sc,
                    parent_span_id: SpanId::from(parent),
                    parent_span_is_remote: parent_remote,
                    span_kind: [
                        SpanKind::Internal,
                        SpanKind::Server,
                        SpanKind::Client,
                        SpanKind::Producer,
                        SpanKind::Consumer,
                    ][usize::from(kind)]
                    .clone(),
                    name: Cow::Owned(name),
                    start_time: start,
                    end_time: end,
                    attributes: attrs,
                    dropped_attributes_count: dropped,
                    events: {
                        let mut e = SpanEvents::default();
                        e.events = events;
                        e.dropped_count = events_dropped;
                        e
                    },
                    links: {
                        let mut l = SpanLinks::default();
                        l.links = links;
                        l.dropped_count = links_dropped;
                        l
                    },
                    status: match status {
                        0 => Status::Unset,
                        1 => Status::Ok,
                        _ => Status::error(description),
                    },
                    instrumentation_scope: scope(scope_of),
                },
            )
    }

    fn resource(schema: bool) -> opentelemetry_sdk::Resource {
        let b = opentelemetry_sdk::Resource::builder_empty().with_attributes([
            KeyValue::new("service.name", "svc"),
            KeyValue::new("host.cores", 2),
        ]);
        if schema {
            b.with_schema_url(
                [KeyValue::new("x", true)],
                "https://opentelemetry.io/schemas/1.40.0",
            )
            .build()
        } else {
            b.build()
        }
    }

    /// The request opentelemetry-proto makes of `batch` from `res`.
    fn theirs(
        batch: Vec<SpanData>,
        res: &opentelemetry_sdk::Resource,
    ) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch,
                &ResourceAttributesWithSchema::from(res),
            ),
        }
    }

    /// Before the exporter is given its resource, the request has an empty one, as
    /// opentelemetry-proto's has.
    #[test]
    fn before_the_resource_is_set_it_is_empty() {
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                Vec::new(),
                &ResourceAttributesWithSchema::default(),
            ),
        };
        let ours = ExportTraceServiceRequest::decode(
            super::request(&[], &[], &super::Resource::default()).to_bytes(),
        )
        .unwrap();
        assert_eq!(ours, theirs);
        assert!(ours.resource_spans[0].resource.is_some());
    }

    proptest! {
        /// The bytes decode to the request opentelemetry-proto builds from the same spans.
        #[test]
        fn the_bytes_are_the_request_opentelemetry_proto_makes(
            batch in vec(span(), 0..6),
            schema in any::<bool>(),
        ) {
            let res = resource(schema);
            let ours = super::request(&batch, &[], &super::Resource::new(&res));
            let decoded = ExportTraceServiceRequest::decode(ours.to_bytes()).unwrap();
            prop_assert_eq!(decoded, theirs(batch, &res));
        }
    }

    /// Spans once written (`recorder::Ended::drop_all`) let go of everything they held: their
    /// shared block, their own attributes, their `More` (an event's attributes).
    #[test]
    #[cfg(any(feature = "redis", feature = "mysql"))]
    fn written_spans_let_go_of_what_they_held() {
        use std::sync::Arc;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let base = span().new_tree(&mut runner).unwrap().current();
        let held: Arc<str> = Arc::from("held");
        let value = || Value::String(StringValue::from(Arc::clone(&held)));
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "e",
            SystemTime::now(),
            vec![KeyValue::new("k", value())],
            0,
        ));
        let mut with_more = crate::recorder::Ended::of(
            SpanData {
                attributes: vec![
                    KeyValue::new("shared", value()),
                    KeyValue::new("own", value()),
                ],
                events,
                ..base.clone()
            },
            true,
        );
        with_more.share_first(1, 0);
        let mut plain = crate::recorder::Ended::of(
            SpanData {
                attributes: vec![KeyValue::new("shared", value())],
                events: SpanEvents::default(),
                ..base
            },
            false,
        );
        plain.share_first(1, 0);
        plain.strip_more();
        let blocks = [with_more.blocks.clone(), plain.blocks.clone()].map(Option::unwrap);
        assert!(plain.attrs.is_empty() && !with_more.attrs.is_empty());
        // Its own attribute's value and its event's (the block holds a copy of its text).
        assert_eq!(Arc::strong_count(&held), 3);
        crate::recorder::Ended::drop_all(vec![with_more, plain]);
        assert_eq!(Arc::strong_count(&held), 1);
        assert!(blocks.iter().all(|b| Arc::strong_count(b) == 1));
    }

    proptest! {
        /// The recorder's spans, written as they were recorded, are the request
        /// opentelemetry-proto makes of the `SpanData` the collector would have made of them
        /// (after the batch's `SpanData`, in one request with them).
        #[test]
        fn recorded_spans_are_written_as_their_span_data_would_be(
            batch in vec(span(), 0..4),
            recorded in vec((span(), any::<bool>(), any::<bool>(), (0usize..4, 0usize..4)), 0..6),
        ) {
            let res = resource(false);
            let ended = |(data, renamed, plain, shared): &(SpanData, bool, bool, (usize, usize))| {
                let mut e = crate::recorder::Ended::of(data.clone(), *renamed);
                if *plain {
                    // Most spans: nothing more than ids, name, times and attributes.
                    e = crate::recorder::Ended::of(
                        SpanData {
                            events: SpanEvents::default(),
                            links: SpanLinks::default(),
                            status: Status::Unset,
                            dropped_attributes_count: 0,
                            span_context: SpanContext::new(
                                data.span_context.trace_id(),
                                data.span_context.span_id(),
                                TraceFlags::SAMPLED,
                                false,
                                TraceState::NONE,
                            ),
                            ..data.clone()
                        },
                        false,
                    );
                    e.strip_more();
                }
                // Leading attributes shared in blocks, as a client's and a statement's are.
                #[cfg(any(feature = "redis", feature = "mysql"))]
                {
                    let (first, second) = *shared;
                    e.share_first(first, second);
                }
                #[cfg(not(any(feature = "redis", feature = "mysql")))]
                let _ = shared;
                e
            };
            let ours: Vec<_> = recorded.iter().map(ended).collect();
            // The weight the queue counts, inlined for a span with nothing of its own, is the
            // one its lists give.
            for e in &ours {
                prop_assert_eq!(e.weight(), e.weight_of_lists());
            }
            let bytes = super::request(&batch, &ours, &super::Resource::new(&res));
            let decoded = ExportTraceServiceRequest::decode(bytes.to_bytes()).unwrap();
            let mut all = batch;
            all.extend(recorded.iter().map(|r| ended(r).into_data()));
            prop_assert_eq!(decoded, theirs(all, &res));
        }
    }

    /// Spans whose lengths take one byte, two, and three (written behind room for two, then
    /// moved) decode whole, in order.
    #[test]
    fn spans_of_every_length_decode_whole() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut batch: Vec<SpanData> = (0..3)
            .map(|_| span().new_tree(&mut runner).unwrap().current())
            .collect();
        batch[0].attributes = Vec::new();
        batch[0].events = SpanEvents::default();
        batch[0].links = SpanLinks::default();
        batch[0].name = Cow::Borrowed("s");
        batch[1].attributes = vec![KeyValue::new("big", "x".repeat(20_000))];
        batch[2].attributes = vec![KeyValue::new("mid", "y".repeat(300))];
        for s in &mut batch {
            s.instrumentation_scope = scope(0);
        }
        let res = resource(false);
        let body = super::request(&batch, &[], &super::Resource::new(&res));
        let decoded = ExportTraceServiceRequest::decode(body.to_bytes()).unwrap();
        assert_eq!(decoded, theirs(batch, &res));
    }

    /// A batch of several hundred spans (lengths of two bytes and more) decodes whole.
    #[test]
    fn a_full_batch_decodes_whole() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let batch: Vec<SpanData> = (0..512)
            .map(|_| span().new_tree(&mut runner).unwrap().current())
            .collect();
        let res = resource(true);
        let decoded = ExportTraceServiceRequest::decode(
            super::request(&batch, &[], &super::Resource::new(&res)).to_bytes(),
        )
        .unwrap();
        let spans: usize = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(spans, 512);
        assert_eq!(decoded, theirs(batch, &res));
    }
}
