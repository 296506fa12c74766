"""Adapters that feed other frameworks' events into crewtrace's event bus.

Each adapter is a subpackage (``crewtrace.integrations.crewai``) that imports its
framework; this package imports nothing, so ``import crewtrace`` never pulls one in.
Adapters depend on ``crewtrace.events`` (plus ``crewtrace.errors`` and
``crewtrace.redaction``) only: the bridge sees their events like any other.
"""
