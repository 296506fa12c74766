"""Test-support package: fake LLM endpoint, real OTLP receivers and a real Prometheus.

Import the submodules directly (``tests.support.openai_server`` ...) so a test only
pays for the dependencies it uses (grpc, a prometheus binary).
"""
