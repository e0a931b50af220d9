"""Pure read planning: turn register-map fields into as few Modbus read requests as allowed.

The plan is computed once (at startup) and only executed by the transport. Rules:

- one request covers one unit id and one *read* function code (1 coils, 2 discrete inputs,
  3 holding registers, 4 input registers); no other function code can be produced —
  :class:`ReadRequest` refuses anything outside :data:`READ_FUNCTION_CODES`;
- a request reads at most 125 registers (FC3/FC4) or 2000 bits (FC1/FC2), the Modbus
  application-protocol limits (lower limits can be configured for picky devices);
- fields are merged when the gap between them is at most ``max_gap`` registers (or bits);
  the gap registers are read and ignored (default 0: only strictly adjacent fields merge,
  since some meters answer "illegal data address" for unmapped registers);
- a field is never split across two requests;
- the result is deterministic: requests ordered by function code then address, each
  request's fields ordered by address then name.

:func:`decode_response` turns a response into engineering values with the codec, resolving
``scale_register`` exponents from fields in the same request; :func:`decode_plan` does the
same across all requests of a poll, so a scale register may sit in any request of the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from modbus.codec import Number
from modbus.registermap import RegisterField, RegisterMap

__all__ = [
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "READ_FUNCTION_CODES",
    "ReadRequest",
    "decode_plan",
    "decode_response",
    "plan_reads",
]

READ_FUNCTION_CODES: frozenset[int] = frozenset({1, 2, 3, 4})
"""The only function codes the planner emits: read coils / discrete inputs / holding / input."""

MAX_REGISTERS_PER_READ = 125
"""Modbus limit for one FC3/FC4 read (registers)."""

MAX_BITS_PER_READ = 2000
"""Modbus limit for one FC1/FC2 read (bits)."""

_BIT_FUNCTION_CODES = frozenset({1, 2})

Value = Number | None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: ``count`` registers (or bits) from ``address`` on ``unit_id``.

    ``fields`` are the register-map fields decoded from the response; each lies wholly
    inside ``[address, address + count)``. Construction enforces the invariants, so an
    invalid request (e.g. a write function code or an over-long read) cannot exist.
    """

    unit_id: int
    function_code: int
    address: int
    count: int
    fields: tuple[RegisterField, ...]

    def __post_init__(self) -> None:
        if self.function_code not in READ_FUNCTION_CODES:
            raise ValueError(
                f"function code {self.function_code} is not a read function code "
                f"{sorted(READ_FUNCTION_CODES)}"
            )
        if not 0 <= self.unit_id <= 255:
            raise ValueError(f"unit id {self.unit_id} is outside 0..255")
        limit = _limit(self.function_code)
        if not 1 <= self.count <= limit:
            raise ValueError(f"count {self.count} is outside 1..{limit} for FC{self.function_code}")
        if not 0 <= self.address or self.address + self.count > 0x10000:
            raise ValueError(f"read {self.address}+{self.count} is outside the address space")
        for f in self.fields:
            if f.function_code != self.function_code:
                raise ValueError(f"field {f.name!r} is read with FC{f.function_code}")
            if f.address < self.address or f.end > self.end:
                raise ValueError(f"field {f.name!r} lies outside {self.address}..{self.end - 1}")

    @property
    def end(self) -> int:
        """One past the last address read."""
        return self.address + self.count

    @property
    def is_bit_read(self) -> bool:
        """True for FC1/FC2 (the response is bits, not registers)."""
        return self.function_code in _BIT_FUNCTION_CODES


def _limit(
    function_code: int,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
) -> int:
    return max_bits if function_code in _BIT_FUNCTION_CODES else max_registers


def plan_reads(
    source: RegisterMap | Iterable[RegisterField],
    unit_id: int,
    *,
    select: Iterable[str] | None = None,
    max_gap: int = 0,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
) -> tuple[ReadRequest, ...]:
    """Coalesce fields into read requests for one unit id.

    ``source`` is a register map or a list of fields. ``select`` restricts a map to the named
    fields; the scale-register fields they depend on are added automatically. With a plain
    list every ``scale_register`` must be in the list (:class:`ValueError` otherwise).
    ``max_gap`` is the largest number of unused registers (bits for FC1/FC2) read through
    to merge two fields; ``max_registers``/``max_bits`` may lower the protocol limits.
    """
    if not 1 <= max_registers <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"max_registers must be in 1..{MAX_REGISTERS_PER_READ}")
    if not 1 <= max_bits <= MAX_BITS_PER_READ:
        raise ValueError(f"max_bits must be in 1..{MAX_BITS_PER_READ}")
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    if isinstance(source, RegisterMap):
        fields = source.fields if select is None else source.with_dependencies(select)
    else:
        fields = tuple(source)
        if select is not None:
            wanted = set(select)
            fields = tuple(f for f in fields if f.name in wanted)
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ValueError("field names must be unique within a plan")
    present = set(names)
    for f in fields:
        if f.scale_register is not None and f.scale_register not in present:
            raise ValueError(
                f"field {f.name!r} needs scale register {f.scale_register!r} in the same plan"
            )

    by_fc: dict[int, list[RegisterField]] = {}
    for f in fields:
        by_fc.setdefault(f.function_code, []).append(f)

    requests: list[ReadRequest] = []
    for fc in sorted(by_fc):
        limit = _limit(fc, max_registers, max_bits)
        ordered = sorted(by_fc[fc], key=lambda f: (f.address, f.end, f.name))
        block: list[RegisterField] = []
        start = end = 0
        for f in ordered:
            if f.register_count > limit:
                raise ValueError(f"field {f.name!r} is longer than the {limit}-register limit")
            if block and f.address - end <= max_gap and max(end, f.end) - start <= limit:
                block.append(f)
                end = max(end, f.end)
                continue
            if block:
                requests.append(ReadRequest(unit_id, fc, start, end - start, tuple(block)))
            block, start, end = [f], f.address, f.end
        if block:
            requests.append(ReadRequest(unit_id, fc, start, end - start, tuple(block)))
    for r in requests:
        assert r.function_code in READ_FUNCTION_CODES  # belt and braces; see ReadRequest
    return tuple(requests)


def _slice(request: ReadRequest, registers: Sequence[int], f: RegisterField) -> Sequence[int]:
    offset = f.address - request.address
    return registers[offset : offset + f.register_count]


def _check_length(request: ReadRequest, registers: Sequence[int]) -> Sequence[int]:
    if request.is_bit_read:
        # bit responses are padded to whole bytes; the padding is ignored
        if len(registers) < request.count:
            raise ValueError(
                f"FC{request.function_code} response has {len(registers)} bits, "
                f"expected {request.count}"
            )
        return registers[: request.count]
    if len(registers) != request.count:
        raise ValueError(
            f"FC{request.function_code} response at {request.address} has "
            f"{len(registers)} registers, expected {request.count}"
        )
    return registers


def _decode_independent(request: ReadRequest, registers: Sequence[int]) -> dict[str, Value]:
    return {
        f.name: f.decode(_slice(request, registers, f))
        for f in request.fields
        if f.scale_register is None
    }


def _exponents(
    fields: Iterable[RegisterField],
    values: Mapping[str, Value],
    by_name: Mapping[str, RegisterField],
) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for f in fields:
        ref = f.scale_register
        if ref is None or ref in out:
            continue
        if ref not in values:
            raise ValueError(f"field {f.name!r} needs scale register {ref!r}, which was not read")
        target = by_name.get(ref)
        value = values[ref]
        out[ref] = target.exponent_from(value) if target is not None else _as_exponent(ref, value)
    return out


def _as_exponent(name: str, value: Value) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"scale register {name!r} holds a non-integer {value!r}")
    return int(value)


def decode_response(
    request: ReadRequest,
    registers: Sequence[int],
    scale_values: Mapping[str, Value] | None = None,
) -> dict[str, Value]:
    """Engineering values of every field in ``request`` (``None`` = not available).

    ``registers`` is the response payload: ``count`` 16-bit registers, or at least
    ``count`` bits for FC1/FC2. Scale registers are taken from this response first, then
    from ``scale_values`` (already-decoded values of other requests, by field name).
    """
    registers = _check_length(request, registers)
    values = _decode_independent(request, registers)
    dependent = [f for f in request.fields if f.scale_register is not None]
    if dependent:
        known: dict[str, Value] = {**(scale_values or {}), **values}
        by_name = {f.name: f for f in request.fields}
        exponents = _exponents(dependent, known, by_name)
        for f in dependent:
            values[f.name] = f.decode(
                _slice(request, registers, f), scale_exponent=exponents[f.scale_register or ""]
            )
    return {f.name: values[f.name] for f in request.fields}


def decode_plan(
    responses: Iterable[tuple[ReadRequest, Sequence[int]]],
) -> dict[str, Value]:
    """Decode all responses of one poll; scale registers may come from any request."""
    pairs = [(r, _check_length(r, regs)) for r, regs in responses]
    values: dict[str, Value] = {}
    for request, registers in pairs:
        values.update(_decode_independent(request, registers))
    by_name = {f.name: f for request, _ in pairs for f in request.fields}
    for request, registers in pairs:
        dependent = [f for f in request.fields if f.scale_register is not None]
        exponents = _exponents(dependent, values, by_name)
        for f in dependent:
            values[f.name] = f.decode(
                _slice(request, registers, f), scale_exponent=exponents[f.scale_register or ""]
            )
    return values
