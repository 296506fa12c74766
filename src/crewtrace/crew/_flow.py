"""What a run asks its driver to do, and the two drivers (sync and asyncio).

A run is a generator that yields requests (an LLM call, a tool call) and is
sent each result back. Events, scopes and error handling live in the
generator only, so the sync and async paths cannot drift apart. The scope
``ContextVar`` set inside the generator is visible to the driver (generators
run in their caller's context): that is how every LLM event of a task gets
its run, task and agent.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from crewtrace.crew.tool import Tool, ToolOutcome, arun_tool, run_tool
from crewtrace.events.bus import EventBus
from crewtrace.llm import LLM, CallResult

T = TypeVar("T")


class Request(Protocol):
    def run(self) -> Any: ...

    async def arun(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One LLM call; its events go to the bus of the crew that runs it, whatever bus the LLM was built with."""

    llm: LLM
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    bus: EventBus
    stream: bool | None = None
    """``None``: as the LLM was built; a streaming crew streams every call."""

    def run(self) -> CallResult:
        return self.llm.invoke(self.messages, tools=self.tools, bus=self.bus, stream=self.stream)

    async def arun(self) -> CallResult:
        return await self.llm.ainvoke(self.messages, tools=self.tools, bus=self.bus, stream=self.stream)


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tool: Tool
    arguments: dict[str, Any]

    def run(self) -> ToolOutcome:
        return run_tool(self.tool, self.arguments)

    async def arun(self) -> ToolOutcome:
        return await arun_tool(self.tool, self.arguments)


Flow = Generator[Request, Any, T]


def drive(flow: Flow[T]) -> T:
    """Run a flow, performing its requests synchronously."""
    try:
        request = next(flow)
        while True:
            try:
                result = request.run()
            except BaseException as exc:
                request = flow.throw(exc)  # the flow records the failure and re-raises
            else:
                request = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value


async def adrive(flow: Flow[T]) -> T:
    """Run a flow, awaiting its requests."""
    try:
        request = next(flow)
        while True:
            try:
                result = await request.arun()
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value
