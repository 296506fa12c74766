"""What ``crewtrace demo`` prints, as the tests read it: the span tree of its trace picture."""

from __future__ import annotations

TREE = [
    "invoke_workflow demo-crew",
    "  execute_task research_topic",
    "    invoke_agent Researcher",
    "      chat demo",
    "      execute_tool search_notes",
    "      execute_tool search_notes",
    "      chat demo",
    "  execute_task write_summary",
    "    invoke_agent Writer",
    "      chat demo",
]
"""The offline demo's spans, indented by depth, as the waterfall labels them (the README shows the same)."""


def waterfall(out: str) -> list[str]:
    """The span lines of the demo's trace picture."""
    lines = out[out.index("\ntrace ") + 1 :].splitlines()
    return [line for line in lines[1:] if "|" in line]
