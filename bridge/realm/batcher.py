"""Cross-tenant batching: concurrent kernel calls on one model coalesced into one.

Guests run on their own threads, and their realm calls arrive at the host concurrently. A `Batcher`
(one per model) turns the calls waiting for the same work (the same layer, or the logits) into one kernel
call, so the weights are read once for all of them. It is continuous batching with no window: a call
that finds the kernels free runs at once, alone if it is alone, so a lone tenant goes as fast as before;
calls that arrive while the kernels are busy wait, and whoever is waiting when they come free goes in the
next batch. The thread whose call finds the kernels free leads: it runs batches, its own first in line,
until its own call is done, then hands the lead to the oldest waiting call.

Results do not depend on who else is running: every kernel computes each token on its own, in an order
that does not depend on the batch (tests/test_batching.py checks the bits).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

# A batch holds at most this many calls, and its tokens at most MAX_BATCH_TOKENS (a prefill chunk
# still goes alone when it is larger), so the shared scratch stays bounded.
MAX_BATCH_CALLS = 64
MAX_BATCH_TOKENS = 512

RunBatch = Callable[[Sequence[Any]], None]


class _Call:
    __slots__ = ("error", "event", "finished", "item", "key", "lead", "owner", "run", "tokens")

    def __init__(self, key: Hashable, item: Any, run: RunBatch, tokens: int, owner: object) -> None:
        self.key = key
        self.item = item
        self.run = run
        self.tokens = tokens
        self.owner = owner if owner is not None else self  # a context appears at most once in a batch
        self.event = threading.Event()
        self.finished = False
        self.lead = False
        self.error: BaseException | None = None


class Batcher:
    """Coalesces concurrent calls with the same key into one `run(items)`; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._leading = False
        self.batch_sizes: Counter[int] = Counter()  # calls per batch -> how many batches

    def submit(
        self, key: Hashable, item: Any, run: RunBatch, *, tokens: int = 1, owner: object = None
    ) -> None:
        """Runs `item` (in a batch of items with the same `key`, through that batch's `run`) and returns
        when it is done. Raises what `run` raised for the batch."""
        call = _Call(key, item, run, tokens, owner)
        with self._lock:
            self._waiting.append(call)
            lead = not self._leading
            self._leading = True
        if not lead:
            call.event.wait()
            if not call.lead:
                if call.error is not None:
                    raise call.error
                return
        self._lead(call)
        if call.error is not None:
            raise call.error

    def _lead(self, mine: _Call) -> None:
        while True:
            with self._lock:
                if mine.finished:
                    if self._waiting:
                        heir = self._waiting[0]
                        heir.lead = True
                        heir.event.set()
                    else:
                        self._leading = False
                    return
                batch = self._take()
            try:
                batch[0].run([c.item for c in batch])
            except BaseException as exc:
                for c in batch:
                    c.error = exc
            self.batch_sizes[len(batch)] += 1
            for c in batch:
                c.finished = True
                if c is not mine:
                    c.event.set()

    def _take(self) -> list[_Call]:
        """The oldest waiting call and those waiting for the same work, within the batch bounds."""
        first = self._waiting[0]
        batch, owners, tokens = [first], {id(first.owner)}, first.tokens
        for c in self._waiting[1:]:
            if len(batch) >= MAX_BATCH_CALLS:
                break
            if c.key != first.key or id(c.owner) in owners or tokens + c.tokens > MAX_BATCH_TOKENS:
                continue
            batch.append(c)
            owners.add(id(c.owner))
            tokens += c.tokens
        taken = {id(c) for c in batch}
        self._waiting = [c for c in self._waiting if id(c) not in taken]
        return batch

    def mean_batch(self) -> float:
        batches = sum(self.batch_sizes.values())
        return sum(size * n for size, n in self.batch_sizes.items()) / batches if batches else 0.0
