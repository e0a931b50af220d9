"""Pure Modbus value codec shared by the collector (decode) and the simulators (encode).

Registers are 16-bit unsigned integers (0..65535) exactly as a Modbus PDU carries them; a
multi-register value occupies consecutive registers starting at the lowest address.

Data types (:class:`DataType`) and the number of registers each occupies:

====================  =========  ==============================================
dtype                 registers  notes
====================  =========  ==============================================
``bool``              1          coil / discrete-input bit, or a register != 0
``int16``/``uint16``  1
``int32``/``uint32``  2
``int64``/``uint64``  4
``float32``           2          IEEE 754 binary32
``float64``           4          IEEE 754 binary64
====================  =========  ==============================================

Byte and word order (:class:`ByteOrder`) uses the usual letter notation where ``A`` is the
most significant byte of the value. Four canonical orders exist; each one is a rule that
applies to every width, so the 64-bit spellings name the same four orders:

- ``ABCD`` (64-bit ``ABCDEFGH``): big-endian, high word first, high byte first in each word.
  Aliases: ``big``, ``big_endian``, ``be``, ``msb``, ``ab``, ``high_word_first``, ``hbf_hwf``.
- ``DCBA`` (``HGFEDCBA``): little-endian, low word first, low byte first in each word.
  Aliases: ``little``, ``little_endian``, ``le``, ``lsb``, ``ba``, ``lbf_lwf``.
- ``BADC`` (``BADCFEHG``): bytes swapped inside each word, words high first.
  Aliases: ``byte_swap``, ``little_swap``, ``mid_big``, ``mid_big_endian``, ``lbf_hwf``.
- ``CDAB`` (``GHEFCDAB``): words low first, bytes high first inside each word (the common
  "Modicon" word swap). Aliases: ``word_swap``, ``big_swap``, ``mid_little``,
  ``mid_little_endian``, ``low_word_first``, ``hbf_lwf``.

Aliases are case-insensitive; ``-``, ``_`` and spaces are interchangeable in them. A single
register (16-bit types) is affected only by the byte swap: ``ABCD``/``CDAB`` read ``AB``,
``BADC``/``DCBA`` read ``BA``.

Scaling (engineering value from the raw value)::

    value = raw × scale × 10 ** scale_exponent + offset

``scale_exponent`` may come from another register (SunSpec-style scale factor); the register
map resolves it. :func:`to_raw` is the inverse used by the simulators: it rounds half-to-even
for integer types and raises :class:`OverflowError` when the result does not fit the type.

"Not available" values: NaN and ±inf in float registers always decode to ``None``; integer
registers decode to ``None`` when their raw bit pattern equals a declared sentinel (for
example ``0xFFFF`` for uint16 or ``0x8000`` for int16, which may also be written ``-32768``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

__all__ = [
    "ORDER_ALIASES",
    "ByteOrder",
    "DataType",
    "Number",
    "apply_scaling",
    "decode",
    "decode_value",
    "encode",
    "is_sentinel",
    "normalize_order",
    "raw_bit_pattern",
    "register_count",
    "to_raw",
]

Number = int | float
"""A decoded raw or engineering value (``bool`` is an ``int``)."""

REGISTER_MAX = 0xFFFF
_FLOAT32_MAX = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]


class DataType(StrEnum):
    """Register data types. The value is the spelling used in register-map files."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def register_count(self) -> int:
        """Number of 16-bit registers (or coil/discrete-input bits for ``bool``)."""
        return _SPECS[self].registers

    @property
    def is_float(self) -> bool:
        """True for IEEE 754 types."""
        return _SPECS[self].struct_char in ("f", "d")

    @property
    def is_integer(self) -> bool:
        """True for the signed and unsigned integer types (not ``bool``, not floats)."""
        return self is not DataType.BOOL and not self.is_float

    @property
    def bits(self) -> int:
        """Width of the raw value in bits (16 for ``bool`` read from a register)."""
        return 16 * self.register_count

    @property
    def min_raw(self) -> Number:
        """Smallest raw value the type can hold (for floats: minus the largest finite value)."""
        spec = _SPECS[self]
        if self.is_float:
            return -_float_max(self)
        if self is DataType.BOOL:
            return 0
        return -(1 << (self.bits - 1)) if spec.signed else 0

    @property
    def max_raw(self) -> Number:
        """Largest raw value the type can hold (e.g. ``2**32 - 1`` for ``uint32``)."""
        spec = _SPECS[self]
        if self.is_float:
            return _float_max(self)
        if self is DataType.BOOL:
            return 1
        return (1 << (self.bits - 1)) - 1 if spec.signed else (1 << self.bits) - 1


@dataclass(frozen=True, slots=True)
class _Spec:
    struct_char: str
    registers: int
    signed: bool


_SPECS: dict[DataType, _Spec] = {
    DataType.BOOL: _Spec("H", 1, False),
    DataType.INT16: _Spec("h", 1, True),
    DataType.UINT16: _Spec("H", 1, False),
    DataType.INT32: _Spec("i", 2, True),
    DataType.UINT32: _Spec("I", 2, False),
    DataType.INT64: _Spec("q", 4, True),
    DataType.UINT64: _Spec("Q", 4, False),
    DataType.FLOAT32: _Spec("f", 2, True),
    DataType.FLOAT64: _Spec("d", 4, True),
}


def _float_max(dtype: DataType) -> float:
    return _FLOAT32_MAX if dtype is DataType.FLOAT32 else 1.7976931348623157e308


class ByteOrder(StrEnum):
    """Canonical byte/word order of a multi-register value (see the module docstring)."""

    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"

    @property
    def byte_swap(self) -> bool:
        """True when the two bytes inside each register are swapped (low byte first)."""
        return self in (ByteOrder.BADC, ByteOrder.DCBA)

    @property
    def word_swap(self) -> bool:
        """True when the registers carry the least significant word first."""
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    def spelled(self, dtype: DataType | str) -> str:
        """The letter form for a width: ``CDAB`` → ``GHEFCDAB`` for 64-bit, ``AB`` for 16-bit."""
        n = DataType(dtype).register_count
        letters = "ABCDEFGH"[: 2 * n]
        words = [letters[i : i + 2] for i in range(0, len(letters), 2)]
        if self.word_swap:
            words.reverse()
        if self.byte_swap:
            words = [w[::-1] for w in words]
        return "".join(words)


ORDER_ALIASES: dict[str, ByteOrder] = {
    # big-endian
    "abcd": ByteOrder.ABCD,
    "abcdefgh": ByteOrder.ABCD,
    "ab": ByteOrder.ABCD,
    "big": ByteOrder.ABCD,
    "big_endian": ByteOrder.ABCD,
    "be": ByteOrder.ABCD,
    "msb": ByteOrder.ABCD,
    "high_word_first": ByteOrder.ABCD,
    "hbf_hwf": ByteOrder.ABCD,
    # little-endian
    "dcba": ByteOrder.DCBA,
    "hgfedcba": ByteOrder.DCBA,
    "ba": ByteOrder.DCBA,
    "little": ByteOrder.DCBA,
    "little_endian": ByteOrder.DCBA,
    "le": ByteOrder.DCBA,
    "lsb": ByteOrder.DCBA,
    "lbf_lwf": ByteOrder.DCBA,
    # byte swap inside words, words big-endian
    "badc": ByteOrder.BADC,
    "badcfehg": ByteOrder.BADC,
    "byte_swap": ByteOrder.BADC,
    "little_swap": ByteOrder.BADC,
    "mid_big": ByteOrder.BADC,
    "mid_big_endian": ByteOrder.BADC,
    "lbf_hwf": ByteOrder.BADC,
    # word swap, bytes big-endian inside words
    "cdab": ByteOrder.CDAB,
    "ghefcdab": ByteOrder.CDAB,
    "word_swap": ByteOrder.CDAB,
    "big_swap": ByteOrder.CDAB,
    "mid_little": ByteOrder.CDAB,
    "mid_little_endian": ByteOrder.CDAB,
    "low_word_first": ByteOrder.CDAB,
    "hbf_lwf": ByteOrder.CDAB,
}
"""Accepted spellings (after lower-casing and mapping ``-``/space to ``_``)."""


def normalize_order(order: ByteOrder | str) -> ByteOrder:
    """Return the canonical :class:`ByteOrder` for any accepted spelling.

    Raises :class:`ValueError` naming the accepted spellings when ``order`` is unknown.
    """
    if isinstance(order, ByteOrder):
        return order
    if not isinstance(order, str):
        raise ValueError(f"byte order must be a string, got {type(order).__name__}")
    key = order.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return ORDER_ALIASES[key]
    except KeyError:
        accepted = ", ".join(sorted(ORDER_ALIASES))
        raise ValueError(f"unknown byte order {order!r}; accepted: {accepted}") from None


def register_count(dtype: DataType | str) -> int:
    """Number of registers (or bits, for ``bool`` on a bit table) that ``dtype`` occupies."""
    return DataType(dtype).register_count


def _check_registers(registers: Sequence[int], dtype: DataType) -> None:
    n = dtype.register_count
    if len(registers) != n:
        raise ValueError(f"{dtype} needs {n} register(s), got {len(registers)}")
    for r in registers:
        if isinstance(r, bool):
            continue
        if not isinstance(r, int) or not 0 <= r <= REGISTER_MAX:
            raise ValueError(f"register value {r!r} is not a 16-bit unsigned integer")


def _registers_to_bytes(registers: Sequence[int], order: ByteOrder) -> bytes:
    words = [int(r) for r in registers]
    if order.word_swap:
        words.reverse()
    out = bytearray()
    for w in words:
        hi, lo = w >> 8, w & 0xFF
        out += bytes((lo, hi)) if order.byte_swap else bytes((hi, lo))
    return bytes(out)


def _bytes_to_registers(data: bytes, order: ByteOrder) -> tuple[int, ...]:
    words = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        words.append((lo << 8) | hi if order.byte_swap else (hi << 8) | lo)
    if order.word_swap:
        words.reverse()
    return tuple(words)


def _shortest_float32(x: float) -> float:
    """The shortest decimal that rounds to the same binary32 value (123.456, not 123.456001…)."""
    if not math.isfinite(x):
        return x
    packed = struct.pack(">f", x)
    for digits in range(1, 10):
        candidate = float(f"{x:.{digits}g}")
        if abs(candidate) <= _FLOAT32_MAX and struct.pack(">f", candidate) == packed:
            return candidate
    return x  # pragma: no cover - 9 significant digits always round-trip binary32


def decode(
    registers: Sequence[int], dtype: DataType | str, order: ByteOrder | str = ByteOrder.ABCD
) -> Number:
    """Decode raw registers into the raw (unscaled) value of ``dtype``.

    ``registers`` must hold exactly :func:`register_count` values in 0..65535, in address
    order. Integers decode to ``int``, ``bool`` to ``bool`` (register != 0), floats to ``float``
    (binary32 values are returned as the shortest decimal that maps to the same binary32, so
    ``0x42F6E979`` decodes to ``123.456``). NaN/inf are returned as they are: sentinel handling
    is :func:`decode_value`'s job.
    """
    dtype = DataType(dtype)
    order = normalize_order(order)
    _check_registers(registers, dtype)
    if dtype is DataType.BOOL:
        return bool(registers[0])
    data = _registers_to_bytes(registers, order)
    (value,) = struct.unpack(">" + _SPECS[dtype].struct_char, data)
    if dtype is DataType.FLOAT32:
        return _shortest_float32(value)
    number: Number = value  # struct gives int for integer formats, float for the others
    return number


def encode(
    value: Number, dtype: DataType | str, order: ByteOrder | str = ByteOrder.ABCD
) -> tuple[int, ...]:
    """Encode a raw value of ``dtype`` into registers (16-bit unsigned ints, address order).

    Integer types need an ``int`` (use :func:`to_raw` to scale and round an engineering value);
    :class:`OverflowError` is raised when the value does not fit. Float types accept any real
    number including NaN/inf (useful to simulate "not available"); a finite value beyond the
    binary32 range raises :class:`OverflowError`.
    """
    dtype = DataType(dtype)
    order = normalize_order(order)
    if dtype is DataType.BOOL:
        return (1 if value else 0,)
    if dtype.is_float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{dtype} needs a real number, got {type(value).__name__}")
        v = float(value)
        if math.isfinite(v) and abs(v) > _float_max(dtype):
            raise OverflowError(f"{value!r} is outside the {dtype} range")
        data = struct.pack(">" + _SPECS[dtype].struct_char, v)
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{dtype} needs an int raw value, got {value!r}")
        if not dtype.min_raw <= value <= dtype.max_raw:
            raise OverflowError(
                f"{value} is outside the {dtype} range [{dtype.min_raw}, {dtype.max_raw}]"
            )
        data = struct.pack(">" + _SPECS[dtype].struct_char, value)
    return _bytes_to_registers(data, order)


def raw_bit_pattern(raw: int, dtype: DataType | str) -> int:
    """The unsigned bit pattern of an integer raw value (``-32768`` int16 → ``0x8000``)."""
    dtype = DataType(dtype)
    return int(raw) & ((1 << dtype.bits) - 1)


def is_sentinel(raw: Number, dtype: DataType | str, sentinels: Iterable[Number] = ()) -> bool:
    """True when ``raw`` means "not available".

    Floats: NaN and ±inf always, plus any value equal to a declared sentinel. Integers: the
    raw bit pattern equals the bit pattern of a declared sentinel, so ``0x8000`` and ``-32768``
    are the same int16 sentinel.
    """
    dtype = DataType(dtype)
    if dtype.is_float:
        if not math.isfinite(raw):
            return True
        return any(float(s) == raw for s in sentinels)
    if dtype is DataType.BOOL:
        return False
    pattern = raw_bit_pattern(int(raw), dtype)
    return any(isinstance(s, int) and raw_bit_pattern(s, dtype) == pattern for s in sentinels)


def _dec(x: Number) -> Decimal:
    # repr() gives the shortest decimal for a float, so 0.1 is exactly Decimal("0.1").
    return Decimal(int(x)) if isinstance(x, int) else Decimal(repr(float(x)))


def _integral(x: Number) -> bool:
    return isinstance(x, int) or (math.isfinite(x) and float(x).is_integer())


def apply_scaling(
    raw: Number,
    *,
    scale: Number = 1,
    scale_exponent: int = 0,
    offset: Number = 0,
) -> Number:
    """Engineering value ``raw × scale × 10**scale_exponent + offset``.

    Computed in decimal arithmetic so that ``12345 × 0.1`` is ``1234.5`` exactly (the nearest
    float). An integer raw value with an integral transform (integral ``scale`` and ``offset``,
    ``scale_exponent >= 0``) stays an exact ``int``, so large counters lose no precision;
    otherwise the result is a ``float``.
    """
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        return raw
    if isinstance(raw, int) and _integral(scale) and _integral(offset) and scale_exponent >= 0:
        scaled: int = raw * int(scale) * 10**scale_exponent + int(offset)
        return scaled
    with localcontext() as ctx:
        ctx.prec = 40
        value = _dec(raw) * _dec(scale) * Decimal(10) ** scale_exponent + _dec(offset)
        return float(value)


def to_raw(
    value: Number,
    dtype: DataType | str,
    *,
    scale: Number = 1,
    scale_exponent: int = 0,
    offset: Number = 0,
) -> Number:
    """Inverse of :func:`apply_scaling`: the raw value a meter would hold for ``value``.

    Integer types are rounded half-to-even and range-checked (:class:`OverflowError` names the
    value, the raw result and the type's range). Float types return a float; a finite result
    beyond the type's range raises :class:`OverflowError`. ``bool`` returns 0 or 1.
    """
    dtype = DataType(dtype)
    if dtype is DataType.BOOL:
        return int(bool(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"engineering value must be a real number, got {value!r}")
    if scale == 0:
        raise ValueError("scale must not be zero")
    if isinstance(value, float) and not math.isfinite(value):
        if dtype.is_float:
            return value
        raise OverflowError(f"{value!r} cannot be represented as {dtype}")
    with localcontext() as ctx:
        ctx.prec = 40
        raw_dec = (_dec(value) - _dec(offset)) / (_dec(scale) * Decimal(10) ** scale_exponent)
        if dtype.is_float:
            raw_f = float(raw_dec)
            if not math.isfinite(raw_f) or abs(raw_f) > _float_max(dtype):
                raise OverflowError(
                    f"value {value!r} scales to raw {raw_dec} outside the {dtype} range"
                )
            return raw_f
        raw_i = int(raw_dec.to_integral_value(rounding=ROUND_HALF_EVEN))
    if not dtype.min_raw <= raw_i <= dtype.max_raw:
        raise OverflowError(
            f"value {value!r} scales to raw {raw_i} outside the {dtype} range "
            f"[{dtype.min_raw}, {dtype.max_raw}]"
        )
    return raw_i


def decode_value(
    registers: Sequence[int],
    dtype: DataType | str,
    order: ByteOrder | str = ByteOrder.ABCD,
    *,
    scale: Number = 1,
    scale_exponent: int = 0,
    offset: Number = 0,
    sentinels: Iterable[Number] = (),
) -> Number | None:
    """Decode, map sentinels to ``None`` and apply scaling in one call."""
    raw = decode(registers, dtype, order)
    if is_sentinel(raw, dtype, sentinels):
        return None
    return apply_scaling(raw, scale=scale, scale_exponent=scale_exponent, offset=offset)
