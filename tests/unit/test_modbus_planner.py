"""Request planning: coalescing, limits, gaps, function codes, scale registers, decoding."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus.codec import DataType
from modbus.planner import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    READ_FUNCTION_CODES,
    ReadRequest,
    decode_plan,
    decode_response,
    plan_reads,
)
from modbus.registermap import (
    RegisterField,
    Table,
    available_models,
    load_register_map,
)


def fld(name: str, address: int, dtype: str = "uint16", table: str = "holding", **kw: Any):
    """A minimal valid field (instantaneous dimensionless status unless overridden)."""
    base: dict[str, Any] = {"quantity": "status", "kind": "instantaneous"}
    if dtype in ("float32", "float64") and "quantity" not in kw:
        base = {"quantity": "flow_rate", "unit": "m3/h", "kind": "instantaneous"}
    return RegisterField(name=name, address=address, dtype=dtype, table=table, **{**base, **kw})


def spans(plan: tuple[ReadRequest, ...]) -> list[tuple[int, int, int]]:
    return [(r.function_code, r.address, r.count) for r in plan]


# --------------------------------------------------------------------------- tables


def test_contiguous_fields_make_one_request() -> None:
    fields = [fld("a", 0), fld("b", 1, "uint32"), fld("c", 3, "float32"), fld("d", 5, "int64")]
    plan = plan_reads(fields, unit_id=7)
    assert spans(plan) == [(3, 0, 9)]
    assert plan[0].unit_id == 7
    assert [f.name for f in plan[0].fields] == ["a", "b", "c", "d"]


def test_more_than_125_registers_split_without_cutting_a_field() -> None:
    fields = [fld(f"f{i:02d}", 2 * i, "float32") for i in range(70)]  # 140 registers
    plan = plan_reads(fields, unit_id=1)
    assert spans(plan) == [(3, 0, 124), (3, 124, 16)]
    assert sum(len(r.fields) for r in plan) == 70


def test_exactly_125_registers_fit_in_one_request() -> None:
    fields = [fld(f"f{i:03d}", i) for i in range(125)]
    assert spans(plan_reads(fields, unit_id=1)) == [(3, 0, 125)]
    fields.append(fld("f125", 125))
    assert spans(plan_reads(fields, unit_id=1)) == [(3, 0, 125), (3, 125, 1)]


@pytest.mark.parametrize(
    ("max_gap", "expected"),
    [
        (0, [(3, 0, 2), (3, 4, 2), (3, 10, 1)]),
        (1, [(3, 0, 2), (3, 4, 2), (3, 10, 1)]),
        (2, [(3, 0, 6), (3, 10, 1)]),
        (4, [(3, 0, 11)]),
    ],
)
def test_gaps(max_gap: int, expected: list[tuple[int, int, int]]) -> None:
    fields = [fld("a", 0, "uint32"), fld("b", 4, "float32"), fld("c", 10)]
    assert spans(plan_reads(fields, unit_id=1, max_gap=max_gap)) == expected


def test_gap_never_pushes_a_request_over_the_limit() -> None:
    fields = [fld("a", 0), fld("b", 124), fld("c", 125)]
    assert spans(plan_reads(fields, unit_id=1, max_gap=200)) == [(3, 0, 125), (3, 125, 1)]


def test_mixed_function_codes_are_separate_and_ordered() -> None:
    fields = [
        fld("ir", 0, table="input"),
        fld("hr", 0),
        fld("coil", 0, "bool", table="coil"),
        fld("di", 0, "bool", table="discrete_input"),
        fld("hr2", 1),
        fld("ir2", 1, table="input"),
    ]
    plan = plan_reads(fields, unit_id=1)
    assert spans(plan) == [(1, 0, 1), (2, 0, 1), (3, 0, 2), (4, 0, 2)]
    assert {r.function_code for r in plan} <= READ_FUNCTION_CODES


def test_bit_tables_use_the_2000_bit_limit() -> None:
    fields = [fld(f"c{i:04d}", i, "bool", table="coil") for i in range(2100)]
    assert spans(plan_reads(fields, unit_id=1)) == [(1, 0, 2000), (1, 2000, 100)]


def test_lower_configured_limit() -> None:
    fields = [fld(f"f{i:02d}", 2 * i, "float32") for i in range(10)]
    plan = plan_reads(fields, unit_id=1, max_registers=16)
    assert spans(plan) == [(3, 0, 16), (3, 16, 4)]


def test_bit_fields_sharing_a_register_are_read_once() -> None:
    fields = [fld("a", 3, "bool", bit=0), fld("b", 3, "bool", bit=5), fld("c", 4)]
    plan = plan_reads(fields, unit_id=1)
    assert spans(plan) == [(3, 3, 2)]
    assert decode_response(plan[0], [0b100000, 42]) == {"a": False, "b": True, "c": 42}


def test_output_is_deterministic() -> None:
    fields = [fld(f"f{i}", 3 * i, "uint32") for i in range(40)] + [
        fld(f"i{i}", i, table="input") for i in range(10)
    ]
    expected = plan_reads(fields, unit_id=1, max_gap=1)
    for seed in range(5):
        shuffled = fields[:]
        random.Random(seed).shuffle(shuffled)
        assert plan_reads(shuffled, unit_id=1, max_gap=1) == expected


# --------------------------------------------------------------------------- scale registers


def test_select_adds_the_scale_register() -> None:
    belt = load_register_map("generic_belt_scale")
    plan = plan_reads(belt, unit_id=2, select=["production_total"])
    names = [f.name for r in plan for f in r.fields]
    assert names == ["total_decimals", "production_total"]
    assert spans(plan) == [(3, 0, 1), (3, 2, 4)]


def test_field_list_without_its_scale_register_is_rejected() -> None:
    belt = load_register_map("generic_belt_scale")
    with pytest.raises(ValueError, match="needs scale register 'total_decimals'"):
        plan_reads([belt.field("production_total")], unit_id=1)


def test_select_unknown_field() -> None:
    with pytest.raises(KeyError, match="no field 'nope'"):
        plan_reads(load_register_map("eastron_sdm630"), unit_id=1, select=["nope"])


def test_scale_register_in_the_same_request() -> None:
    belt = load_register_map("generic_belt_scale")
    plan = plan_reads(belt, unit_id=1, max_gap=1)
    holding = next(r for r in plan if r.function_code == 3)
    assert (holding.address, holding.count) == (0, 10)
    regs = [0] * holding.count
    for name, value in [("total_decimals", -2), ("shift_total", 12.34), ("belt_load", 450.5)]:
        f = belt.field(name)
        exp = -2 if f.scale_register else None
        kwargs = {"scale_exponent": exp} if exp is not None else {}
        regs[f.address : f.end] = f.encode(value, **kwargs)
    total = belt.field("production_total")
    regs[total.address : total.end] = total.encode(123456789.01, scale_exponent=-2)
    values = decode_response(holding, regs)
    assert values == {
        "total_decimals": -2,
        "production_total": 123456789.01,
        "shift_total": 12.34,
        "belt_load": 450.5,
    }


def test_scale_register_in_another_request() -> None:
    belt = load_register_map("generic_belt_scale")
    plan = plan_reads(belt, unit_id=1)  # max_gap 0: decimals and totals are separate
    by_start = {(r.function_code, r.address): r for r in plan}
    decimals_req, totals_req, bits_req = by_start[(3, 0)], by_start[(3, 2)], by_start[(2, 0)]
    totals_regs = (
        list(belt.field("production_total").encode(1000.5, scale_exponent=-1))
        + list(belt.field("shift_total").encode(2.5, scale_exponent=-1))
        + list(belt.field("belt_load").encode(12.0))
    )
    with pytest.raises(ValueError, match="needs scale register 'total_decimals'"):
        decode_response(totals_req, totals_regs)
    via_values = decode_response(totals_req, totals_regs, {"total_decimals": -1})
    assert via_values["production_total"] == 1000.5
    values = decode_plan(
        [
            (totals_req, totals_regs),
            (decimals_req, list(belt.field("total_decimals").encode(-1))),
            (bits_req, [True, False, False, False, False, False, False, False]),
        ]
    )
    assert values == {
        "total_decimals": -1,
        "production_total": 1000.5,
        "shift_total": 2.5,
        "belt_load": 12.0,
        "running": True,
    }


def test_unavailable_scale_register_makes_dependents_unavailable() -> None:
    f_dec = fld("sf", 0, "int16", quantity="scale_factor", sentinels=[-32768])
    f_val = fld("w", 1, "int16", quantity="active_power", unit="W", scale_register="sf")
    (req,) = plan_reads([f_dec, f_val], unit_id=1)
    assert decode_response(req, [0x8000, 1234]) == {"sf": None, "w": None}
    assert decode_response(req, [0xFFFE, 1234]) == {"sf": -2, "w": 12.34}  # SunSpec style


# --------------------------------------------------------------------------- function codes


@pytest.mark.parametrize("fc", [0, 5, 6, 15, 16, 22, 23, 43])
def test_request_refuses_non_read_function_codes(fc: int) -> None:
    with pytest.raises(ValueError, match="not a read function code"):
        ReadRequest(unit_id=1, function_code=fc, address=0, count=1, fields=())


@pytest.mark.parametrize(("fc", "count"), [(3, 126), (4, 126), (1, 2001), (2, 2001), (3, 0)])
def test_request_refuses_over_long_reads(fc: int, count: int) -> None:
    with pytest.raises(ValueError, match="outside 1\\.\\."):
        ReadRequest(unit_id=1, function_code=fc, address=0, count=count, fields=())


def test_request_refuses_fields_outside_or_of_another_table() -> None:
    with pytest.raises(ValueError, match="outside"):
        ReadRequest(1, 3, 0, 1, (fld("a", 0, "uint32"),))
    with pytest.raises(ValueError, match="FC4"):
        ReadRequest(1, 3, 0, 1, (fld("a", 0, table="input"),))
    with pytest.raises(ValueError, match="unit id"):
        ReadRequest(256, 3, 0, 1, ())


def test_bad_planner_options() -> None:
    with pytest.raises(ValueError, match="max_registers"):
        plan_reads([fld("a", 0)], unit_id=1, max_registers=126)
    with pytest.raises(ValueError, match="max_bits"):
        plan_reads([fld("a", 0)], unit_id=1, max_bits=0)
    with pytest.raises(ValueError, match="max_gap"):
        plan_reads([fld("a", 0)], unit_id=1, max_gap=-1)
    with pytest.raises(ValueError, match="unique"):
        plan_reads([fld("a", 0), fld("a", 5)], unit_id=1)


# --------------------------------------------------------------------------- shipped maps


@pytest.mark.parametrize("model", available_models())
@pytest.mark.parametrize("max_gap", [0, 4, 100])
def test_shipped_maps_plan_and_decode(model: str, max_gap: int) -> None:
    rmap = load_register_map(model)
    plan = plan_reads(rmap, unit_id=1, max_gap=max_gap)
    planned = [f.name for r in plan for f in r.fields]
    assert sorted(planned) == sorted(rmap.field_names)
    for r in plan:
        assert r.function_code in READ_FUNCTION_CODES
        assert r.count <= (MAX_BITS_PER_READ if r.is_bit_read else MAX_REGISTERS_PER_READ)
    # simulate the meter: encode a value into every field, decode the whole plan
    exponents = {f.name: -1 for f in rmap.fields if f.quantity == "scale_factor"}
    expected: dict[str, Any] = {}
    responses = []
    for r in plan:
        regs = [0] * r.count
        for f in r.fields:
            if f.dtype is DataType.BOOL:
                value: Any = True
            elif f.quantity == "scale_factor":
                value = exponents[f.name]
            else:
                value = 0.5 if f.dtype.is_float or f.scale != 1 or f.scale_register else 42
            exp = exponents[f.scale_register] if f.scale_register else None
            kwargs = {"scale_exponent": exp} if f.scale_register else {}
            encoded = f.encode(value, **kwargs)
            offset = f.address - r.address
            if f.bit is not None:
                regs[offset] |= encoded[0]
            else:
                regs[offset : offset + f.register_count] = encoded
            expected[f.name] = value
        responses.append((r, regs))
    assert decode_plan(responses) == expected


def test_sdm630_gap_reading_reduces_requests() -> None:
    sdm = load_register_map("eastron_sdm630")
    assert len(plan_reads(sdm, unit_id=1)) == 7
    assert spans(plan_reads(sdm, unit_id=1, max_gap=40)) == [(4, 0, 86), (4, 0x156, 2)]


def test_decode_response_length_checks() -> None:
    (req,) = plan_reads([fld("a", 0), fld("b", 1)], unit_id=1)
    with pytest.raises(ValueError, match="has 1 registers, expected 2"):
        decode_response(req, [1])
    (bits,) = plan_reads([fld("c", 0, "bool", table="coil")], unit_id=1)
    assert decode_response(bits, [1, 0, 0, 0, 0, 0, 0, 0]) == {"c": True}  # byte padding
    with pytest.raises(ValueError, match="has 0 bits"):
        decode_response(bits, [])


# --------------------------------------------------------------------------- property


@st.composite
def field_sets(draw: st.DrawFn) -> list[RegisterField]:
    tables = [Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE_INPUT]
    fields: list[RegisterField] = []
    for table in tables:
        address = draw(st.integers(0, 300))
        for i in range(draw(st.integers(0, 60))):
            if table.is_bit:
                dtype = "bool"
            else:
                dtype = draw(st.sampled_from(["uint16", "int32", "float32", "uint64"]))
            address += draw(st.integers(0, 40))
            size = DataType(dtype).register_count
            if address + size > 0x10000:
                break
            fields.append(fld(f"{table.value}_{i}", address, dtype, table=table.value))
            address += size
    return fields


@settings(max_examples=200, deadline=None)
@given(
    fields=field_sets(),
    max_gap=st.integers(0, 60),
    unit_id=st.integers(0, 255),
    max_registers=st.integers(4, 125),
)
def test_plan_invariants(
    fields: list[RegisterField], max_gap: int, unit_id: int, max_registers: int
) -> None:
    plan = plan_reads(fields, unit_id=unit_id, max_gap=max_gap, max_registers=max_registers)
    seen: list[str] = []
    for r in plan:
        assert r.function_code in READ_FUNCTION_CODES
        assert r.unit_id == unit_id
        limit = MAX_BITS_PER_READ if r.is_bit_read else max_registers
        assert 1 <= r.count <= limit
        assert r.address + r.count <= 0x10000
        for f in r.fields:
            assert r.address <= f.address and f.end <= r.end  # never split
            assert f.function_code == r.function_code
        # the request starts at its first field and ends at its last
        assert r.address == min(f.address for f in r.fields)
        assert r.end == max(f.end for f in r.fields)
        seen += [f.name for f in r.fields]
    assert sorted(seen) == sorted(f.name for f in fields)
    assert plan == tuple(sorted(plan, key=lambda r: (r.function_code, r.address)))
    # consecutive requests of one function code could not have been merged
    for a, b in zip(plan, plan[1:], strict=False):
        if a.function_code == b.function_code:
            limit = MAX_BITS_PER_READ if a.is_bit_read else max_registers
            assert b.address - a.end > max_gap or b.end - a.address > limit
