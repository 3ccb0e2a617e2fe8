"""OpenTelemetry set-up for a server process: JSON lines under ``state/telemetry/``, OTLP too
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Telemetry never breaks or blocks the work: exporters run on background threads with bounded
queues; an unwritable directory or an unreachable collector is reported once in the log and
then kept quiet; shutdown flushes with a deadline.

    telemetry = Telemetry.setup(state_dir / "telemetry", version="0.1.0")
    ...
    telemetry.shutdown()
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

__all__ = ["Telemetry"]

logger = logging.getLogger(__name__)

_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.exporter.otlp.json.file",
)


class _Once(logging.Filter):
    """Let the first warning from an exporter through; drop the repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg = f"telemetry export problem (further ones are not logged): {record.msg}"
        return True


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    files: list[Path] = field(default_factory=list)

    @classmethod
    def setup(cls, directory: Path, version: str, *, export_interval_s: float = 5.0) -> Telemetry:
        """Install tracer and meter providers globally for this process."""
        once = _Once()
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(once)
        resource = Resource.create({"service.name": "phasegate", "service.version": version})
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        files: list[Path] = []
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            traces = directory / f"traces-{stamp}.jsonl"
            metrics_file = directory / f"metrics-{stamp}.jsonl"
            span_file = FileSpanExporter(traces)
            metric_file = FileMetricExporter(metrics_file)
        except OSError as e:
            logger.error("telemetry files disabled: cannot write %s (%s)", directory, e)
        else:
            files = [traces, metrics_file]
            tracer_provider.add_span_processor(_batch(span_file))
            readers.append(
                PeriodicExportingMetricReader(
                    metric_file, export_interval_millis=export_interval_s * 1000
                )
            )
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            otlp = _otlp_exporters(export_interval_s)
            if otlp is not None:
                span_exporter, metric_reader = otlp
                tracer_provider.add_span_processor(_batch(span_exporter))
                readers.append(metric_reader)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        return cls(tracer_provider, meter_provider, files)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush and stop; bounded, so a dead collector cannot hold the process."""
        deadline = time.monotonic() + timeout_s
        try:
            self.tracer_provider.force_flush(int(timeout_s * 1000))
            self.tracer_provider.shutdown()
        except Exception:  # telemetry must never fail the shutdown
            logger.exception("tracer shutdown failed")
        remaining = max(0.1, deadline - time.monotonic())
        try:
            self.meter_provider.shutdown(timeout_millis=remaining * 1000)
        except Exception:
            logger.exception("meter shutdown failed")


def _batch(exporter: SpanExporter) -> BatchSpanProcessor:
    # A large queue: bursts of tool calls must not drop spans (the default 2,048 does).
    return BatchSpanProcessor(
        exporter, max_queue_size=65_536, max_export_batch_size=2_048, schedule_delay_millis=1_000
    )


def _otlp_exporters(interval_s: float) -> tuple[SpanExporter, MetricReader] | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.error(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed:"
            " pip install 'phasegate[otlp]'"
        )
        return None
    # Short timeouts: an unreachable collector costs a background thread a few seconds, and
    # never a tool call.
    span_exporter = OTLPSpanExporter(timeout=3)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(timeout=3),
        export_interval_millis=interval_s * 1000,
        export_timeout_millis=3000,
    )
    return span_exporter, reader
