"""OpenTelemetry names, units and attribute values as Prometheus accepts them.

The mapping follows the OpenTelemetry-to-Prometheus compatibility rules the
OpenTelemetry exporter and the Collector use, so dashboards work on either path:
``gen_ai.client.operation.duration`` (s) -> ``gen_ai_client_operation_duration_seconds``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from crewtrace.telemetry._attributes import clean

# OpenTelemetry unit -> Prometheus name suffix (as the OTel exporter and the Collector map them).
_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes",
    "GBy": "gigabytes", "m": "meters", "V": "volts", "A": "amperes", "J": "joules",
    "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}  # fmt: skip
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_ANNOTATION = re.compile(r"\{[^}]*\}")  # UCUM annotations such as {token} carry no unit
_BAD_NAME_RUN = re.compile(r"[^a-zA-Z0-9:]+")  # runs of invalid chars (and '_') become one '_'
_BAD_LABEL_RUN = re.compile(r"[^a-zA-Z0-9]+")  # label names may not contain ':'


def metric_name(name: str) -> str:
    name = _BAD_NAME_RUN.sub("_", name)
    return "_" + name if name[:1].isdigit() else name


def label_name(key: str) -> str:
    key = _BAD_LABEL_RUN.sub("_", key)
    return "_" + key if key[:1].isdigit() else key


def unit_suffix(unit: str) -> str:
    unit = _ANNOTATION.sub("", unit or "").strip()
    if unit in _UNITS:
        return _UNITS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and bottom:
        top = _UNITS.get(top, metric_name(top).strip("_"))
        bottom = _PER_UNITS.get(bottom, metric_name(bottom).strip("_"))
        return f"{top}_per_{bottom}" if top else f"per_{bottom}"
    return metric_name(unit).strip("_")


def label_value(value: Any) -> str:
    """A label value as text prometheus_client can encode (one bad character would fail every scrape)."""
    return clean(value if isinstance(value, str) else json.dumps(value, default=str))


def labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """Sanitised labels; keys that collide after sanitising join their values with ';' (OTel spec)."""
    out: dict[str, str] = {}
    for key, raw in sorted((attributes or {}).items()):
        name, value = label_name(key), label_value(raw)
        out[name] = f"{out[name]};{value}" if name in out else value
    return out
