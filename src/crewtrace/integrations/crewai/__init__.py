"""Observe unchanged CrewAI applications with crewtrace: ``instrument_crewai()`` (needs ``crewtrace[crewai]``).

CrewAI's kickoffs, tasks, agent executions (in a crew or not), LLM calls (started,
every streamed chunk, completed or failed), tool uses, flow runs and their methods,
memory and knowledge look-ups, memory saves, guardrail checks and reasoning steps
become crewtrace events on a crewtrace bus, in the order CrewAI emitted them, so
the OpenTelemetry bridge, the usage log and your own listeners treat a CrewAI
application exactly like one of crewtrace's crews.
"""

from crewtrace.integrations.crewai._instrument import CrewAIInstrumentation, instrument_crewai

__all__ = ["CrewAIInstrumentation", "instrument_crewai"]
