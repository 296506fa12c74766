"""Checks of what telemetry is given, arguments and ``OTEL_*`` variables alike.

Each check runs before anything is built and fails with a message that names the
argument or variable, the bad value, and what a good one looks like.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_EXPORT_TIMEOUT,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
)
from opentelemetry.util.genai.types import ContentCapturingMode

from crewtrace.telemetry import names

_logger = logging.getLogger("crewtrace.telemetry")

LOOPBACK: Final = "127.0.0.1"
"""Where ``/metrics`` listens unless the user names a host."""
_PROTOCOLS = ("grpc", "http/protobuf")

# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: opentelemetry-util-genai's four ContentCapturingMode
# names, and the booleans crewtrace always read (true: content on spans, as it was).
_CAPTURE_ON = frozenset({"true", "1", "yes", "on"})
_CAPTURE_OFF = frozenset({"", "false", "0", "no", "off", "none", "disabled"})
_EVENT_MODES = frozenset({ContentCapturingMode.EVENT_ONLY, ContentCapturingMode.SPAN_AND_EVENT})
_warned_env_values: set[tuple[str, str]] = set()


def capture_mode(value: object, argument: str = "capture_content") -> ContentCapturingMode:
    """``True`` is ``SPAN_ONLY``, ``False`` ``NO_CONTENT``, a mode itself; ``None`` reads the environment."""
    if value is None:
        return capture_mode_from_env()
    if isinstance(value, ContentCapturingMode):
        return value
    if isinstance(value, bool):
        return ContentCapturingMode.SPAN_ONLY if value else ContentCapturingMode.NO_CONTENT
    raise TypeError(
        f"{argument} must be True, False, a ContentCapturingMode or None (None reads {names.ENV_CAPTURE_CONTENT}), "
        f"got {value!r} ({type(value).__name__})"
    )


def capture_mode_from_env() -> ContentCapturingMode:
    """A mode's name or a boolean; anything else means no content, with one warning."""
    raw = os.environ.get(names.ENV_CAPTURE_CONTENT, "")
    value = raw.strip().lower()
    if value in _CAPTURE_ON:
        return ContentCapturingMode.SPAN_ONLY
    if value not in _CAPTURE_OFF:
        mode = ContentCapturingMode.__members__.get(value.upper())
        if mode is not None:
            return mode
        _warn_once(
            names.ENV_CAPTURE_CONTENT,
            raw,
            f"content capture stays off (use true, false or one of {', '.join(ContentCapturingMode.__members__)})",
        )
    return ContentCapturingMode.NO_CONTENT


def details_events(mode: ContentCapturingMode) -> bool:
    """Whether to emit each call's details event: ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT`` if set, else the mode."""
    raw = os.environ.get(names.ENV_EMIT_EVENT, "")
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    if value:
        _warn_once(names.ENV_EMIT_EVENT, raw, "the capture mode decides (use true or false)")
    return mode in _EVENT_MODES


def _warn_once(variable: str, raw: str, consequence: str) -> None:
    if (variable, raw) not in _warned_env_values:
        _warned_env_values.add((variable, raw))
        _logger.warning("%s=%r is not a value crewtrace knows: %s", variable, raw, consequence)


@dataclass(frozen=True, slots=True)
class EnvNumber:
    """One numeric ``OTEL_*`` variable: its default and what a valid value is."""

    name: str
    default: float
    unit: str
    whole: bool = False
    positive: bool = False  # > 0; otherwise >= 0

    def read(self) -> float:
        raw = os.environ.get(self.name)
        if raw is None or not raw.strip():
            return self.default
        try:
            number = float(int(raw)) if self.whole else float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0 or (self.positive and number == 0):
            kind = "whole number" if self.whole else "number"
            sign = "positive" if self.positive else "non-negative"
            raise ValueError(
                f"{self.name}={raw!r} must be a {sign} {kind} of {self.unit} "
                f"(e.g. {self.name}={self.default:g}, the default)"
            )
        return number


# Every numeric OTEL_* variable crewtrace's providers and exporters read.
ENV_NUMBERS: Final = (
    EnvNumber(OTEL_BSP_MAX_QUEUE_SIZE, 2048, "spans", whole=True, positive=True),
    EnvNumber(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512, "spans", whole=True, positive=True),
    EnvNumber(OTEL_BSP_SCHEDULE_DELAY, 5000, "milliseconds", whole=True, positive=True),
    EnvNumber(OTEL_BSP_EXPORT_TIMEOUT, 30000, "milliseconds", whole=True),
    EnvNumber(OTEL_METRIC_EXPORT_INTERVAL, 60000, "milliseconds", positive=True),
    EnvNumber(OTEL_METRIC_EXPORT_TIMEOUT, 30000, "milliseconds"),
    EnvNumber(OTEL_EXPORTER_OTLP_TIMEOUT, 10, "seconds"),
    EnvNumber(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, 10, "seconds"),
    EnvNumber(OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, 10, "seconds"),
)


def env_numbers() -> dict[str, float]:
    """Every variable of :data:`ENV_NUMBERS`, checked (``ValueError`` naming the first bad one)."""
    return {variable.name: variable.read() for variable in ENV_NUMBERS}


def port(value: object, argument: str = "prometheus_port") -> int:
    """A TCP port to listen on: an ``int`` in 0..65535 (0 picks a free one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = f"; pass {argument}={int(value)}" if isinstance(value, str) and value.strip().isdigit() else ""
        raise TypeError(
            f"{argument} must be a whole number in 0..65535 (0 picks a free port), "
            f"got {value!r} ({type(value).__name__}){hint}"
        )
    if not 0 <= value <= 65535:
        raise ValueError(f"{argument}={value} is not a TCP port: use 0..65535 (0 picks a free port)")
    return value


def host(value: object, argument: str = "prometheus_host") -> str:
    """Where to listen: ``None`` means loopback; an empty name (every interface) must be spelled out."""
    if value is None:
        return LOOPBACK
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a host name or address, got {value!r} ({type(value).__name__})")
    if not value.strip():
        raise ValueError(
            f"{argument}={value!r} would listen on every interface: name the address "
            f"({LOOPBACK!r}, the default, for this machine only; '0.0.0.0' for every interface)"
        )
    return value


def seconds(value: object, argument: str = "timeout") -> float:
    """A finite, non-negative number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite, non-negative number of seconds, got {value!r}")
    return float(value)


def otlp_settings(endpoint: str | None, protocol: str | None) -> tuple[str | None, str]:
    """Which endpoint (None: no OTLP) and protocol, validated so mistakes fail at start-up, not mid-run."""
    protocol = (protocol or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc").strip().lower()
    if protocol not in _PROTOCOLS:
        raise ValueError(f"unknown OTLP protocol {protocol!r}: use one of {', '.join(_PROTOCOLS)}")
    if endpoint is None:
        from_env = [
            value
            for variable in (
                OTEL_EXPORTER_OTLP_ENDPOINT,
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
            )
            if (value := os.environ.get(variable))
        ]
        for value in from_env:
            check_endpoint(value)
        # "" means: export, and let the exporters read the variables themselves.
        return ("" if from_env else None), protocol
    check_endpoint(endpoint)
    return endpoint, protocol


def check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(
            f"malformed OTLP endpoint {endpoint!r}: expected a URL like http://localhost:4317 (gRPC) "
            "or http://localhost:4318 (HTTP)"
        )
