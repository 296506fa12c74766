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
from typing import Any, Final

from crewtrace.events import StreamChunkType
from crewtrace.telemetry import names
from crewtrace.telemetry._attributes import clean

_TEXT, _TOOL_CALL, _REASONING = StreamChunkType.TEXT, StreamChunkType.TOOL_CALL, StreamChunkType.REASONING
_KIND_NAMES: Final = {1: _TEXT.value, 2: _TOOL_CALL.value, 4: _REASONING.value}
"""A group's chunk types are bits (text 1, tool call 2, reasoning 4); one type's name, or ``mixed``."""
GAP_BATCH: Final = 1024
"""Gaps between chunks a timeline gathers before :meth:`ChunkTimeline.add` asks for them to be recorded."""


class _Group:
    __slots__ = ("count", "first_index", "kinds", "last_ns", "size", "texts")

    def __init__(self, index: int, ns: int, size: int, text: str | None, kind: int) -> None:
        self.first_index = index
        self.count = 1
        self.kinds = kind
        self.size = size
        self.last_ns = ns
        self.texts: list[str] | None = None if text is None else [text]

    @property
    def chunk_type(self) -> str:
        """``text``, ``tool_call`` or ``reasoning`` when all its chunks are of one type, else ``mixed``."""
        return _KIND_NAMES.get(self.kinds, "mixed")

    def absorb(self, other: _Group) -> None:
        """Take in the chunks of ``other``, which came right after this group's."""
        self.count += other.count
        self.kinds |= other.kinds
        self.size += other.size
        self.last_ns = other.last_ns
        if self.texts is not None and other.texts is not None:
            self.texts.extend(other.texts)


class ChunkTimeline:
    """Per-stream chunk bookkeeping; :meth:`add` is on the per-chunk hot path.

    The latest chunk is kept as plain values (not a group object) until the next one arrives:
    most chunks then join the newest group in place, so a chunk allocates nothing but its gap.
    :meth:`events` is called once, when the stream has ended.
    """

    __slots__ = (
        "_capture",
        "_group_size",
        "_groups",
        "_last_kind",
        "_last_ns",
        "_last_size",
        "_last_text",
        "_max_events",
        "_max_groups",
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
        self._last_ns = 0  # the latest chunk (after the first): the last one until another arrives
        self._last_size = 0
        self._last_kind = 0
        self._last_text: str | None = None
        self._groups: list[_Group] = []
        self._group_size = 1
        self._max_events = max_events
        self._max_groups = max(max_events - 2, 0)
        self._capture = capture_text

    def add(self, ns: int, text: str, chunk_type: StreamChunkType) -> bool:
        """One chunk; True when :data:`GAP_BATCH` gaps wait to be recorded."""
        kind = 1 if chunk_type is _TEXT else 2 if chunk_type is _TOOL_CALL else 4  # identity: an enum's hash costs
        index = self.count
        self.count = index + 1
        if index == 0:
            self.first = _Group(0, ns, len(text), text if self._capture else None, kind)
            self._last_ns = ns
            return False
        gaps = self.gaps
        gaps.append((ns - self._last_ns) / 1e9)
        if index > 1:  # the chunk before this one, no longer the last, joins the groups
            groups = self._groups
            group = groups[-1] if groups else None
            if group is not None and (group.count < self._group_size or not self._max_groups):
                group.count += 1  # most chunks: into the newest group, in place
                group.kinds |= self._last_kind
                group.size += self._last_size
                group.last_ns = self._last_ns
                if group.texts is not None and self._last_text is not None:
                    group.texts.append(self._last_text)
            else:
                self._new_group(index - 1)
        self._last_ns = ns
        self._last_size = len(text)
        self._last_kind = kind
        if self._capture:
            self._last_text = text
        return len(gaps) >= GAP_BATCH

    def take_gaps(self) -> array[float]:
        """Hand over the gaps gathered so far (the bridge records them in batches, keeping memory bounded)."""
        gaps, self.gaps = self.gaps, array("d")
        return gaps

    def _new_group(self, index: int) -> None:
        """The chunk ``index`` (the latest until now, never the first) starts a group; merge pairwise when full."""
        groups = self._groups
        groups.append(_Group(index, self._last_ns, self._last_size, self._last_text, self._last_kind))
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
        last = None
        if self.count > 1:
            last = _Group(self.count - 1, self._last_ns, self._last_size, self._last_text, self._last_kind)
        if self._max_groups:
            ordered = [self.first, *self._groups, last]
        elif (
            self._groups and last is not None
        ):  # no room for groups: the last event stands for every chunk after the first
            rest = self._groups[0]
            rest.absorb(last)
            ordered = [self.first, rest]
        else:
            ordered = [self.first, last]
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
