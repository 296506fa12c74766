"""The base of ``Agent``, ``Task`` and ``Crew``: unknown and unsupported arguments are refused.

CrewAI code ports by changing imports, so an argument crewtrace does not
implement must say so, never be accepted and silently ignored (a hierarchical
process that quietly runs sequentially changes what the program means).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from crewtrace.errors import ConfigurationError


class StrictModel(BaseModel):
    """Rejects arguments that are not fields with a :class:`ConfigurationError` that names them."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    unsupported: ClassVar[Mapping[str, str]] = {}
    """CrewAI arguments crewtrace does not implement, with what to do instead."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_arguments(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise ConfigurationError(cls._explain(str(key)))
        return data

    @classmethod
    def _explain(cls, key: str) -> str:
        name = cls.__name__
        if key in cls.unsupported:
            return f"{name}({key}=...) is not supported by crewtrace: {cls.unsupported[key]}"
        close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{name}() got an unknown argument {key!r}: {hint}it takes {', '.join(cls.model_fields)}"
