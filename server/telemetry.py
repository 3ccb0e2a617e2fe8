"""OpenTelemetry set-up for a server process: JSON lines under ``state/telemetry/``, OTLP too
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Telemetry never breaks or blocks the work: exporters run on background threads with bounded
queues; an unwritable directory or an unreachable collector is reported once in the log and
then kept quiet; shutdown flushes with a deadline, the local files first (an MCP client kills a
stdio server that has not exited about 2 s after its stdin closes, so the collector gets only
what is left of the deadline).

    telemetry = Telemetry.setup(state_dir / "telemetry", version="0.1.0")
    ...
    telemetry.shutdown()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

__all__ = ["Telemetry"]

logger = logging.getLogger(__name__)
# Failures of our own flush and shutdown calls: they share the exporters' once-filter.
_export_logger = logging.getLogger(f"{__name__}.export")

# A logger's filters apply only to records logged on that very logger, not to its children's:
# these are the module loggers the exporters and processors actually log on.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.exporter.otlp.json.file",
    "opentelemetry.exporter.otlp.json.file.trace_exporter",
    "opentelemetry.exporter.otlp.json.file.metric_exporter",
    "opentelemetry.exporter.otlp.json.file._internal",
    _export_logger.name,
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
    # The file sinks, flushed first at shutdown; the OTLP exporters, stopped at the deadline.
    local: list[BatchSpanProcessor | MetricReader] = field(default_factory=list)
    remote: list[SpanExporter | MetricExporter] = field(default_factory=list)

    @classmethod
    def setup(cls, directory: Path, version: str, *, export_interval_s: float = 5.0) -> Telemetry:
        """Install tracer and meter providers globally for this process."""
        once = _Once()
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(once)
        resource = Resource.create({"service.name": "phasegate", "service.version": version})
        # No atexit hooks: `shutdown` is the one bounded exit path.
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        readers: list[MetricReader] = []
        files: list[Path] = []
        local: list[BatchSpanProcessor | MetricReader] = []
        remote: list[SpanExporter | MetricExporter] = []
        # The OTLP exporters first: importing them takes a while, and a metric reader's thread
        # collects after one interval whether or not its MeterProvider exists yet ("Cannot call
        # collect on a MetricReader until it is registered"), so the readers start last.
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            otlp = _otlp_exporters(export_interval_s)
            if otlp is not None:
                span_exporter, otlp_reader, metric_exporter = otlp
                tracer_provider.add_span_processor(_batch(span_exporter))
                readers.append(otlp_reader)
                remote = [span_exporter, metric_exporter]
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
            span_processor = _batch(span_file)
            metric_reader = PeriodicExportingMetricReader(
                metric_file, export_interval_millis=export_interval_s * 1000
            )
            tracer_provider.add_span_processor(span_processor)
            readers.append(metric_reader)
            local = [span_processor, metric_reader]
        # No exemplars: offering each measurement to a reservoir was about a sixth of what
        # telemetry cost a tool call, and spans already carry the ledger seq (and entries the
        # trace id), which is how a number is traced back to its call.
        meter_provider = MeterProvider(
            resource=resource,
            metric_readers=readers,
            shutdown_on_exit=False,
            exemplar_filter=AlwaysOffExemplarFilter(),
        )
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        return cls(tracer_provider, meter_provider, files, local, remote)

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Flush and stop within `timeout_s`, so a dead collector cannot hold the process.

        The local files are flushed first; then both providers shut down (the OTLP exporters'
        last attempt) on a daemon thread that is waited for only until the deadline. If it is
        still busy then, the OTLP exporters are stopped (no more retries) and what they had not
        sent is dropped.
        """
        deadline = time.monotonic() + timeout_s
        for sink in self.local:
            try:
                sink.force_flush(timeout_millis=max(100, int((deadline - time.monotonic()) * 1000)))
            except Exception as e:  # telemetry must never fail the shutdown
                _export_logger.warning("flush failed: %s", e)
        worker = threading.Thread(
            target=self._shutdown_providers, name="phasegate-telemetry-shutdown", daemon=True
        )
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            for exporter in self.remote:
                try:
                    exporter.shutdown()
                except Exception as e:
                    _export_logger.warning("OTLP exporter shutdown failed: %s", e)
            worker.join(0.2)
            logger.warning(
                "telemetry: gave up on the OTLP collector after %.1f s; what it had not"
                " received is dropped (the JSON-lines files are not affected)",
                timeout_s,
            )

    def _shutdown_providers(self) -> None:
        try:
            self.tracer_provider.shutdown()
        except Exception as e:  # e.g. the last buffered line cannot be written: disk full
            _export_logger.warning("tracer shutdown failed: %s", e)
        try:
            self.meter_provider.shutdown()
        except Exception as e:
            _export_logger.warning("meter shutdown failed: %s", e)


def _batch(exporter: SpanExporter) -> BatchSpanProcessor:
    # A large queue: bursts of tool calls must not drop spans (the default 2,048 does).
    return BatchSpanProcessor(
        exporter, max_queue_size=65_536, max_export_batch_size=2_048, schedule_delay_millis=1_000
    )


def _otlp_exporters(
    interval_s: float,
) -> tuple[SpanExporter, MetricReader, MetricExporter] | None:
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
    metric_exporter = OTLPMetricExporter(timeout=3)
    reader = PeriodicExportingMetricReader(
        metric_exporter,
        export_interval_millis=interval_s * 1000,
        export_timeout_millis=3000,
    )
    return span_exporter, reader, metric_exporter
