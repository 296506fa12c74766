"""CrewAI's module paths for crewtrace's crew types, so ported code keeps its imports.

``crewai.types.streaming`` becomes ``crewtrace.types.streaming`` and
``crewai.types.usage_metrics`` becomes ``crewtrace.types.usage_metrics``; the
classes are those of :mod:`crewtrace.crew`.
"""
