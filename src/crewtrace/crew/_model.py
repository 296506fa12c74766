"""The base of ``Agent``, ``Task`` and ``Crew``: unknown and unsupported arguments are refused.

CrewAI code ports by changing imports, so CrewAI's spelling of what crewtrace
does is accepted (``Agent(max_iter=...)``), and so is an argument crewtrace
does not implement when its value asks for nothing (``allow_delegation=False``,
``memory=None``, ``tools=[]``: off, empty or None). Any other value of such an
argument is refused, saying so, never accepted and silently ignored (a
hierarchical process that quietly runs sequentially changes what the program means).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from crewtrace.errors import ConfigurationError, CrewtraceError


class StrictModel(BaseModel):
    """Every mistake in its arguments is a :class:`ConfigurationError` that names the argument.

    Unknown arguments are refused (with the closest field's name, or what to do instead
    for CrewAI arguments crewtrace does not implement); pydantic's own validation errors
    are turned into one as well.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    unsupported: ClassVar[Mapping[str, str]] = {}
    """CrewAI arguments crewtrace does not implement, with what to do instead (accepted when off or empty)."""

    spellings: ClassVar[Mapping[str, str]] = {}
    """CrewAI's names for crewtrace's fields: ``{crewai_name: field}``."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(self._explain_invalid(exc)) from None

    @classmethod
    def _explain_invalid(cls, exc: ValidationError) -> str:
        """The first error: crewtrace's own message if a validator raised one, else pydantic's, with the argument."""
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, CrewtraceError):
            return str(cause)
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        return f"{cls.__name__}({where}=...): {error['msg']}, got {error.get('input')!r}"

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_arguments(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        accepted: dict[Any, Any] = {}
        given: dict[Any, Any] = {}  # field -> the name it was given as
        for key, value in data.items():
            field = cls.spellings.get(key, key)
            if field in cls.model_fields:
                if field in accepted:
                    raise ConfigurationError(
                        f"{cls.__name__}() got both {given[field]!r} and {key!r}: they are one setting, give one"
                    )
                accepted[field], given[field] = value, key
            elif key not in cls.unsupported or value:
                raise ConfigurationError(cls._explain(str(key)))
        return accepted

    @classmethod
    def _explain(cls, key: str) -> str:
        name = cls.__name__
        if key in cls.unsupported:
            return f"{name}({key}=...) is not supported by crewtrace: {cls.unsupported[key]}"
        close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{name}() got an unknown argument {key!r}: {hint}it takes {', '.join(cls.model_fields)}"
