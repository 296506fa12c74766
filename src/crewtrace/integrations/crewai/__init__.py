"""Observe unchanged CrewAI crews with crewtrace: ``instrument_crewai()`` (needs ``crewtrace[crewai]``).

CrewAI's kickoffs, tasks, agent executions, LLM calls (started, every streamed
chunk, completed or failed) and tool uses become crewtrace events on a crewtrace
bus, in the order CrewAI emitted them, so the OpenTelemetry bridge, the usage log
and your own listeners treat a CrewAI run exactly like one of crewtrace's crews.
"""

from crewtrace.integrations.crewai._instrument import CrewAIInstrumentation, instrument_crewai

__all__ = ["CrewAIInstrumentation", "instrument_crewai"]
