"""Table and property tests for modbus.codec.

Expected register values are written out literally (worked out by hand from the IEEE 754 /
two's-complement big-endian bytes), not computed with the code under test.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus.codec import (
    ORDER_ALIASES,
    ByteOrder,
    DataType,
    apply_scaling,
    decode,
    decode_value,
    encode,
    is_sentinel,
    normalize_order,
    register_count,
    to_raw,
)

A, D, B, C = ByteOrder.ABCD, ByteOrder.DCBA, ByteOrder.BADC, ByteOrder.CDAB

# (dtype, value, order, registers). Big-endian bytes of each value:
#   int16  -12345                 = CF C7
#   uint16 4660                   = 12 34
#   int32  -123456789             = F8 A4 32 EB
#   uint32 305419896              = 12 34 56 78
#   int64  -1234567890123456789   = EE DD EF 0B 82 16 7E EB
#   uint64 81985529216486895      = 01 23 45 67 89 AB CD EF
#   float32 123.456               = 42 F6 E9 79
#   float64 123.456               = 40 5E DD 2F 1A 9F BE 77
TABLE = [
    (DataType.INT16, -12345, A, (0xCFC7,)),
    (DataType.INT16, -12345, C, (0xCFC7,)),
    (DataType.INT16, -12345, B, (0xC7CF,)),
    (DataType.INT16, -12345, D, (0xC7CF,)),
    (DataType.UINT16, 4660, A, (0x1234,)),
    (DataType.UINT16, 4660, C, (0x1234,)),
    (DataType.UINT16, 4660, B, (0x3412,)),
    (DataType.UINT16, 4660, D, (0x3412,)),
    (DataType.INT32, -123456789, A, (0xF8A4, 0x32EB)),
    (DataType.INT32, -123456789, C, (0x32EB, 0xF8A4)),
    (DataType.INT32, -123456789, B, (0xA4F8, 0xEB32)),
    (DataType.INT32, -123456789, D, (0xEB32, 0xA4F8)),
    (DataType.UINT32, 305419896, A, (0x1234, 0x5678)),
    (DataType.UINT32, 305419896, C, (0x5678, 0x1234)),
    (DataType.UINT32, 305419896, B, (0x3412, 0x7856)),
    (DataType.UINT32, 305419896, D, (0x7856, 0x3412)),
    (DataType.INT64, -1234567890123456789, A, (0xEEDD, 0xEF0B, 0x8216, 0x7EEB)),
    (DataType.INT64, -1234567890123456789, C, (0x7EEB, 0x8216, 0xEF0B, 0xEEDD)),
    (DataType.INT64, -1234567890123456789, B, (0xDDEE, 0x0BEF, 0x1682, 0xEB7E)),
    (DataType.INT64, -1234567890123456789, D, (0xEB7E, 0x1682, 0x0BEF, 0xDDEE)),
    (DataType.UINT64, 0x0123456789ABCDEF, A, (0x0123, 0x4567, 0x89AB, 0xCDEF)),
    (DataType.UINT64, 0x0123456789ABCDEF, C, (0xCDEF, 0x89AB, 0x4567, 0x0123)),
    (DataType.UINT64, 0x0123456789ABCDEF, B, (0x2301, 0x6745, 0xAB89, 0xEFCD)),
    (DataType.UINT64, 0x0123456789ABCDEF, D, (0xEFCD, 0xAB89, 0x6745, 0x2301)),
    (DataType.FLOAT32, 123.456, A, (0x42F6, 0xE979)),
    (DataType.FLOAT32, 123.456, C, (0xE979, 0x42F6)),
    (DataType.FLOAT32, 123.456, B, (0xF642, 0x79E9)),
    (DataType.FLOAT32, 123.456, D, (0x79E9, 0xF642)),
    (DataType.FLOAT64, 123.456, A, (0x405E, 0xDD2F, 0x1A9F, 0xBE77)),
    (DataType.FLOAT64, 123.456, C, (0xBE77, 0x1A9F, 0xDD2F, 0x405E)),
    (DataType.FLOAT64, 123.456, B, (0x5E40, 0x2FDD, 0x9F1A, 0x77BE)),
    (DataType.FLOAT64, 123.456, D, (0x77BE, 0x9F1A, 0x2FDD, 0x5E40)),
    (DataType.BOOL, True, A, (1,)),
    (DataType.BOOL, False, D, (0,)),
]


@pytest.mark.parametrize(("dtype", "value", "order", "registers"), TABLE)
def test_encode_table(dtype: DataType, value: float, order: ByteOrder, registers: tuple) -> None:
    assert encode(value, dtype, order) == registers


@pytest.mark.parametrize(("dtype", "value", "order", "registers"), TABLE)
def test_decode_table(dtype: DataType, value: float, order: ByteOrder, registers: tuple) -> None:
    decoded = decode(registers, dtype, order)
    assert decoded == value
    assert type(decoded) is type(value)


def test_table_covers_every_dtype_and_order() -> None:
    numeric = {d for d in DataType if d is not DataType.BOOL}
    pairs = {(d, o) for d, _, o, _ in TABLE}
    assert pairs >= {(d, o) for d in numeric for o in ByteOrder}


def test_64_bit_spellings() -> None:
    assert [o.spelled("uint64") for o in ByteOrder] == [
        "ABCDEFGH",
        "HGFEDCBA",
        "BADCFEHG",
        "GHEFCDAB",
    ]
    assert ByteOrder.CDAB.spelled("float32") == "CDAB"
    assert ByteOrder.DCBA.spelled("int16") == "BA"


def test_bool_register_is_nonzero() -> None:
    assert decode((0x8000,), "bool") is True
    assert decode((0,), "bool") is False


@pytest.mark.parametrize(
    ("dtype", "count"),
    [
        ("bool", 1),
        ("int16", 1),
        ("uint16", 1),
        ("int32", 2),
        ("uint32", 2),
        ("float32", 2),
        ("int64", 4),
        ("uint64", 4),
        ("float64", 4),
    ],
)
def test_register_count(dtype: str, count: int) -> None:
    assert register_count(dtype) == count


@pytest.mark.parametrize(
    ("alias", "order"),
    [
        ("ABCD", A),
        ("abcdefgh", A),
        ("big", A),
        ("Big-Endian", A),
        ("BE", A),
        ("DCBA", D),
        ("HGFEDCBA", D),
        ("little", D),
        ("little_endian", D),
        ("BADC", B),
        ("BADCFEHG", B),
        ("little_swap", B),
        ("byte_swap", B),
        ("mid-big", B),
        ("CDAB", C),
        ("GHEFCDAB", C),
        ("big_swap", C),
        ("word_swap", C),
        ("mid-little", C),
        ("Mid Little", C),
        ("low_word_first", C),
    ],
)
def test_order_aliases(alias: str, order: ByteOrder) -> None:
    assert normalize_order(alias) is order


def test_every_alias_resolves_to_a_canonical_order() -> None:
    assert set(ORDER_ALIASES.values()) == set(ByteOrder)


@pytest.mark.parametrize("bad", ["XYZW", "", "middle", "ABDC"])
def test_unknown_order_lists_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match="accepted: .*word_swap"):
        normalize_order(bad)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("registers", "dtype", "message"),
    [
        ((1,), "uint32", "needs 2 register"),
        ((1, 2, 3), "float32", "needs 2 register"),
        ((0x10000,), "uint16", "not a 16-bit"),
        ((-1,), "int16", "not a 16-bit"),
        ((1.5, 2), "float32", "not a 16-bit"),
    ],
)
def test_decode_rejects_bad_registers(registers: tuple, dtype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(registers, dtype)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (32768, "int16"),
        (-32769, "int16"),
        (65536, "uint16"),
        (-1, "uint32"),
        (2**63, "int64"),
        (2**64, "uint64"),
        (3.5e38, "float32"),
    ],
)
def test_encode_out_of_range(value: float, dtype: str) -> None:
    with pytest.raises(OverflowError, match="range"):
        encode(value, dtype)


def test_encode_int_type_needs_int() -> None:
    with pytest.raises(TypeError, match="int raw value"):
        encode(1.5, "uint16")


def test_encode_nan_and_inf_floats() -> None:
    assert encode(math.inf, "float32") == (0x7F80, 0x0000)
    assert math.isnan(decode(encode(math.nan, "float64"), "float64"))


# --------------------------------------------------------------------------- round trips

INT_TYPES = [d for d in DataType if d.is_integer]


@pytest.mark.parametrize("order", list(ByteOrder))
@pytest.mark.parametrize("dtype", INT_TYPES)
@given(data=st.data())
def test_int_round_trip(dtype: DataType, order: ByteOrder, data: st.DataObject) -> None:
    value = data.draw(st.integers(dtype.min_raw, dtype.max_raw))
    registers = encode(value, dtype, order)
    assert len(registers) == dtype.register_count
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, dtype, order) == value


@pytest.mark.parametrize("order", list(ByteOrder))
@given(value=st.floats(width=32, allow_nan=False))
def test_float32_round_trip(order: ByteOrder, value: float) -> None:
    decoded = decode(encode(value, "float32", order), "float32", order)
    assert struct.pack(">f", decoded) == struct.pack(">f", value)


@pytest.mark.parametrize("order", list(ByteOrder))
@given(value=st.floats(allow_nan=False))
def test_float64_round_trip(order: ByteOrder, value: float) -> None:
    assert decode(encode(value, "float64", order), "float64", order) == value


def _not_nan(dtype: DataType, order: ByteOrder, regs: tuple[int, ...]) -> bool:
    return not (dtype.is_float and math.isnan(decode(regs, dtype, order)))


@pytest.mark.parametrize("order", list(ByteOrder))
@pytest.mark.parametrize("dtype", [d for d in DataType if d is not DataType.BOOL])
@given(data=st.data())
def test_registers_round_trip(dtype: DataType, order: ByteOrder, data: st.DataObject) -> None:
    regs = tuple(
        data.draw(
            st.lists(
                st.integers(0, 0xFFFF),
                min_size=dtype.register_count,
                max_size=dtype.register_count,
            )
        )
    )
    if _not_nan(dtype, order, regs):
        assert encode(decode(regs, dtype, order), dtype, order) == regs


def test_float32_decodes_to_shortest_decimal() -> None:
    assert decode((0x42F6, 0xE979), "float32") == 123.456  # binary32 123.45600128173828
    assert decode(encode(12345.67, "float32"), "float32") == 12345.67
    assert decode(encode(0.1, "float32"), "float32") == 0.1


# --------------------------------------------------------------------------- scaling


@pytest.mark.parametrize(
    ("raw", "kwargs", "expected"),
    [
        (12345, {"scale": 0.1}, 1234.5),
        (2301, {"scale": 0.1}, 230.1),
        (-1500, {"scale": 0.001}, -1.5),
        (123, {"scale_exponent": -2}, 1.23),
        (123, {"scale_exponent": 2}, 12300),
        (100, {"scale": 0.1, "offset": -40}, -30.0),
        (2**63 - 1, {}, 2**63 - 1),
        (2**64 - 1, {"scale": 10}, (2**64 - 1) * 10),
        (22450.0, {"scale": 0.1, "scale_exponent": -3}, 2.245),
        (7, {"scale": 2, "offset": 1}, 15),
    ],
)
def test_apply_scaling(raw: float, kwargs: dict, expected: float) -> None:
    value = apply_scaling(raw, **kwargs)
    assert value == expected
    assert type(value) is type(expected)


def test_integer_counter_stays_exact() -> None:
    big = 2**62 + 1
    assert apply_scaling(big) == big
    assert isinstance(apply_scaling(big, scale=1.0), int)


@pytest.mark.parametrize(
    ("value", "dtype", "kwargs", "expected"),
    [
        (1234.5, "uint32", {"scale": 0.1}, 12345),
        (1234.56, "uint32", {"scale": 0.1}, 12346),  # 12345.6 rounds up
        (0.25, "uint16", {"scale": 0.1}, 2),  # 2.5 rounds half to even
        (0.35, "uint16", {"scale": 0.1}, 4),  # 3.5 rounds half to even
        (-1.5, "int32", {"scale": 0.001}, -1500),
        (2.245, "float32", {"scale": 0.1, "scale_exponent": -3}, 22450.0),
        (-30.0, "uint16", {"scale": 0.1, "offset": -40}, 100),
        (1.23, "int16", {"scale_exponent": -2}, 123),
        (True, "bool", {}, 1),
    ],
)
def test_to_raw(value: float, dtype: str, kwargs: dict, expected: float) -> None:
    raw = to_raw(value, dtype, **kwargs)
    assert raw == expected
    assert type(raw) is type(expected)


@pytest.mark.parametrize(
    ("value", "dtype", "kwargs"),
    [
        (6553.6, "uint16", {"scale": 0.1}),
        (-0.1, "uint32", {"scale": 0.1}),
        (40000, "int16", {}),
        (1e40, "float32", {}),
        (math.inf, "int32", {}),
    ],
)
def test_to_raw_overflow(value: float, dtype: str, kwargs: dict) -> None:
    with pytest.raises(OverflowError, match=dtype):
        to_raw(value, dtype, **kwargs)


def test_to_raw_rejects_zero_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        to_raw(1, "uint16", scale=0)


@given(raw=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 0.01, 0.001, 1, 10]))
def test_scaling_round_trip_uint32(raw: int, scale: float) -> None:
    value = apply_scaling(raw, scale=scale)
    assert to_raw(value, "uint32", scale=scale) == raw


# --------------------------------------------------------------------------- sentinels


@pytest.mark.parametrize(
    ("registers", "dtype", "sentinels", "expected"),
    [
        ((0xFFFF,), "uint16", (0xFFFF,), None),
        ((0xFFFE,), "uint16", (0xFFFF,), 0xFFFE),
        ((0x8000,), "int16", (0x8000,), None),
        ((0x8000,), "int16", (-32768,), None),
        ((0x7FFF,), "int16", (-32768,), 32767),
        ((0xFFFF, 0xFFFF), "uint32", (0xFFFFFFFF,), None),
        ((0x8000, 0x0000), "int32", (0x80000000,), None),
        ((0x7FC0, 0x0000), "float32", (), None),  # NaN
        ((0x7F80, 0x0000), "float32", (), None),  # +inf
        ((0xFFF0, 0, 0, 0), "float64", (), None),  # -inf
        ((0xC47A, 0x0000), "float32", (-1000.0,), None),  # declared float sentinel
        ((0x0000, 0x0000), "float32", (), 0.0),
    ],
)
def test_sentinels(registers: tuple, dtype: str, sentinels: tuple, expected: float | None) -> None:
    assert decode_value(registers, dtype, sentinels=sentinels) == expected


def test_sentinel_before_scaling() -> None:
    assert decode_value((0xFFFF,), "uint16", scale=0.1, sentinels=(0xFFFF,)) is None
    assert decode_value((0x0FFF,), "uint16", scale=0.1, sentinels=(0xFFFF,)) == 409.5


def test_is_sentinel_bool_never() -> None:
    assert not is_sentinel(True, "bool", (1,))
