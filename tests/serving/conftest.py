"""The model every serving test's crews talk to: the suite's fake OpenAI server, paced by topic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.openai_server import FakeOpenAIServer
from tests.support.serving import paced_reply


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(paced_reply) as fake:
        yield fake
