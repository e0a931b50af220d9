"""Register maps: shipped files load and round-trip; invalid files fail with precise messages."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus.codec import ByteOrder, DataType, apply_scaling
from modbus.registermap import (
    Kind,
    Quantity,
    RegisterField,
    RegisterMap,
    RegisterMapError,
    Table,
    available_models,
    counter_rollover,
    load_register_map,
    parse_register_map,
)

MODELS = available_models()
ALL_FIELDS = [(m, f) for m in MODELS for f in load_register_map(m).fields]


def test_shipped_models() -> None:
    assert set(MODELS) >= {
        "chint_dtsu666",
        "acrel_adl400",
        "eastron_sdm630",
        "generic_flow_totaliser",
        "generic_belt_scale",
    }


@pytest.mark.parametrize("model", MODELS)
def test_shipped_map_loads(model: str) -> None:
    rmap = load_register_map(model)
    assert rmap.model == model
    assert rmap.manufacturer
    assert load_register_map(model) is rmap  # cached, immutable


@pytest.mark.parametrize("model", MODELS)
def test_shipped_map_cites_a_source_or_says_generic(model: str) -> None:
    rmap = load_register_map(model)
    assert rmap.sources or rmap.manufacturer == "generic"


def test_load_by_path_equals_load_by_name(tmp_path: Path) -> None:
    rmap = load_register_map("eastron_sdm630")
    path = tmp_path / "eastron_sdm630.yaml"
    path.write_text(yaml.safe_dump(rmap.model_dump(mode="json")), encoding="utf-8")
    assert load_register_map(path) == rmap
    assert load_register_map(str(path)) == rmap


def test_unknown_model_lists_available() -> None:
    with pytest.raises(RegisterMapError, match="unknown model; available: .*eastron_sdm630"):
        load_register_map("no_such_meter")


def test_maps_cover_types_orders_and_quantities() -> None:
    fields = [f for _, f in ALL_FIELDS]
    assert {f.dtype for f in fields} >= {
        DataType.UINT16,
        DataType.INT16,
        DataType.UINT32,
        DataType.INT32,
        DataType.INT64,
        DataType.FLOAT32,
        DataType.FLOAT64,
        DataType.BOOL,
    }
    multi = {f.order for f in fields if f.register_count > 1}
    assert len(multi) >= 3
    assert {f.table for f in fields} >= {Table.HOLDING, Table.INPUT, Table.DISCRETE_INPUT}
    assert any(f.scale_register for f in fields)
    assert any(f.scale_exponent for f in fields)
    assert any(f.rollover == "width" for f in fields)
    assert any(isinstance(f.rollover, int | float) for f in fields)
    assert {f.kind for f in fields} == set(Kind)
    by_unit = {(f.quantity, f.unit) for f in fields}
    assert by_unit >= {
        (Quantity.ENERGY_IMPORT, "kWh"),
        (Quantity.ENERGY_EXPORT, "kWh"),
        (Quantity.ACTIVE_POWER, "kW"),
        (Quantity.REACTIVE_POWER, "kvar"),
        (Quantity.POWER_FACTOR, ""),
        (Quantity.VOLTAGE_L1, "V"),
        (Quantity.CURRENT_L1, "A"),
    }


@pytest.mark.parametrize(
    ("model", "field", "address", "table", "dtype", "order"),
    [
        ("chint_dtsu666", "voltage_l1", 0x2006, "holding", "float32", "ABCD"),
        ("chint_dtsu666", "energy_import", 0x401E, "holding", "float32", "ABCD"),
        ("eastron_sdm630", "energy_import", 0x0048, "input", "float32", "ABCD"),
        ("eastron_sdm630", "active_power", 0x0034, "input", "float32", "ABCD"),
        ("acrel_adl400", "energy_import", 0x000A, "holding", "uint32", "ABCD"),
        ("acrel_adl400", "current_l1", 0x0064, "holding", "uint16", "ABCD"),
        ("generic_flow_totaliser", "flow_total", 0x0006, "holding", "uint32", "CDAB"),
        ("generic_belt_scale", "production_total", 0x0002, "holding", "int64", "DCBA"),
        ("generic_belt_scale", "belt_load", 0x0008, "holding", "float32", "BADC"),
    ],
)
def test_documented_addresses(
    model: str, field: str, address: int, table: str, dtype: str, order: str
) -> None:
    f = load_register_map(model).field(field)
    assert (f.address, f.table, f.dtype, f.order) == (address, table, dtype, order)


def test_chint_ratio_fields_and_scaling() -> None:
    rmap = load_register_map("chint_dtsu666")
    assert rmap.ct_ratio_field == "ct_ratio"
    pt = rmap.field(rmap.pt_ratio_field or "")
    assert pt.decode((100,)) == 10.0  # UrAt 100 → ratio 10.0
    power = rmap.field("active_power")
    assert power.decode((0x4B12, 0x7C00)) == 960.0  # 9 600 000 × 0.1 W = 960 kW
    assert power.primary_factor(ct=40, pt=10.0) == 400.0
    assert rmap.field("voltage_l1").primary_factor(ct=40, pt=10.0) == 10.0
    assert rmap.field("frequency").primary_factor(ct=40, pt=10.0) == 1


def _sample_exponent(rmap: RegisterMap, f: RegisterField) -> int | None:
    if f.scale_register is None:
        return None
    ref = rmap.field(f.scale_register)
    return ref.exponent_from(ref.decode(ref.encode(-2)))


def _sample_raw(f: RegisterField) -> float:
    if f.dtype is DataType.BOOL:
        return 1
    if f.dtype.is_float:
        return 1234.5
    return min(f.dtype.max_raw, 12345)


@pytest.mark.parametrize(
    ("model", "field"), ALL_FIELDS, ids=[f"{m}.{f.name}" for m, f in ALL_FIELDS]
)
def test_shipped_field_round_trip(model: str, field: RegisterField) -> None:
    rmap = load_register_map(model)
    kwargs = {}
    if field.scale_register is not None:
        kwargs["scale_exponent"] = _sample_exponent(rmap, field)
    raw = _sample_raw(field)
    if field.dtype is DataType.BOOL:
        value: Any = True
    else:
        value = apply_scaling(
            raw,
            scale=field.scale,
            scale_exponent=kwargs.get("scale_exponent", field.scale_exponent),
            offset=field.offset,
        )
        assert field.to_raw(value, **kwargs) == raw
    registers = field.encode(value, **kwargs)
    assert len(registers) == field.register_count
    assert field.decode(registers, **kwargs) == value


@settings(max_examples=300)
@given(data=st.data())
def test_shipped_fields_round_trip_any_raw(data: st.DataObject) -> None:
    model, field = data.draw(st.sampled_from(ALL_FIELDS))
    if field.dtype is DataType.BOOL:
        return
    rmap = load_register_map(model)
    exponent = field.scale_exponent
    kwargs = {}
    if field.scale_register is not None:
        exponent = data.draw(st.integers(-3, 0))
        kwargs["scale_exponent"] = exponent
    if field.dtype.is_float:
        width = 32 if field.dtype is DataType.FLOAT32 else 64
        raw = data.draw(
            st.floats(-1e9, 1e9, width=width, allow_subnormal=False).filter(
                lambda x: x == 0 or abs(x) > 1e-20
            )
        )
    else:
        # scaled 64-bit raw values pass through a float: keep them float-exact (|raw| <= 2**53)
        lo, hi = field.dtype.min_raw, field.dtype.max_raw
        if exponent != 0 or field.scale != 1:
            lo, hi = max(lo, -(2**53)), min(hi, 2**53)
        raw = data.draw(st.integers(lo, hi))
        if field.sentinels and any(
            (raw - s) % (1 << field.dtype.bits) == 0 for s in field.sentinels
        ):
            return
    value = apply_scaling(raw, scale=field.scale, scale_exponent=exponent, offset=field.offset)
    decoded = field.decode(field.encode(value, **kwargs), **kwargs)
    assert decoded == value or math.isclose(decoded, value, rel_tol=1e-6)
    assert rmap.model == model


def test_not_available_encodes_and_decodes_to_none() -> None:
    belt = load_register_map("generic_belt_scale")
    total = belt.field("production_total")
    assert total.encode(None, scale_exponent=-2) == (0xFFFF,) * 4
    assert total.decode((0xFFFF,) * 4, scale_exponent=-2) is None
    flow = load_register_map("generic_flow_totaliser")
    assert flow.field("flow_total").decode((0xFFFF, 0xFFFF)) is None
    assert flow.field("flow_rate").decode(flow.field("flow_rate").encode(None)) is None
    with pytest.raises(ValueError, match="no sentinel"):
        load_register_map("acrel_adl400").field("voltage_l1").encode(None)


def test_scale_register_exponent() -> None:
    belt = load_register_map("generic_belt_scale")
    decimals = belt.field("total_decimals")
    total = belt.field("production_total")
    assert decimals.encode(-3) == (0x0300,)  # raw 3, little-endian
    exponent = decimals.exponent_from(decimals.decode((0x0300,)))
    assert exponent == -3
    # 123 456 789 = 0x075BCD15; HGFEDCBA (little-endian) bytes 15 CD 5B 07 00 00 00 00
    registers = (0x15CD, 0x5B07, 0x0000, 0x0000)
    assert total.decode(registers, scale_exponent=exponent) == 123456.789
    assert total.decode(registers, scale_exponent=None) is None
    with pytest.raises(ValueError, match="takes its exponent from field 'total_decimals'"):
        total.decode(registers)
    assert total.rollover_raw == 999999999999


def test_bit_fields_share_a_register() -> None:
    flow = load_register_map("generic_flow_totaliser")
    fault, over = flow.field("sensor_fault"), flow.field("flow_over_range")
    assert fault.decode((0b1001,)) is True
    assert over.decode((0b1001,)) is True
    assert over.decode((0b0001,)) is False
    assert over.encode(True) == (0b1000,)


def test_rollover_width_resolves_to_register_max() -> None:
    f = load_register_map("acrel_adl400").field("energy_import")
    assert f.rollover_raw == 2**32 - 1


# --------------------------------------------------------------------------- counter_rollover


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # uint32, rollover: width, scale 0.01 kWh: (2**32 - 1) × 0.01
        ("acrel_adl400", (42_949_672.95, 0.01)),
        # uint32, rollover: width, scale 0.1 t
        ("generic_flow_totaliser", (429_496_729.5, 0.1)),
        # the counter with a rollover takes its exponent from a scale register: run time only
        ("generic_belt_scale", None),
        # float counters without a declared rollover
        ("chint_dtsu666", None),
        ("eastron_sdm630", None),
    ],
)
def test_counter_rollover_of_shipped_maps(
    model: str, expected: tuple[float, float] | None
) -> None:
    assert counter_rollover(model) == expected


@pytest.mark.parametrize("model", MODELS)
def test_counter_rollover_wraps_on_a_whole_number_of_steps(model: str) -> None:
    found = counter_rollover(model)
    if found is None:
        return
    largest, step = found
    assert largest > 0 and step > 0
    steps = (largest + step) / step
    assert steps == pytest.approx(round(steps), rel=1e-12)


def _counter_map(tmp_path: Path, *fields: dict[str, Any]) -> str:
    data = copy.deepcopy(BASE)
    data["fields"] = [*fields, _field(data, "voltage")]
    return str(_write(tmp_path, data))


_COUNTER: dict[str, Any] = {
    "name": "energy",
    "address": 10,
    "dtype": "uint32",
    "unit": "kWh",
    "quantity": "energy_import",
    "kind": "counter",
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # explicit declared maximum (an 8-digit display), fixed exponent
        ({"rollover": 99_999_999, "scale_exponent": -1}, (9_999_999.9, 0.1)),
        # offset is ignored; scale and exponent multiply
        ({"rollover": 999_999, "scale": 2, "scale_exponent": -3, "offset": 5}, (1999.998, 0.002)),
        # width of a 16-bit register, unscaled
        ({"dtype": "uint16", "rollover": "width"}, (65_535.0, 1.0)),
        # width of a signed type: all 2**bits patterns, as for unsigned
        ({"dtype": "int32", "rollover": "width", "scale": 0.01}, (42_949_672.95, 0.01)),
        # a float register has no step
        ({"dtype": "float32", "rollover": 9_999_999.9}, (9_999_999.9, 0.0)),
        # no rollover declared
        ({}, None),
    ],
)
def test_counter_rollover_of_a_map_file(
    tmp_path: Path, changes: dict[str, Any], expected: tuple[float, float] | None
) -> None:
    found = counter_rollover(_counter_map(tmp_path, {**_COUNTER, **changes}))
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected, rel=1e-15)


def test_counter_rollover_takes_the_first_counter_that_declares_one(tmp_path: Path) -> None:
    path = _counter_map(
        tmp_path,
        {**_COUNTER, "name": "no_wrap"},
        {"name": "rate", "address": 20, "dtype": "float32", "unit": "kW",
         "quantity": "active_power", "kind": "instantaneous"},
        {**_COUNTER, "name": "first", "address": 30, "quantity": "energy_export",
         "rollover": 9_999, "scale": 0.1},
        {**_COUNTER, "name": "second", "address": 40, "quantity": "energy_total",
         "rollover": "width"},
    )
    assert counter_rollover(path) == pytest.approx((999.9, 0.1))


def test_counter_rollover_with_a_scale_register_is_unknown(tmp_path: Path) -> None:
    path = _counter_map(
        tmp_path,
        {**_COUNTER, "rollover": 999_999, "scale_register": "decimals"},
        {"name": "decimals", "address": 20, "dtype": "int16", "quantity": "scale_factor",
         "kind": "instantaneous"},
        {**_COUNTER, "name": "later", "address": 30, "quantity": "energy_total",
         "rollover": "width"},
    )
    assert counter_rollover(path) is None


def test_counter_rollover_of_an_unknown_model() -> None:
    with pytest.raises(RegisterMapError, match="unknown model"):
        counter_rollover("no_such_meter")


# --------------------------------------------------------------------------- validation

BASE: dict[str, Any] = {
    "model": "acme_x1",
    "manufacturer": "ACME",
    "byte_order": "ABCD",
    "fields": [
        {
            "name": "energy",
            "address": 0,
            "dtype": "uint32",
            "scale": 0.01,
            "unit": "kWh",
            "quantity": "energy_import",
            "kind": "counter",
            "rollover": "width",
        },
        {
            "name": "voltage",
            "address": 2,
            "dtype": "uint16",
            "scale": 0.1,
            "unit": "V",
            "quantity": "voltage_l1",
            "kind": "instantaneous",
        },
        {
            "name": "power",
            "address": 3,
            "dtype": "float32",
            "unit": "kW",
            "quantity": "active_power",
            "kind": "instantaneous",
        },
        {
            "name": "decimals",
            "address": 5,
            "dtype": "int16",
            "quantity": "scale_factor",
            "kind": "instantaneous",
        },
    ],
}


def _write(tmp_path: Path, data: Any, name: str = "acme_x1") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_base_map_is_valid(tmp_path: Path) -> None:
    rmap = load_register_map(_write(tmp_path, BASE))
    assert rmap.field("power").order is ByteOrder.ABCD


def _field(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in data["fields"] if f["name"] == name)


def _set(target: str, /, **changes: Any):  # type: ignore[no-untyped-def]
    def mutate(data: dict[str, Any]) -> None:
        _field(data, target).update(changes)

    return mutate


def _add(**field: Any):  # type: ignore[no-untyped-def]
    def mutate(data: dict[str, Any]) -> None:
        data["fields"].append(field)

    return mutate


def _top(**changes: Any):  # type: ignore[no-untyped-def]
    def mutate(data: dict[str, Any]) -> None:
        data.update(changes)

    return mutate


INVALID = [
    ("overlap", _set("voltage", address=1), "voltage", "address", "overlaps field 'energy'"),
    (
        "scale register unknown",
        _set("energy", scale_register="nope", rollover=None),
        "energy",
        "scale_register",
        "unknown field 'nope'",
    ),
    (
        "scale register is a float",
        _set("energy", scale_register="power"),
        "energy",
        "scale_register",
        "must be an integer register",
    ),
    (
        "exponent and register",
        _set("energy", scale_register="decimals", scale_exponent=-1),
        "energy",
        "scale_register",
        "either scale_exponent or scale_register",
    ),
    (
        "rollover on instantaneous",
        _set("voltage", rollover=1000),
        "voltage",
        "rollover",
        "only counters roll over",
    ),
    (
        "rollover width on float",
        _add(
            name="e_float",
            address=10,
            dtype="float32",
            unit="kWh",
            quantity="energy_export",
            kind="counter",
            rollover="width",
        ),
        "e_float",
        "rollover",
        "integer-only option",
    ),
    (
        "rollover beyond register",
        _set("energy", rollover=2**40),
        "energy",
        "rollover",
        "<= 4294967295",
    ),
    ("bit on float", _set("power", bit=3), "power", "bit", "integer-only option; float32"),
    (
        "address past end",
        _set("power", address=65535),
        "power",
        "address",
        "runs past 65535",
    ),
    ("unknown attribute", _set("voltage", scal=0.1), "voltage", "scal", "unknown attribute"),
    ("bad dtype", _set("voltage", dtype="float16"), "voltage", "dtype", "Input should be"),
    ("bad order", _set("power", order="XYZW"), "power", "order", "unknown byte order"),
    ("zero scale", _set("voltage", scale=0), "voltage", "scale", "non-zero"),
    ("unit mismatch", _set("voltage", unit="kWh"), "voltage", "unit", "does not fit"),
    (
        "counter that is not cumulative",
        _set("power", kind="counter"),
        "power",
        "kind",
        "not cumulative",
    ),
    (
        "cumulative that is instantaneous",
        _set("energy", kind="instantaneous", rollover=None),
        "energy",
        "kind",
        "is cumulative",
    ),
    (
        "sentinel out of range",
        _set("voltage", sentinels=[70000]),
        "voltage",
        "sentinels",
        "not a 16-bit raw pattern",
    ),
    (
        "float on a coil",
        _add(
            name="flag",
            address=0,
            table="coil",
            dtype="float32",
            quantity="status",
            kind="instantaneous",
        ),
        "flag",
        "dtype",
        "holds single bits",
    ),
    (
        "duplicate name",
        _add(
            name="voltage",
            address=20,
            dtype="uint16",
            unit="V",
            quantity="voltage_l2",
            kind="instantaneous",
        ),
        "voltage",
        "name",
        "duplicate field name",
    ),
    (
        "ratio on a non-electrical quantity",
        _set("decimals", ratio="ct"),
        "decimals",
        "ratio",
        "not scaled by CT/PT",
    ),
    ("bad field name", _set("voltage", name="Voltage L1"), "Voltage L1", "name", "pattern"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "attribute", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_field_names_model_field_attribute(
    tmp_path: Path, mutate: Any, field: str, attribute: str, message: str
) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(RegisterMapError) as info:
        load_register_map(path)
    text = str(info.value)
    assert "register map 'acme_x1'" in text
    assert str(path) in text
    assert f"field {field!r}" in text
    assert f"attribute {attribute!r}" in text
    assert message in text
    assert any(p.field == field and p.attribute == attribute for p in info.value.problems)


@pytest.mark.parametrize(
    ("mutate", "attribute", "message"),
    [
        (_top(byte_order="sideways"), "byte_order", "unknown byte order"),
        (_top(ct_ratio_field="nope"), "ct_ratio_field", "unknown field 'nope'"),
        (_top(pt_ratio_field="voltage"), "pt_ratio_field", "quantity voltage_l1"),
        (_top(fields=[]), "fields", "at least 1"),
        (_top(vendor="x"), "vendor", "unknown attribute"),
        (_top(model="Acme X1"), "model", "pattern"),
    ],
)
def test_invalid_map_attributes(tmp_path: Path, mutate: Any, attribute: str, message: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(RegisterMapError) as info:
        load_register_map(_write(tmp_path, data))
    assert f"attribute {attribute!r}" in str(info.value)
    assert message in str(info.value)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    _set("voltage", unit="kWh", scale=0)(data)
    _set("power", dtype="float16")(data)
    with pytest.raises(RegisterMapError) as info:
        load_register_map(_write(tmp_path, data))
    found = {(p.field, p.attribute) for p in info.value.problems}
    assert {("voltage", "unit"), ("voltage", "scale"), ("power", "dtype")} <= found
    assert len(str(info.value).splitlines()) == len(info.value.problems)


def test_model_must_match_file_name(tmp_path: Path) -> None:
    with pytest.raises(RegisterMapError, match="attribute 'model': .*must match the file name"):
        load_register_map(_write(tmp_path, BASE, name="other_name"))


def test_duplicate_yaml_key_is_an_error() -> None:
    text = "model: acme_x1\nmanufacturer: A\nmanufacturer: B\nfields: []\n"
    pattern = r"\(acme_x1.yaml\): invalid YAML: line 3, column 1: found duplicate key"
    with pytest.raises(RegisterMapError, match=pattern):
        parse_register_map(text, source="acme_x1.yaml")


def test_yaml_syntax_error_names_the_file() -> None:
    with pytest.raises(RegisterMapError, match=r"\(broken.yaml\): invalid YAML"):
        parse_register_map("model: [unclosed\n", source="broken.yaml")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(RegisterMapError, match="must contain a mapping"):
        parse_register_map("- 1\n- 2\n", source="list.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegisterMapError, match="cannot read file"):
        load_register_map(tmp_path / "absent.yaml")


def test_hex_string_address_and_aliases() -> None:
    text = """
model: acme_x2
manufacturer: ACME
byte_order: word_swap
fields:
  - {name: total, address: "0x0010", dtype: UINT32, unit: m3, quantity: flow_total,
     kind: counter}
  - {name: rate, address: 0x12, dtype: float32, order: mid-big, unit: m3/h,
     quantity: flow_rate, kind: instantaneous}
"""
    rmap = parse_register_map(text, expected_model="acme_x2")
    assert rmap.field("total").address == 16
    assert rmap.field("total").order is ByteOrder.CDAB  # inherited from the map
    assert rmap.field("rate").order is ByteOrder.BADC


def test_models_are_frozen() -> None:
    rmap = load_register_map("eastron_sdm630")
    with pytest.raises(Exception, match="frozen"):
        rmap.model = "x"  # type: ignore[misc]
    with pytest.raises(Exception, match="frozen"):
        rmap.fields[0].address = 1  # type: ignore[misc]
