"""The OpenTelemetry side: a bridge from crewtrace events to spans and metrics, and its set-up."""

from crewtrace.telemetry.bridge import OTelBridge
from crewtrace.telemetry.setup import Telemetry, setup_telemetry
from crewtrace.telemetry.usage_log import JsonLinesFormatter, UsageLog

__all__ = ["JsonLinesFormatter", "OTelBridge", "Telemetry", "UsageLog", "setup_telemetry"]
