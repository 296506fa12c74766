"""The base every event shares: identity, time, and who it belongs to.

Events are plain, immutable data (no live Agent/Task/Crew objects) so a listener
in another layer, or another process, can read them without importing the
orchestration code.

:class:`Attribution` is the one home of the attribution fields: events inherit
them, :class:`~crewtrace.events.ExecutionScope` carries them while code runs,
and :data:`ATTRIBUTION_FIELDS` lists them for code that loops over them (the
telemetry's table of span attributes, metric labels and usage-log keys).
"""

from __future__ import annotations

import math
import random
import time
from datetime import datetime, timezone
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator
from typing_extensions import Self

from crewtrace.redaction import bound, redact

__all__ = ["ATTRIBUTION_FIELDS", "Attribution", "BaseEvent", "FailureMixin", "TokenUsage"]


_FIELD_SETS: dict[type[BaseModel], set[str]] = {}
"""Per event class, its field names: the set pydantic keeps of the fields given, shared by the events
:meth:`BaseEvent.assemble` makes (pydantic copies it before it adds to it)."""


_IDENTITY: Final = frozenset({"event_id", "timestamp_ns"})
"""What each event has of its own, which :meth:`BaseEvent.assemble` makes where it is not given."""


def _new_event_id() -> str:
    return f"{random.getrandbits(64):016x}"  # unique enough to tell events apart, and no syscall per chunk


class Attribution(BaseModel):
    """Which flow, run, crew, task, agent and step something belongs to; ``None`` outside one.

    Names and roles are labels (see :mod:`crewtrace.events.labels`): short,
    stable, written before kickoff inputs are filled in, so telemetry can use
    them as span names and metric labels. A flow (CrewAI's ``Flow``) encloses
    runs; a step (a retrieval, a memory save, a guardrail, a reasoning step)
    is a part of an agent's or a task's work that LLM calls can run inside.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow_name: str | None = None
    flow_run_id: str | None = Field(default=None, description="One id per flow run (kickoff).")
    flow_method: str | None = Field(default=None, description="The flow method running, by its name in the code.")
    run_id: str | None = None
    crew_name: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    agent_id: str | None = None
    agent_role: str | None = Field(default=None, description="The role as written (its template), never filled in.")
    step_id: str | None = Field(default=None, description="The step (retrieval, memory save, guardrail, plan) running.")

    def attribution(self) -> dict[str, str | None]:
        """The attribution fields and their values."""
        return {name: getattr(self, name) for name in ATTRIBUTION_FIELDS}


ATTRIBUTION_FIELDS: Final = tuple(Attribution.model_fields)
"""Names of the attribution fields, in order."""


class BaseEvent(Attribution):
    """Fields every event carries: its attribution, identity and time."""

    type: str
    event_id: str = Field(default_factory=_new_event_id)
    timestamp_ns: int = Field(default_factory=time.time_ns, description="Wall clock, ns since the epoch.")

    @classmethod
    def assemble(cls, fields: dict[str, Any]) -> Self:
        """An event from a value for every field, all already typed (taken from a validated event): for hot paths.

        What ``model_construct`` does, without its pass over every field for defaults and aliases,
        which costs more than validating: per streamed chunk, an event is a dict and one object.
        ``fields`` becomes the event's own (pass a fresh dict); an ``event_id`` or ``timestamp_ns``
        it lacks is made as validation would make it.
        """
        if "event_id" not in fields:
            fields["event_id"] = _new_event_id()
        if "timestamp_ns" not in fields:
            fields["timestamp_ns"] = time.time_ns()
        event = cls.__new__(cls)
        names = _FIELD_SETS.get(cls)
        if names is None:
            names = _FIELD_SETS[cls] = set(cls.model_fields)
        setattr_ = object.__setattr__
        setattr_(event, "__dict__", fields)
        setattr_(event, "__pydantic_fields_set__", names)
        setattr_(event, "__pydantic_extra__", None)
        setattr_(event, "__pydantic_private__", None)
        return event

    def shared_fields(self) -> dict[str, Any]:
        """This event's values but its identity and time: what events like it share (every chunk of one
        call), validated once here, for :meth:`assemble` to build each of them from."""
        return {name: value for name, value in self.__dict__.items() if name not in _IDENTITY}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ns / 1e9, tz=timezone.utc)


class TokenUsage(BaseModel):
    """Token counts as the provider reported them in the stream."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )

    @classmethod
    def reported(cls, input_tokens: object, output_tokens: object) -> TokenUsage | None:
        """The usage a provider reported, or None when its counts are not token counts.

        Providers send odd data: a count may be missing (``None``: 0), a whole float or a digit
        string (taken as the number), or anything else (a fraction, a negative number, text, a
        dict), which makes the usage unknown rather than the call failed.
        """
        counts = (_token_count(input_tokens), _token_count(output_tokens))
        if counts[0] is None or counts[1] is None:
            return None
        return cls(input_tokens=counts[0], output_tokens=counts[1])


_MAX_TOKENS = 2**63 - 1  # OTLP carries integers as int64: a larger one would make the exporter drop its batch


def _token_count(value: object) -> int | None:
    """A whole number of tokens that fits in int64, or None if ``value`` is not one (``None`` counts as 0)."""
    if value is None:
        return 0
    number: int
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
    else:
        return None
    return number if 0 <= number <= _MAX_TOKENS else None


class FailureMixin(BaseModel):
    """What failure events add: the message and a short, low-cardinality cause.

    ``error`` is redacted and bounded as the event is built (:func:`crewtrace.redaction.redact`),
    whoever builds it: every failure that reaches the bus, and through it telemetry and logs,
    passes here, so no emitter can forget it.
    """

    error: str
    error_type: str = Field(description="Short cause, e.g. 'RateLimitError', 'Timeout', 'cancelled'.")

    @field_validator("error")
    @classmethod
    def _redacted(cls, error: str) -> str:
        return bound(redact(error))
