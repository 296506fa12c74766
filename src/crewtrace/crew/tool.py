"""``@tool``: plain Python functions an agent can call through native function calling.

The name, description and JSON schema come from the function itself (its
name, docstring, signature and type hints; pydantic builds the schema and
validates the model's arguments against it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, Field, ValidationError, create_model

from crewtrace.errors import ConfigurationError, ErrorType
from crewtrace.redaction import error_message

__all__ = ["Tool", "ToolOutcome", "tool"]

_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


class Tool:
    """A function wrapped for agents; calling it calls the function."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"tool timeout must be positive seconds, got {timeout}")
        self.func = func
        self.name = name or func.__name__
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", self.name):
            raise ConfigurationError(
                f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-' (OpenAI's rule)"
            )
        summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
        self.description = description or summary or self.name
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(func)
        self.args_model = _args_model(func, self.name, arg_docs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry."""
        parameters = self.args_model.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }

    def parse_arguments(self, arguments: str) -> dict[str, Any]:
        """The model's JSON arguments, validated; raises ValueError saying what is wrong."""
        try:
            raw = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from exc
        if not isinstance(raw, dict):
            raise ValueError("arguments must be a JSON object")
        try:
            validated = self.args_model.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"arguments do not match the schema: {problems}") from exc
        return {field: getattr(validated, field) for field in type(validated).model_fields}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What running a tool gave: output, or an error that goes back to the model."""

    output: str | None
    error: str | None
    error_type: str | None
    duration_s: float


def run_tool(tool: Tool, arguments: dict[str, Any]) -> ToolOutcome:
    """Run a tool synchronously, within its timeout. Never raises for the tool's own failures."""
    started = time.perf_counter()
    try:
        if tool.is_async:
            result = _run_coroutine(tool, arguments)
        elif tool.timeout is None:
            result = tool.func(**arguments)
        else:
            result = _in_thread(tool, tool.func, arguments, tool.timeout)
    except Exception as exc:
        return _failure(tool, exc, started)
    return _success(result, started)


async def arun_tool(tool: Tool, arguments: dict[str, Any]) -> ToolOutcome:
    """Run a tool from asyncio: coroutines awaited, plain functions on a worker thread."""
    started = time.perf_counter()
    try:
        call: Awaitable[Any] = tool.func(**arguments) if tool.is_async else asyncio.to_thread(tool.func, **arguments)
        result = await _with_timeout(call, tool.timeout)
    except Exception as exc:
        return _failure(tool, exc, started)
    return _success(result, started)


async def _with_timeout(call: Awaitable[Any], timeout: float | None) -> Any:
    return await asyncio.wait_for(call, timeout) if timeout is not None else await call


def _run_coroutine(tool: Tool, arguments: dict[str, Any]) -> Any:
    """An async tool from sync code: on its own loop, or a thread's when this thread runs one (Jupyter)."""

    def run() -> Any:
        return asyncio.run(_with_timeout(tool.func(**arguments), tool.timeout))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    return _in_thread(tool, run, {}, None)  # the coroutine enforces the tool's timeout itself


def _in_thread(tool: Tool, func: Callable[..., Any], arguments: dict[str, Any], timeout: float | None) -> Any:
    # A thread cannot be killed: a tool that overruns keeps running, its result discarded.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"crewtrace-tool-{tool.name}")
    try:
        return executor.submit(copy_context().run, functools.partial(func, **arguments)).result(timeout=timeout)
    finally:
        executor.shutdown(wait=False)


def _failure(tool: Tool, exc: Exception, started: float) -> ToolOutcome:
    if isinstance(exc, (TimeoutError, FutureTimeout, asyncio.TimeoutError)):
        message, error_type = f"timed out after {tool.timeout} s", ErrorType.TIMEOUT
    else:
        message, error_type = error_message(exc), type(exc).__name__
    return ToolOutcome(None, message, error_type, time.perf_counter() - started)


def _success(result: Any, started: float) -> ToolOutcome:
    """The tool's result as text for the model; a result that has no text form is a tool failure.

    Whatever turning it into text raises (tuple keys, a cycle, a ``__str__`` that fails, nesting
    deep enough for ``RecursionError``) goes back to the model as the tool's error: no tool result
    ends a run. Only the type names are reported: the exception's message may quote the result.
    """
    try:
        text = _as_text(result)
    except Exception as exc:
        message = f"the tool returned a {type(result).__name__} that cannot be sent as text ({type(exc).__name__})"
        return ToolOutcome(None, message, ErrorType.INVALID_RESULT, time.perf_counter() - started)
    return ToolOutcome(text, None, None, time.perf_counter() - started)


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """First paragraph, and Google-style ``Args:`` descriptions."""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    arg_docs: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
        elif in_args and line and not line[0].isspace():
            in_args = False
        elif in_args and (match := _ARG_LINE.match(line)):
            arg_docs[match.group(1)] = match.group(2).strip()
    return summary, arg_docs


def _args_model(func: Callable[..., Any], name: str, arg_docs: dict[str, str]) -> type[BaseModel]:
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ConfigurationError(f"tool {name!r}: *args and **kwargs have no JSON schema; name every parameter")
        default = ... if parameter.default is parameter.empty else parameter.default
        annotation = hints.get(parameter.name, Any)
        fields[parameter.name] = (annotation, Field(default, description=arg_docs.get(parameter.name)))
    return create_model(f"{name}_arguments", **fields)


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Mark a function (sync or async) as a tool: ``@tool`` or ``@tool(timeout=5)``."""
    if func is not None:
        return Tool(func)
    return lambda f: Tool(f, name=name, description=description, timeout=timeout)
