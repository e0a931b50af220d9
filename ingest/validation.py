"""Validation of reading payloads: the declared wire schema, then the registry and time rules.

The declared schema is :mod:`core.payload` (``BatchPayload`` / ``SingleReadingPayload``). The
plant is the one named by the authenticated topic (or HTTP token); every meter must belong to
it in the registry. Validation is per reading: one bad reading does not reject the valid
readings of its message. Whatever is rejected becomes a :class:`DeadLetter` with its raw bytes
(the whole message, or the JSON of the rejected reading) and a :class:`ReasonCode`.

Throughput: the whole message is first validated in one call of pydantic's JSON validator
against a compiled twin of the declared schema (TypedDicts, every constraint checked in
pydantic-core, strict types, timestamps restricted to RFC 3339 and parsed once per distinct
string). The twin accepts a subset of what ``core.payload`` accepts (a unit test checks the
two agree); anything it does not accept goes the authoritative path: parse, check the
envelope with ``core.payload``, then validate reading by reading to find what exactly is wrong.
Accepted readings are encoded straight into binary COPY rows (:mod:`ingest.rows`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired

import pydantic_core
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from core.contract import CODE_PATTERN, Quality
from core.payload import (
    MAX_EPOCH,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_BATCH,
    PAYLOAD_VERSION,
    BatchPayload,
    SingleReadingPayload,
    WireReading,
)
from ingest.reasons import ReasonCode
from ingest.registry_cache import MeterEntry, RegistryCache
from ingest.rows import ROW, to_micros

DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
#: readings of meters without ``installed_at`` must not be older than this (a reset device
#: clock says 1970 or 2000; such readings would also be unreadable for some clients)
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

_QUALITY_CODE: dict[str, int] = {q.value: q.code for q in Quality}  # core.contract's table
_pack = ROW.pack

# -- the authoritative schema (core.payload) ----------------------------------------------------
_BATCH = TypeAdapter(BatchPayload)
_SINGLE = TypeAdapter(SingleReadingPayload)
_WIRE = TypeAdapter(WireReading)

# -- its compiled twin for the fast path ---------------------------------------------------------
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$"
_Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]


class _FastReading(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]  # pydantic reads it
    meter: _Code
    ts: Annotated[str, StringConstraints(pattern=RFC3339)]
    value: Annotated[float, Field(allow_inf_nan=False)]
    quality: NotRequired[Literal["good", "estimated", "suspect", "missing"]]


class _FastBatch(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]  # pydantic reads it
    v: NotRequired[Annotated[int, Field(ge=1, le=PAYLOAD_VERSION)]]
    gateway: _Code
    seq: Annotated[int, Field(ge=0)]
    epoch: NotRequired[Annotated[int, Field(ge=0, le=MAX_EPOCH)]]
    held_from: NotRequired[Annotated[int, Field(ge=0)] | None]
    dropped: NotRequired[Annotated[int, Field(ge=0)] | None]
    sent_at: NotRequired[datetime | None]
    readings: Annotated[list[_FastReading], Field(max_length=MAX_READINGS_PER_BATCH)]


_FAST_BATCH = TypeAdapter(_FastBatch)
_FAST_SINGLE = TypeAdapter(_FastReading)
_BATCH_MARKER = b'"readings"'
_TS_CACHE_MAX = 4096


@dataclass(slots=True)
class DeadLetter:
    """Something that could not be stored: raw bytes and why."""

    reason_code: ReasonCode
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class BatchMark:
    """Where a gateway's batch sits in its stream (``ingest.streams`` reconciles them)."""

    gateway: str
    epoch: int
    seq: int
    held_from: int | None = None
    dropped: int | None = None


@dataclass(slots=True)
class Validated:
    """The outcome of validating one message: encoded rows to store and dead letters, and
    the batch's place in its gateway's stream (None for single readings and for messages
    whose envelope could not be read: those are not acknowledged end to end)."""

    rows: bytes = b""
    count: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    batch: BatchMark | None = None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _non_finite(item: Any) -> bool:
    value = item.get("value") if isinstance(item, dict) else None
    return isinstance(value, float) and not math.isfinite(value)


def _dump_item(item: Any) -> bytes:
    # ensure_ascii keeps lone surrogates (from "\ud800" escapes) encodable
    return json.dumps(item, allow_nan=True, separators=(",", ":")).encode()


def _parse_ts(text: str) -> int | None:
    """An RFC 3339 timestamp as PostgreSQL microseconds, or None (then: authoritative path)."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None or ts.utcoffset() is None:
        return None
    return to_micros(ts)


class Validator:
    """Turns raw payload bytes into encoded rows and dead letters; never raises on bad input.

    ``fast=False`` skips the fast path (only the authoritative one; used to test that both
    agree). Safe to use from several threads.
    """

    def __init__(
        self,
        registry: RegistryCache,
        *,
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        earliest: datetime = DEFAULT_EARLIEST,
        fast: bool = True,
    ) -> None:
        self.registry = registry
        self.future_tolerance = future_tolerance
        self.earliest = earliest
        self._earliest_us = to_micros(earliest)
        self.max_payload_bytes = max_payload_bytes
        self.fast = fast
        self._ts_cache: dict[str, int | None] = {}

    # -- entry point -------------------------------------------------------------------------
    def validate(self, plant_code: str | None, raw: bytes, received_at: datetime) -> Validated:
        if len(raw) > self.max_payload_bytes:
            return self._whole(ReasonCode.OVERSIZED,
                               f"payload of {len(raw)} bytes exceeds the limit of "
                               f"{self.max_payload_bytes} bytes", raw)
        meters = self._plant_meters(plant_code)
        if meters is None:
            return self._whole(ReasonCode.UNKNOWN_PLANT,
                               f"plant {plant_code!r} is not registered", raw)
        if self.fast:
            mark: BatchMark | None = None
            try:
                if _BATCH_MARKER in raw:
                    batch = _FAST_BATCH.validate_json(raw, strict=True)
                    items: list[Any] = batch["readings"]
                    context: str | None = f"gateway {batch['gateway']} seq {batch['seq']}"
                    mark = BatchMark(batch["gateway"], batch.get("epoch", 0), batch["seq"],
                                     batch.get("held_from"), batch.get("dropped"))
                else:
                    items = [_FAST_SINGLE.validate_json(raw, strict=True)]
                    context = None
            except ValidationError:
                pass
            else:
                result = self._fast(plant_code, meters, items, raw, received_at, context)
                if result is not None:
                    result.batch = mark
                    return result
        return self._slow(plant_code, meters, raw, received_at)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _whole(code: ReasonCode, reason: str, raw: bytes) -> Validated:
        return Validated(b"", 0, [DeadLetter(code, reason, bytes(raw))])

    def _plant_meters(self, plant_code: str | None) -> dict[str, MeterEntry] | None:
        if not plant_code:
            return None
        meters = self.registry.snapshot.plants.get(plant_code)
        if meters is None and self.registry.refresh_on_miss():
            meters = self.registry.snapshot.plants.get(plant_code)
        return meters

    def _judge(self, plant_code: str | None, meter: str, entry: MeterEntry | None,
               micros: int, limit: int, ts_text: str, received_at: datetime
               ) -> tuple[ReasonCode, str]:
        """Why a schema-valid reading is rejected (called only when it is)."""
        if entry is None:
            # the same answer whether or not another plant has a meter of that code: a plant
            # never learns which other plants or meters exist (security review M1)
            return (ReasonCode.UNKNOWN_METER,
                    f"meter {meter!r} is not a registered meter of plant {plant_code!r}")
        if micros > limit:
            return (ReasonCode.FUTURE_TIMESTAMP,
                    f"ts {ts_text} is more than {self.future_tolerance.total_seconds():g} s "
                    f"after the receive time {received_at.isoformat()}")
        if entry.installed_at is None:
            return (ReasonCode.BEFORE_INSTALLATION,
                    f"ts {ts_text} is before {self.earliest.isoformat()}, the earliest time "
                    f"accepted for meter {meter!r} (no installation date registered)")
        return (ReasonCode.BEFORE_INSTALLATION,
                f"ts {ts_text} is before meter {meter!r} was installed "
                f"({entry.installed_at.isoformat()})")

    def _lookup_missing(self, plant_code: str | None, meters: dict[str, MeterEntry],
                        meter: str) -> tuple[dict[str, MeterEntry], MeterEntry | None]:
        """A meter not in the cached plant: reload the registry (rate-limited) and look again."""
        if self.registry.refresh_on_miss():
            meters = self.registry.snapshot.plants.get(plant_code or "", meters)
        return meters, meters.get(meter)

    def _fast(self, plant_code: str | None, meters: dict[str, MeterEntry], items: list[Any],
              raw: bytes, received_at: datetime, context: str | None) -> Validated | None:
        """Registry and time rules over twin-schema items; None sends the message to the
        authoritative path (a timestamp this path does not parse)."""
        limit = to_micros(received_at + self.future_tolerance)
        earliest = self._earliest_us
        cache = self._ts_cache
        quality_code = _QUALITY_CODE
        parts: list[bytes] = []
        append = parts.append
        dead: list[DeadLetter] = []
        original: list[Any] | None = None   # the readings as sent, parsed on first rejection
        missed = False
        for index, item in enumerate(items):
            text = item["ts"]
            micros = cache.get(text)
            if micros is None:
                micros = _parse_ts(text)
                if micros is None:
                    return None
                if len(cache) >= _TS_CACHE_MAX:
                    cache.clear()
                cache[text] = micros
            meter = item["meter"]
            entry = meters.get(meter)
            if entry is None and not missed:
                missed = True
                meters, entry = self._lookup_missing(plant_code, meters, meter)
            if (entry is None or micros > limit or micros < (
                    earliest if entry.installed_us is None else entry.installed_us)):
                code, reason = self._judge(plant_code, meter, entry, micros, limit, text,
                                           received_at)
                if context is None:
                    return Validated(b"", 0, [DeadLetter(code, reason, bytes(raw))])
                if original is None:
                    original = pydantic_core.from_json(raw, allow_inf_nan=True)["readings"]
                dead.append(DeadLetter(code, f"readings[{index}] ({context}): {reason}",
                                       _dump_item(original[index])))
                continue
            append(_pack(4, 8, entry.id, 8, micros, 8, item["value"], 2,
                         quality_code[item.get("quality", "good")]))
        return Validated(b"".join(parts), len(parts), dead)

    def _slow(self, plant_code: str | None, meters: dict[str, MeterEntry], raw: bytes,
              received_at: datetime) -> Validated:
        """The authoritative path: parse, check the envelope, then reading by reading."""
        try:
            obj = pydantic_core.from_json(raw, allow_inf_nan=True)
        except ValueError as exc:
            return self._whole(ReasonCode.INVALID_JSON, f"not valid JSON: {exc}", raw)
        if not isinstance(obj, dict):
            return self._whole(ReasonCode.INVALID_SCHEMA,
                               f"payload is a JSON {type(obj).__name__}, expected an object", raw)
        if "readings" not in obj:
            try:
                single = _SINGLE.validate_json(raw, strict=True)
            except ValidationError as exc:
                code = ReasonCode.NON_FINITE if _non_finite(obj) else ReasonCode.INVALID_SCHEMA
                return self._whole(code, f"single reading: {_first_error(exc)}", raw)
            return self._accept(plant_code, meters, [(0, single, obj)], raw, received_at, None)
        items = obj["readings"]
        if not isinstance(items, list):
            return self._whole(ReasonCode.INVALID_SCHEMA, "readings: expected a list", raw)
        if len(items) > MAX_READINGS_PER_BATCH:
            return self._whole(ReasonCode.OVERSIZED,
                               f"{len(items)} readings exceed the limit of "
                               f"{MAX_READINGS_PER_BATCH} per message", raw)
        envelope = {key: value for key, value in obj.items() if key != "readings"}
        try:
            batch = _BATCH.validate_json(
                json.dumps({**envelope, "readings": []}, allow_nan=True), strict=True)
        except ValidationError as exc:
            return self._whole(ReasonCode.INVALID_SCHEMA, f"batch envelope: {_first_error(exc)}",
                               raw)
        context = f"gateway {batch.gateway} seq {batch.seq}"
        good: list[tuple[int, WireReading, Any]] = []
        dead: list[DeadLetter] = []
        for index, item in enumerate(items):
            try:
                reading = _WIRE.validate_json(_dump_item(item), strict=True)
            except ValidationError as exc:
                code = ReasonCode.NON_FINITE if _non_finite(item) else ReasonCode.INVALID_SCHEMA
                dead.append(DeadLetter(code, f"readings[{index}] ({context}): {_first_error(exc)}",
                                       _dump_item(item)))
                continue
            good.append((index, reading, item))
        result = self._accept(plant_code, meters, good, raw, received_at, context)
        result.dead[:0] = dead
        result.batch = BatchMark(batch.gateway, batch.epoch, batch.seq, batch.held_from,
                                 batch.dropped)
        return result

    def _accept(self, plant_code: str | None, meters: dict[str, MeterEntry],
                readings: list[tuple[int, WireReading, Any]], raw: bytes,
                received_at: datetime, context: str | None) -> Validated:
        """Registry and time rules over schema-valid readings of the authoritative path."""
        limit = to_micros(received_at + self.future_tolerance)
        earliest = self._earliest_us
        parts: list[bytes] = []
        dead: list[DeadLetter] = []
        missed = False
        for index, reading, item in readings:
            micros = to_micros(reading.ts)
            entry = meters.get(reading.meter)
            if entry is None and not missed:
                missed = True
                meters, entry = self._lookup_missing(plant_code, meters, reading.meter)
            if (entry is None or micros > limit or micros < (
                    earliest if entry.installed_us is None else entry.installed_us)):
                text = item.get("ts") if isinstance(item, dict) else None
                code, reason = self._judge(plant_code, reading.meter, entry, micros, limit,
                                           str(text or reading.ts.isoformat()), received_at)
                if context is None:
                    return Validated(b"", 0, [DeadLetter(code, reason, bytes(raw))])
                dead.append(DeadLetter(code, f"readings[{index}] ({context}): {reason}",
                                       _dump_item(item)))
                continue
            parts.append(_pack(4, 8, entry.id, 8, micros, 8, reading.value, 2,
                               _QUALITY_CODE[reading.quality.value]))
        return Validated(b"".join(parts), len(parts), dead)
