"""The OpenTelemetry side: a bridge from crewtrace events to spans and metrics, and its set-up."""

from crewtrace.telemetry._prometheus_collector import PrometheusCollector
from crewtrace.telemetry._prometheus_reader import PrometheusReader
from crewtrace.telemetry.bridge import OTelBridge
from crewtrace.telemetry.metrics_server import MetricsServer, start_metrics_server
from crewtrace.telemetry.setup import Telemetry, setup_telemetry
from crewtrace.telemetry.usage_log import JsonLinesFormatter, UsageLog

__all__ = [
    "JsonLinesFormatter",
    "MetricsServer",
    "OTelBridge",
    "PrometheusCollector",
    "PrometheusReader",
    "Telemetry",
    "UsageLog",
    "setup_telemetry",
    "start_metrics_server",
]
