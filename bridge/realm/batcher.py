"""Cross-tenant batching: concurrent kernel calls on one model coalesced into one.

Guests run on their own threads, and their realm calls arrive at the host concurrently. A `Batcher`
(one per model) turns the calls waiting for the same work (a layer, the logits, or a run-ahead step: see
model.RUN_AHEAD_TOKENS) into one kernel call, so the weights are read once for all of them. It is
continuous batching: whoever is waiting when the kernels come free goes in the next batch. There is no
fixed window: the leader waits (at most GATHER_SECONDS), while its batch has fewer than GATHER_TOKENS
tokens, and only for the tenants on their way to the same work: those whose last call finished moments
ago (within RECENT_SECONDS) and was for the work that tenants do just before it (learnt from the calls),
who are not waiting here and have not been forgotten. A tenant alone never waits, so it goes as fast as
before. Tenants drift apart (one starts while another is at layer 20): of the waiting calls the one
furthest behind (the lowest `order`, the layer) goes first, so those ahead wait for it and the two go on
together; a call that has waited MAX_WAIT_SECONDS goes first whatever its order, so nobody starves. The
thread whose call finds the kernels free leads: it runs batches until its own call is done, then hands
the lead to the oldest waiting call.

Results do not depend on who else is running: every kernel computes each token on its own, in an order
that does not depend on the batch (tests/test_batching.py checks the bits).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

# The leader waits at most GATHER_SECONDS for the tenants on their way: their last call finished within
# RECENT_SECONDS and came just before this work. A tenant that is alone never waits. Nor does a batch of
# GATHER_TOKENS tokens or more: the kernels are compute-bound from there, and the tenants still on their
# way are better off forming the next batch while this one runs.
GATHER_SECONDS = 0.003
RECENT_SECONDS = 0.02
GATHER_TOKENS = 8
# A call waiting longer than this goes next, whatever its order.
MAX_WAIT_SECONDS = 0.02
# A batch holds at most this many calls, and its tokens at most MAX_BATCH_TOKENS (a prefill chunk
# still goes alone when it is larger), so the shared scratch stays bounded.
MAX_BATCH_CALLS = 64
MAX_BATCH_TOKENS = 512

RunBatch = Callable[[Sequence[Any]], None]


class _Call:
    __slots__ = (
        "error",
        "event",
        "finished",
        "item",
        "key",
        "lead",
        "named",
        "order",
        "run",
        "since",
        "tokens",
        "who",
    )

    def __init__(
        self, key: Hashable, item: Any, run: RunBatch, tokens: int, owner: object, order: float = 0.0
    ) -> None:
        self.key = key
        self.order = order
        self.since = time.monotonic()
        self.item = item
        self.run = run
        self.tokens = tokens
        # Who calls: its owner's id, or the call's own for an anonymous one (an id, not the call itself,
        # so no call refers to itself). An owner appears at most once in a batch.
        self.who = id(owner) if owner is not None else id(self)
        self.named = owner is not None
        self.event = threading.Event()
        self.finished = False
        self.lead = False
        self.error: BaseException | None = None


class Batcher:
    """Coalesces concurrent calls with the same key into one `run(items)`; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._waiting: list[_Call] = []
        # For the owners that said who they are (a tenant): id -> (the key of its last call, when that
        # finished); and key -> the key its owners called for next, as last seen. Both stay small: one
        # entry per live owner (forget() and age drop them), one per kind of work.
        self._last: dict[int, tuple[Hashable, float]] = {}
        self._next_key: dict[Hashable, Hashable] = {}
        self._leading = False
        self.batch_sizes: Counter[int] = Counter()  # calls per batch -> how many batches

    def submit(
        self,
        key: Hashable,
        item: Any,
        run: RunBatch,
        *,
        tokens: int = 1,
        owner: object = None,
        order: float = 0.0,
    ) -> None:
        """Runs `item` (in a batch of items with the same `key`, through that batch's `run`) and returns
        when it is done. Raises what `run` raised for the batch."""
        call = _Call(key, item, run, tokens, owner, order)
        with self._lock:
            self._waiting.append(call)
            if owner is not None and (last := self._last.get(id(owner))) is not None:
                self._next_key[last[0]] = key
            lead = not self._leading
            self._leading = True
            self._lock.notify_all()
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
                self._gather()
                batch = self._take()
            try:
                batch[0].run([c.item for c in batch])
            except BaseException as exc:
                for c in batch:
                    c.error = exc
            self.batch_sizes[len(batch)] += 1
            now = time.monotonic()
            with self._lock:
                for c in batch:
                    if c.named:
                        self._last[c.who] = (c.key, now)
            for c in batch:
                c.finished = True
                if c is not mine:
                    c.event.set()

    def _gather(self) -> None:
        """Waits (briefly, lock released) for the owners on their way to the next batch's work: their
        last call finished within RECENT_SECONDS and was for the work before it, and they are neither
        waiting here nor forgotten."""
        key = self._next().key
        deadline = time.monotonic() + GATHER_SECONDS
        while True:
            now = time.monotonic()
            if (
                now >= deadline
                or sum(c.tokens for c in self._waiting if c.key == key) >= GATHER_TOKENS
                or not self._on_the_way(key, now)
            ):
                return
            self._lock.wait(deadline - now)

    def _on_the_way(self, key: Hashable, now: float) -> int:
        """How many owners are on their way to `key` (see _gather); drops the owners not seen lately."""
        for owner in [o for o, (_, when) in self._last.items() if now - when > RECENT_SECONDS]:
            del self._last[owner]
        waiting = {c.who for c in self._waiting}
        return sum(
            o not in waiting and self._next_key.get(last) == key for o, (last, _) in self._last.items()
        )

    def forget(self, owner: object) -> None:
        """`owner` will call no more (its context is freed, its guest is done): nobody waits for it."""
        with self._lock:
            self._last.pop(id(owner), None)

    def _next(self) -> _Call:
        """The call whose work goes next: the oldest if it has waited too long, else the furthest behind."""
        oldest = self._waiting[0]
        if time.monotonic() - oldest.since > MAX_WAIT_SECONDS:
            return oldest
        return min(self._waiting, key=lambda c: c.order)

    def _take(self) -> list[_Call]:
        """The next call and those waiting for the same work, within the batch bounds."""
        first = self._next()
        batch, owners, tokens = [first], {first.who}, first.tokens
        for c in self._waiting:
            if c is first:
                continue
            if len(batch) >= MAX_BATCH_CALLS:
                break
            if c.key != first.key or c.who in owners or tokens + c.tokens > MAX_BATCH_TOKENS:
                continue
            batch.append(c)
            owners.add(c.who)
            tokens += c.tokens
        taken = {id(c) for c in batch}
        self._waiting = [c for c in self._waiting if id(c) not in taken]
        return batch

    def mean_batch(self) -> float:
        batches = sum(self.batch_sizes.values())
        return sum(size * n for size, n in self.batch_sizes.items()) / batches if batches else 0.0
