"""OpenTelemetry tracing of inference requests, their queue wait, batch and runtime call.

Off by default; ``inferd serve --otlp-endpoint URL`` turns it on and exports spans with the
official SDK's batch processor and OTLP/gRPC exporter (the ``tracing`` extra). Sampling is
parent-based: a request whose W3C ``traceparent`` says "sampled" is traced, one that says
"not sampled" is not, and a request without one is traced with probability
``--trace-sample-rate``. The spans of one request::

    POST /v2/models/{model}/infer      (SERVER; also POST /predict, ModelInfer, ModelStreamInfer)
    ├── inferd.queue                   arrival in the batcher -> dispatch
    └── inferd.batch                   one per batch: parent is the batch's first sampled
        └── inferd.runtime             request, and it links to every sampled request it served

A batch serves requests of many traces but a span has one parent, so the batch hangs under
its first sampled request and the others reach it through its links.

When tracing is off the transports keep ``None`` instead of a :class:`Tracing` and test it once
per request; the batcher reads one context variable. Nothing is imported from OpenTelemetry.
With ``--log-format json`` a :class:`RequestTrace` without a span still carries the request id
(and the transports keep the :class:`Tracing`) so log lines can name their request.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from inferd import __version__
from inferd.errors import ConfigError, InferdError

if TYPE_CHECKING:  # OpenTelemetry is an optional extra: imported only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TRACE_ID_HEADER = "x-trace-id"
REQUEST_ID_HEADER = "x-request-id"

_CURRENT: ContextVar[RequestTrace | None] = ContextVar("inferd_request_trace", default=None)
# The batcher times with perf_counter; spans want wall-clock nanoseconds.
_WALL_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


def current_trace() -> RequestTrace | None:
    """The request being served in this task, when tracing or JSON logs are on."""
    return _CURRENT.get()


def sampled_trace() -> RequestTrace | None:
    """The request being served in this task if its span is recorded, else None."""
    trace = _CURRENT.get()
    return trace if trace is not None and trace.sampled else None


def annotate_current(request_id: str | None, model: str, version: str | None) -> None:
    """Name the decoded request's id and model on the current trace, if there is one."""
    trace = _CURRENT.get()
    if trace is not None:
        trace.annotate(request_id, model, version)


def wall_ns(perf_counter_s: float) -> int:
    """A ``time.perf_counter()`` reading as wall-clock nanoseconds since the epoch."""
    return int(perf_counter_s * 1e9) + _WALL_OFFSET_NS


class RequestTrace:
    """One request's span (None when only its ids are wanted) and ids, current while entered.

    Attributes:
        request_id: the request's own id, or one minted for it.
        trace_id: 32 lowercase hex digits: the span's, a random one for a root left out by
            the sample rate, or (tracing off, JSON logs on) the caller's ``traceparent``'s;
            else empty.
        sampled: whether the span is recorded (and its queue, batch and runtime spans too).
    """

    __slots__ = ("_request_id", "_token", "bound", "sampled", "span", "trace_id", "tracer")

    def __init__(
        self, span: Span | None, request_id: str | None, tracer: Tracer | None = None,
        trace_id: str = "", bound: bool = True,
    ) -> None:  # fmt: skip
        self.span = span
        self.tracer = tracer
        self._request_id = request_id
        self.trace_id = trace_id
        self.sampled = False
        if span is not None:
            context = span.get_span_context()
            self.trace_id = format(context.trace_id, "032x")
            self.sampled = context.trace_flags.sampled
        # Whether entering makes it current: not for a root left out by the sample rate when
        # no JSON log line needs its ids (99% of requests at a 1% rate skip a context-variable
        # set and reset, and the batcher and annotate_current find nothing to do).
        self.bound = bound or self.sampled
        self._token: Token[RequestTrace | None] | None = None

    @property
    def request_id(self) -> str:
        """The request's id; one is minted the first time a request without one is asked."""
        if self._request_id is None:
            # Not a secret, only a name for log lines: no os.urandom call (uuid4 costs ~5 µs).
            self._request_id = format(random.getrandbits(64), "016x")
        return self._request_id

    def set_attributes(self, attributes: dict[str, str]) -> None:
        """Add span attributes (a recorded span only: callers test :attr:`sampled` first)."""
        if self.span is not None:
            self.span.set_attributes(attributes)

    def __enter__(self) -> RequestTrace:
        if self.bound:
            self._token = _CURRENT.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
        if self.span is None:
            return
        if err is not None and self.sampled:
            self._fail(err)
        self.span.end()

    def annotate(self, request_id: str | None, model: str, version: str | None = None) -> None:
        """Record what the decoded request asked for (its id replaces a minted one)."""
        if request_id:
            self._request_id = request_id
        if self.sampled and self.span is not None:
            self.span.set_attribute("inferd.request_id", self.request_id)
            self.span.set_attribute("inferd.model", model)
            if version:
                self.span.set_attribute("inferd.model_version", version)

    def http_status(self, status: int) -> None:
        """Record the HTTP status answered; 5xx marks the span as an error."""
        if self.sampled and self.span is not None:
            from opentelemetry.trace import StatusCode

            self.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.span.set_status(StatusCode.ERROR)

    def _fail(self, err: BaseException) -> None:
        from opentelemetry.trace import StatusCode

        assert self.span is not None  # callers check
        if isinstance(err, InferdError):
            self.span.set_attribute("rpc.grpc.status_code", err.grpc_code)
            if err.http_status >= 500:
                self.span.set_status(StatusCode.ERROR, err.message[:200])
        else:
            self.span.set_status(StatusCode.ERROR, type(err).__name__)


def _parent_trace_id(traceparent: str) -> str:
    """The trace id of a well-formed W3C ``traceparent`` (version 00 layout), else ''."""
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return ""
    try:
        int(parts[1], 16)
    except ValueError:
        return ""
    return parts[1].lower()


def _root_trace_id() -> int:
    """A random, non-zero 128-bit trace id (as the SDK's id generator makes them)."""
    return random.getrandbits(128) or 1


class Tracing:
    """Starts request traces for the transports; one per server process.

    A request without a ``traceparent`` is a trace root: it is sampled here, with probability
    ``sample_rate``, and one that is not never reaches the SDK (whose span would cost about
    5 µs for nothing); it still gets a random trace id for its response and log lines. Whether
    a request with a ``traceparent`` is sampled is the provider's sampler's decision, which
    :func:`tracing_from_settings` makes parent-based.

    Args:
        provider: an OpenTelemetry SDK tracer provider; None traces nothing.
        sample_rate: the share of trace roots that are sampled.
        log_ids: keep request ids in a context variable for JSON logs even without tracing.
    """

    def __init__(
        self, provider: TracerProvider | None = None, *, sample_rate: float = 1.0,
        log_ids: bool = False,
    ) -> None:  # fmt: skip
        if not 0.0 <= sample_rate <= 1.0:
            raise ConfigError("settings", "trace_sample_rate",
                              f"expected a share from 0 to 1, got {sample_rate}")  # fmt: skip
        self.provider = provider
        self.sample_rate = sample_rate
        self.log_ids = log_ids
        self._tracer: Tracer | None = None
        if provider is not None:
            self._tracer = provider.get_tracer("inferd", __version__)

    @property
    def active(self) -> bool:
        """Whether requests need a :class:`RequestTrace` at all."""
        return self._tracer is not None or self.log_ids

    @property
    def tracer(self) -> Tracer | None:
        return self._tracer

    def request(
        self, name: str, traceparent: str | None, tracestate: str | None = None,
        request_id: str | None = None,
    ) -> RequestTrace:  # fmt: skip
        """A request trace to enter around serving one request.

        Args:
            name: the span name (method and route, or the RPC).
            traceparent: the caller's W3C ``traceparent``, if any.
            tracestate: the caller's W3C ``tracestate``, if any.
            request_id: an id the transport already knows (e.g. ``x-request-id``).
        """
        if self._tracer is None:
            # Without tracing, a caller's trace id still names the log lines.
            trace_id = _parent_trace_id(traceparent) if traceparent is not None else ""
            return RequestTrace(None, request_id, trace_id=trace_id)
        if traceparent is None and random.random() >= self.sample_rate:
            trace_id = format(_root_trace_id(), "032x")
            return RequestTrace(None, request_id, trace_id=trace_id, bound=self.log_ids)
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = None
        if traceparent is not None:
            carrier = {"traceparent": traceparent}
            if tracestate is not None:
                carrier["tracestate"] = tracestate
            parent = TraceContextTextMapPropagator().extract(carrier)
        span = self._tracer.start_span(name, parent, SpanKind.SERVER)
        return RequestTrace(span, request_id, self._tracer)

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporter (blocks: call it off the loop)."""
        if self.provider is not None:
            self.provider.shutdown()


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """When a batch ran, as ``time.perf_counter()`` readings; runtime ones None on failure."""

    dispatched: float
    finished: float
    runtime_start: float | None
    runtime_end: float | None


def record_batch(
    tracer: Tracer, traced: Sequence[tuple[RequestTrace, float, int]], timing: BatchTiming,
    attributes: dict[str, Any], error: BaseException | None = None,
) -> None:  # fmt: skip
    """Emit the queue spans of a batch's sampled requests, the batch span and the runtime span.

    Args:
        tracer: the tracer of the requests' provider.
        traced: (request trace, arrival time, position in the batch) of each sampled request.
        timing: the batch's dispatch, runtime and finish times.
        attributes: batch span attributes (model, version, size, rows).
        error: what the batch failed with, if it did.
    """
    from opentelemetry.trace import Link, StatusCode, set_span_in_context

    dispatched_ns = wall_ns(timing.dispatched)
    links = []
    for trace, arrival, position in traced:
        assert trace.span is not None  # sampled traces have spans
        context = set_span_in_context(trace.span)
        queue = tracer.start_span("inferd.queue", context, start_time=wall_ns(arrival))
        queue.end(dispatched_ns)
        links.append(Link(trace.span.get_span_context(), {"inferd.batch.position": position}))
    first = traced[0][0].span
    assert first is not None
    batch = tracer.start_span(
        "inferd.batch", set_span_in_context(first), attributes=attributes, links=links,
        start_time=dispatched_ns,
    )  # fmt: skip
    if timing.runtime_start is not None and timing.runtime_end is not None:
        runtime = tracer.start_span(
            "inferd.runtime", set_span_in_context(batch), start_time=wall_ns(timing.runtime_start)
        )
        runtime.end(wall_ns(timing.runtime_end))
    if error is not None:
        batch.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200])
    batch.end(wall_ns(timing.finished))


def require_sdk() -> None:
    """Check that the ``tracing`` extra is installed.

    Raises:
        ConfigError: naming ``otlp_endpoint`` and the package to install.
    """
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            "settings", "otlp_endpoint",
            f"needs OpenTelemetry's SDK and OTLP exporter: pip install 'inferd[tracing]' ({err})",
        ) from err  # fmt: skip


def tracing_from_settings(
    endpoint: str | None, sample_rate: float, *, log_ids: bool = False
) -> Tracing:
    """The process's :class:`Tracing`: OTLP/gRPC export to ``endpoint``, or none without one.

    Raises:
        ConfigError: an endpoint was given but the ``tracing`` extra is not installed.
    """
    if endpoint is None:
        return Tracing(None, log_ids=log_ids)
    require_sdk()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    attributes = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the standard variable wins over our default
        attributes["service.name"] = "inferd"
    # Roots are sampled by Tracing.request at sample_rate; those that reach the SDK are kept,
    # and a caller's traceparent decides for its own request (parent-based).
    provider = TracerProvider(
        sampler=ParentBased(ALWAYS_ON),
        resource=Resource.create(attributes),
    )
    # http:// endpoints are plaintext; https:// ones use TLS (OTEL_EXPORTER_OTLP_* for more).
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider, sample_rate=sample_rate, log_ids=log_ids)
