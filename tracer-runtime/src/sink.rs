//! Where a service's spans go: its sampler, the processors its finished spans are handed to, its
//! instrumentation scope. The recorder fills a span; the span's service's `Sink` decides whether
//! it is sampled and exports it.

use std::fmt;
use std::sync::Arc;

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, ShouldSample as _, SpanData, SpanProcessor,
};

/// A service's recording settings: its sampler, the processors its finished spans go to, its
/// instrumentation scope, and whether its `#[traced]` spans also live in OpenTelemetry's context.
pub(crate) struct Sink {
    sampler: Sampler,
    /// The root sampler of a parent-based `sampler`, when known (read from the environment):
    /// a root span is decided without the SDK's sampling result.
    root: Option<Sampler>,
    /// Every root's decision when it is the same for all (an always-on or always-off root
    /// sampler, or a ratio of 1): a root span is then decided without a look at the sampler.
    roots: Option<bool>,
    processors: Vec<Arc<dyn SpanProcessor>>,
    scope: Scope,
    pub(crate) otel_context: bool,
    /// The processors are tracer's own export queues only: finished `#[traced]` spans reach them
    /// through the collector thread (see `collector`).
    pub(crate) buffered: bool,
    /// Those queues, when `buffered`: the collector hands them a service's spans at once.
    queues: Vec<crate::pipeline::Handle>,
    /// Its spans may hold their attributes in shared blocks: they go to one queue, whose
    /// exporter takes them as they were recorded (see [`ended_queue`](Self::ended_queue)),
    /// and its sampler reads no attribute (see [`reads_attributes`]).
    #[cfg_attr(
        not(any(feature = "redis", feature = "mysql", feature = "http")),
        allow(dead_code)
    )]
    pub(crate) shares_blocks: bool,
}

/// The instrumentation scope of a service's spans: its name and version, kept for the process.
/// Each span's `SpanData` gets an `InstrumentationScope` of its own made from them, which costs
/// a few stores, where cloning one (its `Cow`s matched, its attribute list copied) cost ~90
/// instructions per span.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    pub(crate) name: &'static str,
    pub(crate) version: Option<&'static str>,
}

impl Scope {
    /// Whether `other` is made of the same texts (as every span of one service's is).
    #[cfg(feature = "otlp-grpc")]
    #[inline]
    pub(crate) fn same(self, other: Scope) -> bool {
        std::ptr::eq(self.name, other.name)
            && match (self.version, other.version) {
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// The scope as the SDK has it.
    #[inline]
    pub(crate) fn build(self) -> InstrumentationScope {
        let b = InstrumentationScope::builder(self.name);
        match self.version {
            Some(v) => b.with_version(v),
            None => b,
        }
        .build()
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("sampler", &self.sampler)
            .field("processors", &self.processors.len())
            .field("otel_context", &self.otel_context)
            .finish()
    }
}

impl Sink {
    pub(crate) fn new(
        sampler: Sampler,
        root: Option<Sampler>,
        processors: Vec<Arc<dyn SpanProcessor>>,
        scope: Scope,
        otel_context: bool,
        queues: Option<Vec<crate::pipeline::Handle>>,
    ) -> Self {
        let shares_blocks = matches!(queues.as_deref(), Some([one]) if one.takes_ended())
            && !reads_attributes(&sampler, root.as_ref());
        let roots = match (&sampler, root.as_ref()) {
            (Sampler::ParentBased(_), Some(root)) => fixed(root),
            (Sampler::ParentBased(_), None) => None,
            (sampler, _) => fixed(sampler),
        };
        Sink {
            sampler,
            root,
            roots,
            processors,
            scope,
            otel_context,
            buffered: queues.is_some(),
            queues: queues.unwrap_or_default(),
            shares_blocks,
        }
    }

    /// The instrumentation scope of a span of this service.
    #[inline]
    pub(crate) fn scope(&self) -> InstrumentationScope {
        self.scope.build()
    }

    /// The parts of the instrumentation scope of a span of this service.
    #[inline]
    pub(crate) fn scope_parts(&self) -> Scope {
        self.scope
    }

    /// The SDK's sampling decision, taken without building a `Context` for the built-in
    /// samplers. `RecordOnly` counts as not sampled: such a span is never exported.
    /// A root whose decision is the same for every trace is decided inline (~35 instructions
    /// less per sampled-out root than a call), the rest in [`decide`](Self::decide).
    #[inline]
    pub(crate) fn sample(
        &self,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attrs: &[KeyValue],
        links: &[Link],
    ) -> bool {
        match (parent, self.roots) {
            (None, Some(decided)) => decided,
            _ => self.decide(parent, trace_id, name, kind, attrs, links),
        }
    }

    /// [`sample`](Self::sample) past a fixed root decision.
    #[inline(never)]
    fn decide(
        &self,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attrs: &[KeyValue],
        links: &[Link],
    ) -> bool {
        match &self.sampler {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::ParentBased(root) => match (parent, &self.root) {
                (Some(p), _) => p.is_sampled(),
                // A root under a built-in root sampler whose decision depends on the trace
                // (always-on and always-off roots are decided above).
                (None, Some(Sampler::TraceIdRatioBased(ratio))) => by_ratio(*ratio, trace_id),
                (None, _) => {
                    root.should_sample(None, trace_id, name, kind, attrs, links)
                        .decision
                        == SamplingDecision::RecordAndSample
                }
            },
            Sampler::TraceIdRatioBased(ratio) => by_ratio(*ratio, trace_id),
            other => {
                let cx = parent.map(|p| Context::new().with_remote_span_context(p.clone()));
                other
                    .should_sample(cx.as_ref(), trace_id, name, kind, attrs, links)
                    .decision
                    == SamplingDecision::RecordAndSample
            }
        }
    }

    /// Whether every root span of the service is sampled, on the short path (its spans go to
    /// tracer's own export queues only, and are not kept in OpenTelemetry's context): a root
    /// may then be started as a child of a sampled span is, with no sampler asked.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    #[inline]
    pub(crate) fn samples_every_root(&self) -> bool {
        self.roots == Some(true) && self.buffered && !self.otel_context
    }

    /// Whether a child of a span that is not sampled is never sampled (the parent-based samplers,
    /// and `AlwaysOff`).
    #[inline]
    pub(crate) fn follows_parent(&self) -> bool {
        matches!(self.sampler, Sampler::ParentBased(_) | Sampler::AlwaysOff)
    }

    /// Whether a child takes its parent's decision, sampled or not (the parent-based samplers):
    /// a child of a sampled span is sampled too. Not `AlwaysOff`, which samples nothing whatever
    /// the parent says.
    #[inline]
    pub(crate) fn takes_parents_decision(&self) -> bool {
        matches!(self.sampler, Sampler::ParentBased(_))
    }

    /// The one export queue, when the service's spans go to one only and its exporter takes
    /// the recorder's spans as they were recorded (see `pipeline::Handle::takes_ended`).
    #[inline]
    pub(crate) fn ended_queue(&self) -> Option<&crate::pipeline::Handle> {
        match self.queues.as_slice() {
            [one] if one.takes_ended() => Some(one),
            _ => None,
        }
    }

    /// Hands finished spans to every processor, each made a `SpanData` by `data`: to the export
    /// queues at once when `buffered` (made in place in the queue), else one by one.
    pub(crate) fn export_all<T>(
        &self,
        spans: impl Iterator<Item = T>,
        mut data: impl FnMut(T) -> SpanData,
    ) {
        match self.queues.as_slice() {
            [one] => one.push_all(spans, data),
            [] => spans.for_each(|span| self.export(data(span))),
            many => {
                let spans: Vec<SpanData> = spans.map(data).collect();
                if let Some((last, rest)) = many.split_last() {
                    for q in rest {
                        q.push_all(spans.iter(), SpanData::clone);
                    }
                    last.push_all(spans.into_iter(), std::convert::identity);
                }
            }
        }
    }

    /// Hands a finished span to every processor (the last one gets it without a copy).
    pub(crate) fn export(&self, data: SpanData) {
        if let Some((last, rest)) = self.processors.split_last() {
            for p in rest {
                p.on_end(data.clone());
            }
            last.on_end(data);
        }
    }
}

/// Whether `sampler` (with `root`, a parent-based one's root sampler when known) may read a
/// span's attributes: one of the user's, or a parent-based one whose root sampler is; the
/// built-in ones do not.
fn reads_attributes(sampler: &Sampler, root: Option<&Sampler>) -> bool {
    let builtin = |s: &Sampler| {
        matches!(
            s,
            Sampler::AlwaysOn | Sampler::AlwaysOff | Sampler::TraceIdRatioBased(_)
        )
    };
    match sampler {
        Sampler::ParentBased(_) => !root.is_some_and(builtin),
        s => !builtin(s),
    }
}

/// The decision `sampler` takes for every span, when it is one.
fn fixed(sampler: &Sampler) -> Option<bool> {
    match sampler {
        Sampler::AlwaysOn => Some(true),
        Sampler::AlwaysOff => Some(false),
        Sampler::TraceIdRatioBased(r) if *r >= 1.0 => Some(true),
        _ => None,
    }
}

/// The SDK's `TraceIdRatioBased` decision, bit for bit.
fn by_ratio(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let low = u128::from_be_bytes(trace_id.to_bytes()) as u64;
    (low >> 1) < bound
}

/// A processor shared between the service's recorder and its SDK provider (which serves spans
/// started through the `opentelemetry` API, flushes and shuts down).
#[derive(Debug)]
pub(crate) struct Shared(pub(crate) Arc<dyn SpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, mut span: SpanData) {
        last_values_only(&mut span.attributes);
        self.0.on_end(span);
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// One attribute per key: the SDK's spans keep every value set for a key, where the
/// OpenTelemetry specification asks that setting an attribute again overwrite its value (as
/// tracer's own spans do). The last value, in the place of the first. A short list is searched
/// in place (no allocation); a long one (up to the span's attribute limit, 128 by default) goes
/// through a map of the keys seen, so that its cost stays linear.
fn last_values_only(attrs: &mut Vec<opentelemetry::KeyValue>) {
    /// Past this many attributes, the search of every earlier key costs more than the map.
    const SEARCHED: usize = 16;
    if attrs.len() <= SEARCHED {
        let mut i = 1;
        while i < attrs.len() {
            match attrs[..i].iter().position(|a| a.key == attrs[i].key) {
                Some(first) => {
                    let again = attrs.remove(i);
                    attrs[first].value = again.value;
                }
                None => i += 1,
            }
        }
        return;
    }
    let mut first: std::collections::HashMap<opentelemetry::Key, usize> =
        std::collections::HashMap::with_capacity(attrs.len());
    let mut kept: Vec<opentelemetry::KeyValue> = Vec::with_capacity(attrs.len());
    for kv in attrs.drain(..) {
        match first.get(&kv.key) {
            Some(&at) => kept[at].value = kv.value,
            None => {
                first.insert(kv.key.clone(), kept.len());
                kept.push(kv);
            }
        }
    }
    *attrs = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_of_a_key_is_kept_in_its_first_place() {
        use opentelemetry::KeyValue;
        let mut attrs = vec![
            KeyValue::new("a", 1),
            KeyValue::new("b", 1),
            KeyValue::new("a", 2),
            KeyValue::new("c", 1),
            KeyValue::new("a", 3),
            KeyValue::new("b", 2),
        ];
        last_values_only(&mut attrs);
        assert_eq!(
            attrs,
            [
                KeyValue::new("a", 3),
                KeyValue::new("b", 2),
                KeyValue::new("c", 1)
            ]
        );
        let mut none: Vec<KeyValue> = Vec::new();
        last_values_only(&mut none);
        assert!(none.is_empty());
    }

    proptest::proptest! {
        /// Long lists (through the map) end as short ones do (searched in place): every key
        /// once, in the order of its first setting, with its last value.
        #[test]
        fn long_lists_keep_the_last_value_of_each_key_in_its_first_place(
            keys in proptest::collection::vec(0u8..40, 0..200)
        ) {
            use opentelemetry::KeyValue;
            let mut attrs: Vec<KeyValue> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| KeyValue::new(format!("k{k}"), i as i64))
                .collect();
            let mut expected: Vec<KeyValue> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let key = opentelemetry::Key::from(format!("k{k}"));
                match expected.iter_mut().find(|a| a.key == key) {
                    Some(a) => a.value = (i as i64).into(),
                    None => expected.push(KeyValue::new(key, i as i64)),
                }
            }
            last_values_only(&mut attrs);
            proptest::prop_assert_eq!(attrs, expected);
        }
    }

    #[test]
    fn every_built_in_sampler_decides_roots_and_children_as_the_sdk_does() {
        use opentelemetry::trace::{SpanId, TraceFlags, TraceState};
        let mut x: u128 = 0x6A09_E667_F3BC_C908_B2FB_1366_EA95_7D3E;
        let built_in = [
            Sampler::AlwaysOn,
            Sampler::AlwaysOff,
            Sampler::TraceIdRatioBased(0.25),
            Sampler::TraceIdRatioBased(1.0),
        ];
        // Each as it is, and parent-based with its root known (from the environment) or not
        // (a sampler given to the builder); a third of the spans roots (500 each), the others
        // children of a sampled or an unsampled remote parent.
        let mut cases: Vec<(Sampler, Option<Sampler>)> = Vec::new();
        for s in built_in {
            cases.push((s.clone(), None));
            cases.push((Sampler::ParentBased(Box::new(s.clone())), Some(s.clone())));
            cases.push((Sampler::ParentBased(Box::new(s)), None));
        }
        for (sdk, root) in cases {
            let sink = Sink::new(
                sdk.clone(),
                root.clone(),
                Vec::new(),
                Scope {
                    name: "t",
                    version: None,
                },
                false,
                None,
            );
            for i in 0..1500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = TraceId::from(x | 1);
                let parent = (i % 3 != 0).then(|| {
                    let flags = if i % 3 == 1 {
                        TraceFlags::SAMPLED
                    } else {
                        TraceFlags::default()
                    };
                    SpanContext::new(id, SpanId::from(7), flags, true, TraceState::default())
                });
                let cx = parent
                    .clone()
                    .map(|p| Context::new().with_remote_span_context(p));
                let theirs = sdk
                    .should_sample(cx.as_ref(), id, "x", &SpanKind::Client, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample;
                let ours = sink.sample(parent.as_ref(), id, "x", &SpanKind::Client, &[], &[]);
                assert_eq!(ours, theirs, "{sdk:?} (root {root:?}), parent {parent:?}");
            }
        }
    }

    #[test]
    fn ratio_matches_the_sdk() {
        // Trace ids spread over the whole range (xorshift), as the recorder's random ones are.
        let mut x: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834;
        for ratio in [0.0, 0.001, 0.1, 0.5, 0.9, 1.0] {
            let sdk = Sampler::TraceIdRatioBased(ratio);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = TraceId::from(x | 1);
                let theirs = sdk
                    .should_sample(None, id, "x", &SpanKind::Internal, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample;
                assert_eq!(by_ratio(ratio, id), theirs, "ratio {ratio}, trace {id}");
            }
        }
    }
}
