"""A real OTelBridge on a private bus, over in-memory SDK providers that also count their own spans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.metrics import metric_points, metric_sum
from tests.support.spans import SpanCounter

from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge


@dataclass
class Pipeline:
    """What the bridge exported (``spans``, ``reader``) and how many spans are still open (``counter``).

    The SDK's own metrics (``otel.sdk.span.live`` ...) are recorded when
    ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` is set before :meth:`build`.
    """

    bus: EventBus
    bridge: OTelBridge
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    counter: SpanCounter

    @classmethod
    def build(cls, bus: EventBus, *, capture_content: bool = False) -> Pipeline:
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        tracer_provider = TracerProvider(meter_provider=meter_provider)
        spans = InMemorySpanExporter()
        counter = SpanCounter()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        tracer_provider.add_span_processor(counter)
        bridge = OTelBridge(tracer_provider, meter_provider, capture_content=capture_content, bus=bus)
        return cls(bus, bridge, tracer_provider, meter_provider, reader, spans, counter)

    def close(self) -> None:
        self.bridge.close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def points(self, name: str) -> list[Any]:
        return metric_points(self.reader, name)

    def value(self, name: str) -> float:
        """Sum of a counter/up-down counter over all its series (0 when never recorded)."""
        return metric_sum(self.reader, name)

    def chat_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith("chat ")]
