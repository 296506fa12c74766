"""The name CrewAI keeps in ``crewai.types.usage_metrics``: a run's token usage."""

from crewtrace.crew.outputs import UsageMetrics

__all__ = ["UsageMetrics"]
