"""Value types shared by the pipeline, the writer and the transports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ingest.reasons import ReasonCode
from ingest.validation import BatchMark, DeadLetter


class Outcome(StrEnum):
    COMMITTED = "committed"    # readings and dead letters of the message are durable
    SET_ASIDE = "set_aside"    # refused for good by the database; kept in dead_letters
    ABANDONED = "abandoned"    # shut down before commit; nothing written, nothing acknowledged


@dataclass(frozen=True, slots=True)
class Rejection:
    reason_code: ReasonCode
    reason: str


_EVENTS = threading.Lock()   # guards the lazy creation of a receipt's event


class Receipt:
    """What happened to one submitted message; ``wait()`` blocks until it is durable.

    ``accepted`` readings passed validation and are being stored (a redelivered duplicate is
    absorbed, a different value for a stored key goes to ``reading_conflicts``); ``rejected``
    lists what was dead-lettered, with reason codes.
    """

    __slots__ = ("plant_code", "source", "received_at", "accepted", "rejected",
                 "outcome", "error", "_event")

    def __init__(self, plant_code: str | None, source: str, received_at: datetime,
                 accepted: int, rejected: tuple[Rejection, ...]) -> None:
        self.plant_code = plant_code
        self.source = source
        self.received_at = received_at
        self.accepted = accepted
        self.rejected = rejected
        self.outcome: Outcome | None = None
        self.error: str | None = None
        self._event: threading.Event | None = None   # made only for a caller that waits

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def durable(self) -> bool:
        """Everything of the message is in the database (stored, or set aside)."""
        return self.outcome in (Outcome.COMMITTED, Outcome.SET_ASIDE)

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the message is durable or abandoned (or ``timeout``)."""
        if self.outcome is None:
            with _EVENTS:
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
            if self.outcome is None:
                event.wait(timeout)
        return self.outcome

    def _resolve(self, outcome: Outcome, error: str | None = None) -> None:
        self.error = error
        self.outcome = outcome
        with _EVENTS:
            event = self._event
        if event is not None:
            event.set()

    def __repr__(self) -> str:
        return (f"Receipt(plant={self.plant_code!r}, source={self.source!r}, "
                f"accepted={self.accepted}, rejected={len(self.rejected)}, "
                f"outcome={self.outcome})")


@dataclass(slots=True, eq=False)
class Unit:
    """One validated message on its way to the database."""

    receipt: Receipt
    rows: bytes                 # binary COPY tuples (ingest.rows), ``count`` of them
    count: int
    dead: list[DeadLetter]
    raw: bytes
    on_done: Callable[[Receipt], None] | None = None
    batch: BatchMark | None = None   # the gateway stream position, for the end-to-end ack
    weight: int = field(init=False)

    def __post_init__(self) -> None:
        self.weight = max(1, self.count + len(self.dead))

    @property
    def source(self) -> str:
        return self.receipt.source

    @property
    def plant_code(self) -> str | None:
        return self.receipt.plant_code

    @property
    def received_at(self) -> datetime:
        return self.receipt.received_at


@dataclass(slots=True)
class WriteStats:
    """What one committed batch did."""

    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: dict[ReasonCode, int] = field(default_factory=dict)
    dead_letters_over_quota: int = 0     # counted in dead_letter_overflow, not stored
    acks: list[StreamAck] = field(default_factory=list)   # gateway streams after the commit
    redeliveries: int = 0                # batches whose seq was already committed
    skipped: int = 0                     # batches the gateways dropped before they came


@dataclass(frozen=True, slots=True)
class StreamAck:
    """A gateway stream's highest contiguous committed seq, as committed."""

    plant_code: str
    gateway: str
    epoch: int
    acked: int
