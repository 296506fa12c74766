"""A stream's chunks, folded into a bounded number of span events.

The SDK keeps at most 128 events per span and evicts the oldest, which would
drop the first chunk (time to first chunk) of any long stream. So chunk events
are not added as they arrive: the timeline keeps the first chunk, the latest
chunk, and at most ``max_groups`` groups of consecutive chunks in between.
When the groups run out, neighbours merge pairwise and the group size
doubles, so per-chunk work stays O(1) amortised and memory stays bounded,
whatever the stream length. Events are written once, when the stream ends,
with each chunk's own timestamp; every event says how many chunks it stands
for, and the span carries the exact total.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

from crewtrace.telemetry import names
from crewtrace.telemetry._attributes import clean


class _Group:
    __slots__ = ("count", "first_index", "last_ns", "size", "texts", "tool_calls")

    def __init__(self, index: int, ns: int, size: int, text: str | None, tool_call: bool) -> None:
        self.first_index = index
        self.count = 1
        self.tool_calls = 1 if tool_call else 0
        self.size = size
        self.last_ns = ns
        self.texts: list[str] | None = None if text is None else [text]

    @property
    def chunk_type(self) -> str:
        if not self.tool_calls:
            return "text"
        return "tool_call" if self.tool_calls == self.count else "mixed"

    def absorb(self, other: _Group) -> None:
        """Take in the chunks of ``other``, which came right after this group's."""
        self.count += other.count
        self.tool_calls += other.tool_calls
        self.size += other.size
        self.last_ns = other.last_ns
        if self.texts is not None and other.texts is not None:
            self.texts.extend(other.texts)

    def absorb_earlier(self, other: _Group) -> None:
        """Take in the chunks of ``other``, which came right before this group's."""
        self.first_index = other.first_index
        self.count += other.count
        self.tool_calls += other.tool_calls
        self.size += other.size
        if self.texts is not None and other.texts is not None:
            self.texts[:0] = other.texts


class ChunkTimeline:
    """Per-stream chunk bookkeeping; :meth:`add` is on the per-chunk hot path."""

    __slots__ = (
        "_capture",
        "_group_size",
        "_groups",
        "_max_events",
        "_max_groups",
        "_pending",
        "count",
        "first",
        "gaps",
        "request_ns",
    )

    def __init__(self, request_ns: int, *, max_events: int, capture_text: bool) -> None:
        self.request_ns = request_ns
        self.count = 0
        self.first: _Group | None = None
        self.gaps = array("d")  # seconds between consecutive chunks, for time_per_output_chunk (drained in batches)
        self._pending: _Group | None = None  # the latest chunk: it is the last one until another arrives
        self._groups: list[_Group] = []
        self._group_size = 1
        self._max_events = max_events
        self._max_groups = max(max_events - 2, 0)
        self._capture = capture_text

    def add(self, ns: int, text: str, tool_call: bool) -> None:
        index = self.count
        self.count = index + 1
        chunk = _Group(index, ns, len(text), text if self._capture else None, tool_call)
        pending = self._pending
        if pending is None:
            self.first = chunk
        else:
            self.gaps.append((ns - pending.last_ns) / 1e9)
            if pending is not self.first:
                if self._max_groups:
                    self._push(pending)
                else:  # no room for groups: the last event stands for every chunk after the first
                    chunk.absorb_earlier(pending)
        self._pending = chunk

    def take_gaps(self) -> array[float]:
        """Hand over the gaps gathered so far (the bridge records them in batches, keeping memory bounded)."""
        gaps, self.gaps = self.gaps, array("d")
        return gaps

    def _push(self, chunk: _Group) -> None:
        groups = self._groups
        if groups and groups[-1].count < self._group_size:
            groups[-1].absorb(chunk)
            return
        groups.append(chunk)
        if len(groups) > self._max_groups:
            merged = groups[0::2]
            for left, right in zip(merged, groups[1::2], strict=False):
                left.absorb(right)
            self._groups = merged
            self._group_size *= 2

    def events(self) -> Iterator[tuple[dict[str, Any], int]]:
        """(attributes, timestamp ns) of each span event, in chunk order; at most ``max_events`` of them.

        With room for two or more, the events' counts add up to the stream's chunk count; with room
        for one, only the first chunk's event is kept (time to first chunk); with none, no event.
        """
        ordered = [self.first, *self._groups]
        if self._pending is not None and self._pending is not self.first:
            ordered.append(self._pending)
        for group in ordered[: self._max_events] if self._max_events < 2 else ordered:
            if group is None:
                continue
            attributes: dict[str, Any] = {
                names.CHUNK_INDEX: group.first_index,
                names.CHUNK_COUNT: group.count,
                names.CHUNK_TYPE: group.chunk_type,
                names.CHUNK_SIZE: group.size,
                names.CHUNK_ELAPSED: (group.last_ns - self.request_ns) / 1e9,
            }
            if group.texts is not None:
                attributes[names.CHUNK_TEXT] = clean("".join(group.texts))
            yield attributes, group.last_ns
