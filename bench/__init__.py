"""crewtrace's benchmark (not part of the test suite).

``python -m bench.run`` measures, interleaved in one run, bare litellm
streaming, ``crewtrace.LLM`` with and without the OpenTelemetry bridge, the
event bus alone and, where installed (the ``bench`` extra), OpenInference's
litellm instrumentation and litellm's own OpenTelemetry callback. It prints
tables and writes the same figures to ``docs/benchmarks.json``; the method
and the latest results are in ``docs/benchmarks.md``.
"""
