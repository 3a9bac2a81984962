"""A real propagation peer for tracer's interop tests: OpenTelemetry Python's propagators
(W3C tracecontext and baggage, B3 single and multi, Jaeger) and the OpenTracing-era
jaeger-client's HTTP codec.

    peer.py inject <format> <trace_id hex> <span_id hex> <sampled 0|1> <debug 0|1> <baggage json>
        prints the headers the peer sends, as a JSON object
    peer.py extract <format>  (headers as a JSON object on stdin)
        prints what the peer reads: {"trace_id", "span_id", "sampled", "debug", "baggage"}

<format>: tracecontext, b3, b3multi, jaeger (OpenTelemetry Python), jaeger-client.
"""
import json
import sys


def otel_propagator(fmt):
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator

    if fmt == "tracecontext":
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator as P
    elif fmt == "b3":
        from opentelemetry.propagators.b3 import B3SingleFormat as P
    elif fmt == "b3multi":
        from opentelemetry.propagators.b3 import B3MultiFormat as P
    elif fmt == "jaeger":
        from opentelemetry.propagators.jaeger import JaegerPropagator as P
    else:
        raise SystemExit(f"unknown format {fmt}")
    if fmt == "jaeger":
        # Jaeger carries baggage in its own uberctx- headers.
        return P()
    return CompositePropagator([P(), W3CBaggagePropagator()])


def otel_inject(fmt, trace_id, span_id, sampled, debug, bag):
    from opentelemetry import baggage, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    sc = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=flags)
    ctx = trace.set_span_in_context(NonRecordingSpan(sc), Context())
    for k, v in bag.items():
        ctx = baggage.set_baggage(k, v, context=ctx)
    if debug and fmt in ("b3", "b3multi"):
        # OpenTelemetry Python keeps B3's debug flag in the context under this key.
        from opentelemetry.propagators import b3 as b3mod
        from opentelemetry.context import set_value
        key = getattr(b3mod, "_B3_DEBUG_KEY", None) or "b3-debug"
        ctx = set_value(key, True, ctx)
    carrier = {}
    otel_propagator(fmt).inject(carrier, context=ctx)
    return carrier


def otel_extract(fmt, headers):
    from opentelemetry import baggage, trace

    ctx = otel_propagator(fmt).extract(headers)
    sc = trace.get_current_span(ctx).get_span_context()
    return {
        "trace_id": format(sc.trace_id, "032x") if sc.is_valid else None,
        "span_id": format(sc.span_id, "016x") if sc.is_valid else None,
        "sampled": bool(sc.trace_flags & 0x01),
        "debug": None,
        "baggage": {k: str(v) for k, v in baggage.get_all(ctx).items()},
    }


def jaeger_codec():
    from jaeger_client.codecs import TextCodec

    return TextCodec(url_encoding=True, trace_id_header="uber-trace-id", baggage_header_prefix="uberctx-")


def jc_inject(trace_id, span_id, sampled, debug, bag):
    from jaeger_client import SpanContext

    flags = (0x01 if sampled or debug else 0) | (0x02 if debug else 0)
    sc = SpanContext(int(trace_id, 16), int(span_id, 16), None, flags, baggage=bag)
    carrier = {}
    jaeger_codec().inject(sc, carrier)
    return carrier


def jc_extract(headers):
    sc = jaeger_codec().extract(headers)
    if sc is None or not sc.trace_id:
        return {"trace_id": None, "span_id": None, "sampled": False, "debug": False, "baggage": {}}
    return {
        "trace_id": format(sc.trace_id, "032x"),
        "span_id": format(sc.span_id, "016x"),
        "sampled": bool(sc.flags & 0x01),
        "debug": bool(sc.flags & 0x02),
        "baggage": dict(sc.baggage or {}),
    }


def main():
    mode, fmt = sys.argv[1], sys.argv[2]
    if mode == "inject":
        trace_id, span_id, sampled, debug, bag = sys.argv[3], sys.argv[4], sys.argv[5] == "1", sys.argv[6] == "1", json.loads(sys.argv[7])
        out = jc_inject(trace_id, span_id, sampled, debug, bag) if fmt == "jaeger-client" else otel_inject(fmt, trace_id, span_id, sampled, debug, bag)
    elif mode == "extract":
        headers = {k.lower(): v for k, v in json.load(sys.stdin).items()}
        out = jc_extract(headers) if fmt == "jaeger-client" else otel_extract(fmt, headers)
    else:
        raise SystemExit(f"unknown mode {mode}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
