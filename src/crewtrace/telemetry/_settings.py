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

from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_EXPORT_TIMEOUT,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
)
from opentelemetry.util.genai.types import ContentCapturingMode

from crewtrace.errors import ConfigurationError
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
    raise ConfigurationError(
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
            raise ConfigurationError(
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
    """Every variable of :data:`ENV_NUMBERS`, checked (``ConfigurationError`` naming the first bad one)."""
    return {variable.name: variable.read() for variable in ENV_NUMBERS}


def port(value: object, argument: str = "prometheus_port") -> int:
    """A TCP port to listen on: an ``int`` in 0..65535 (0 picks a free one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = f"; pass {argument}={int(value)}" if isinstance(value, str) and value.strip().isdigit() else ""
        raise ConfigurationError(
            f"{argument} must be a whole number in 0..65535 (0 picks a free port), "
            f"got {value!r} ({type(value).__name__}){hint}"
        )
    if not 0 <= value <= 65535:
        raise ConfigurationError(f"{argument}={value} is not a TCP port: use 0..65535 (0 picks a free port)")
    return value


def host(value: object, argument: str = "prometheus_host") -> str:
    """Where to listen: ``None`` means loopback; an empty name (every interface) must be spelled out."""
    if value is None:
        return LOOPBACK
    if not isinstance(value, str):
        raise ConfigurationError(f"{argument} must be a host name or address, got {value!r} ({type(value).__name__})")
    if not value.strip():
        raise ConfigurationError(
            f"{argument}={value!r} would listen on every interface: name the address "
            f"({LOOPBACK!r}, the default, for this machine only; '0.0.0.0' for every interface)"
        )
    return value


def seconds(value: object, argument: str = "timeout") -> float:
    """A finite, non-negative number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{argument} must be a number of seconds, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{argument} must be a finite, non-negative number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class _Signal:
    """The variables that configure one signal's export, as the SDK documents them."""

    name: str  # "traces" | "metrics" | "logs"
    exporters: str
    endpoint: str
    protocol: str
    pull: tuple[str, ...] = ()  # exporter names that are pull readers, not push exporters


TRACES: Final = _Signal(
    "traces", OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
)
METRICS: Final = _Signal(
    "metrics",
    OTEL_METRICS_EXPORTER,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    ("prometheus",),
)
LOGS: Final = _Signal("logs", OTEL_LOGS_EXPORTER, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_LOGS_PROTOCOL)
"""Logs: the bridge's details events, when they are on."""
# The SDK's exporter names (its entry points) crewtrace builds itself; a protocol-specific name sets the protocol.
_OTLP_NAMES = {"otlp": None, "otlp_proto_grpc": "grpc", "otlp_proto_http": "http/protobuf"}


@dataclass(frozen=True, slots=True)
class SignalExport:
    """Where one signal is pushed: OTLP (``endpoint`` None lets the exporter read the variables) and the console."""

    otlp: bool
    endpoint: str | None
    protocol: str
    console: bool
    pull: frozenset[str] = frozenset()


def signal_export(signal: _Signal, endpoint: str | None, protocol: str | None, console: bool) -> SignalExport:
    """One signal's exporters from the arguments and its ``OTEL_*`` variables, checked.

    Arguments win over variables, and a per-signal variable over the general one. An endpoint (argument or
    variable) switches OTLP on; ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` names the exporters instead when set
    (``none``: this signal is not pushed anywhere, whatever the arguments say).
    """
    chosen = _exporter_names(signal)
    otlp_names = [name for name in chosen or () if name in _OTLP_NAMES]
    protocol = _protocol(protocol, signal, next((p for name in otlp_names if (p := _OTLP_NAMES[name])), None))
    if endpoint is not None:
        check_endpoint(endpoint)
    configured = endpoint or next(
        (value for variable in (signal.endpoint, OTEL_EXPORTER_OTLP_ENDPOINT) if (value := os.environ.get(variable))),
        None,
    )
    if configured is not None and endpoint is None:
        check_endpoint(configured)
    if chosen is None:  # the variable is not set: crewtrace's defaults
        return SignalExport(configured is not None, endpoint, protocol, console)
    return SignalExport(bool(otlp_names), endpoint, protocol, bool(chosen) and (console or "console" in chosen), chosen)


def _exporter_names(signal: _Signal) -> frozenset[str] | None:
    """The names in ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` (empty for ``none``), or None when it is not set."""
    raw = os.environ.get(signal.exporters, "")
    names = frozenset(name.strip().lower() for name in raw.split(",") if name.strip())
    if not names:
        return None
    known = {*_OTLP_NAMES, "console", "none", *signal.pull}
    unknown = sorted(names - known)
    if unknown or ("none" in names and len(names) > 1):
        raise ConfigurationError(
            f"{signal.exporters}={raw!r}: crewtrace exports {signal.name} with {', '.join(sorted(known - {'none'}))}, "
            f"or none at all (none, alone)" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return names - {"none"}


def _protocol(argument: str | None, signal: _Signal, named: str | None) -> str:
    if argument is not None:
        source, value = "otlp_protocol", argument
    elif named is not None:
        source, value = signal.exporters, named
    else:
        source, value = next(
            (
                (variable, raw)
                for variable in (signal.protocol, OTEL_EXPORTER_OTLP_PROTOCOL)
                if (raw := os.environ.get(variable))
            ),
            ("the default", "grpc"),
        )
    protocol = value.strip().lower()
    if protocol not in _PROTOCOLS:
        raise ConfigurationError(f"unknown OTLP protocol {value!r} ({source}): use one of {', '.join(_PROTOCOLS)}")
    return protocol


def prometheus_from_env(default_host: str) -> tuple[str, int]:
    """``OTEL_EXPORTER_PROMETHEUS_HOST`` (else ``default_host``) and ``_PORT`` (else the SDK's 9464), checked."""
    raw_port = os.environ.get(OTEL_EXPORTER_PROMETHEUS_PORT, "").strip() or "9464"
    if not raw_port.isdigit():
        raise ConfigurationError(f"{OTEL_EXPORTER_PROMETHEUS_PORT}={raw_port!r} must be a port number (e.g. 9464)")
    env_host = os.environ.get(OTEL_EXPORTER_PROMETHEUS_HOST)
    return host(env_host, OTEL_EXPORTER_PROMETHEUS_HOST) if env_host else default_host, port(
        int(raw_port), OTEL_EXPORTER_PROMETHEUS_PORT
    )


def check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError(
            f"malformed OTLP endpoint {endpoint!r}: expected a URL like http://localhost:4317 (gRPC) "
            "or http://localhost:4318 (HTTP)"
        )
