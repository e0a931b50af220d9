"""Register maps: one YAML data file per meter model, validated at load.

A register map says, for one meter model, where each value lives and what it means::

    model: chint_dtsu666            # must equal the file name (chint_dtsu666.yaml)
    manufacturer: CHINT
    byte_order: ABCD                # default for every field; any alias of codec.ByteOrder
    fields:
      - name: voltage_l1
        address: 0x2006             # 0-based protocol (PDU) address, see below
        table: holding              # holding FC3 | input FC4 | coil FC1 | discrete_input FC2
        dtype: float32
        scale: 0.1                  # value = raw × scale × 10**scale_exponent + offset
        unit: V
        quantity: voltage_l1        # controlled vocabulary: Quantity
        kind: instantaneous         # counter | instantaneous | interval

Addresses are the 0-based addresses carried in the Modbus PDU, not the 1-based "register
numbers" of many manuals: holding register "40001" and input register "30001" are address 0,
"40108" is address 107. Hex (``0x006B``) and decimal are both accepted.

Field attributes (all validated, unknown attributes are errors):

- ``dtype`` and ``order`` (default: the map's ``byte_order``) select the codec; ``bit`` (0..15)
  reads one bit of a holding/input register as a ``bool``.
- ``scale``, ``scale_exponent``, ``offset``: fixed scaling. ``scale_register`` instead names
  another integer field whose *engineering* value is the power-of-ten exponent (SunSpec
  ``*_SF`` registers: exponent = raw; a "number of decimals" register: ``scale: -1`` so the
  exponent = −decimals). The referenced field must be read in the same poll.
- ``unit``: engineering unit after scaling, checked against the quantity (kWh for energies,
  kW for power, V, A, Hz, t, m3, GJ, …). Dimensionless values use ``""``.
- ``kind``: ``counter`` (cumulative, monotonic up to a rollover), ``instantaneous`` or
  ``interval`` (quantity accumulated since the last reset, e.g. a shift total).
- ``rollover`` (counters only): the largest *raw* value before the counter wraps to 0, either
  an explicit number (a declared maximum, e.g. a 12-digit display) or ``width`` for the
  register width (``2**32 - 1`` for uint32; integer types only).
- ``ratio``: ``none`` | ``ct`` | ``pt`` | ``ct_pt`` — the value is on the secondary side of
  current/voltage transformers and the primary value is value × CT (× PT). The codec never
  applies it; the collector multiplies by the meter's configured ratio (or by the fields named
  by the map's ``ct_ratio_field``/``pt_ratio_field``), see :meth:`RegisterField.primary_factor`.
- ``sentinels``: raw values meaning "not available" (decoded to ``None``). For integer types
  they are raw bit patterns (``0x8000`` and ``-32768`` are the same int16 sentinel); NaN and
  ±inf are always "not available" for floats.

Validation errors are raised as :class:`RegisterMapError`, whose message names the map (model
and file), the field and the attribute, e.g.
``register map 'acme_x1' (acme_x1.yaml): field 'energy': attribute 'rollover': ...``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.yamlfile import parse_strict, yaml_problem
from modbus import codec
from modbus.codec import ByteOrder, DataType, Number

__all__ = [
    "QUANTITY_UNITS",
    "Kind",
    "MapProblem",
    "Quantity",
    "Ratio",
    "RegisterField",
    "RegisterMap",
    "RegisterMapError",
    "Table",
    "available_models",
    "counter_rollover",
    "load_register_map",
    "parse_register_map",
]

MAX_ADDRESS = 0xFFFF
MAX_SCALE_EXPONENT = 20
_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_MODEL_PATTERN = r"^[a-z0-9][a-z0-9_]*$"


class Table(StrEnum):
    """Modbus data table a field lives in; each maps to exactly one *read* function code."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def function_code(self) -> int:
        """The read function code: 1 coils, 2 discrete inputs, 3 holding, 4 input registers."""
        return _TABLE_FC[self]

    @property
    def is_bit(self) -> bool:
        """True for the single-bit tables (coils and discrete inputs)."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)


_TABLE_FC = {Table.COIL: 1, Table.DISCRETE_INPUT: 2, Table.HOLDING: 3, Table.INPUT: 4}


class Kind(StrEnum):
    """How a value behaves over time."""

    COUNTER = "counter"
    INSTANTANEOUS = "instantaneous"
    INTERVAL = "interval"


class Ratio(StrEnum):
    """Instrument-transformer ratio that turns a secondary-side value into a primary one."""

    NONE = "none"
    CT = "ct"
    PT = "pt"
    CT_PT = "ct_pt"


class Quantity(StrEnum):
    """Controlled vocabulary of what a field measures (direction is part of the name)."""

    # cumulative electrical energy
    ENERGY_IMPORT = "energy_import"
    ENERGY_EXPORT = "energy_export"
    ENERGY_TOTAL = "energy_total"
    REACTIVE_ENERGY_IMPORT = "reactive_energy_import"
    REACTIVE_ENERGY_EXPORT = "reactive_energy_export"
    REACTIVE_ENERGY_TOTAL = "reactive_energy_total"
    REACTIVE_ENERGY_Q1 = "reactive_energy_q1"
    REACTIVE_ENERGY_Q2 = "reactive_energy_q2"
    REACTIVE_ENERGY_Q3 = "reactive_energy_q3"
    REACTIVE_ENERGY_Q4 = "reactive_energy_q4"
    # instantaneous electrical
    ACTIVE_POWER = "active_power"
    ACTIVE_POWER_L1 = "active_power_l1"
    ACTIVE_POWER_L2 = "active_power_l2"
    ACTIVE_POWER_L3 = "active_power_l3"
    REACTIVE_POWER = "reactive_power"
    APPARENT_POWER = "apparent_power"
    DEMAND_ACTIVE_POWER = "demand_active_power"
    POWER_FACTOR = "power_factor"
    VOLTAGE_L1 = "voltage_l1"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    VOLTAGE_L1_L2 = "voltage_l1_l2"
    VOLTAGE_L2_L3 = "voltage_l2_l3"
    VOLTAGE_L3_L1 = "voltage_l3_l1"
    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    CURRENT_N = "current_n"
    FREQUENCY = "frequency"
    # fluids, heat, production
    FLOW_TOTAL = "flow_total"
    FLOW_RATE = "flow_rate"
    HEAT_TOTAL = "heat_total"
    HEAT_RATE = "heat_rate"
    PRODUCTION_TOTAL = "production_total"
    PRODUCTION_RATE = "production_rate"
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"
    # meter configuration and state
    CT_RATIO = "ct_ratio"
    PT_RATIO = "pt_ratio"
    SCALE_FACTOR = "scale_factor"
    STATUS = "status"
    RUNNING = "running"
    ALARM = "alarm"


_ENERGY = ("Wh", "kWh", "MWh")
_REACTIVE_ENERGY = ("varh", "kvarh", "Mvarh")
_NONE = ("",)
QUANTITY_UNITS: dict[Quantity, tuple[str, ...]] = {
    Quantity.ENERGY_IMPORT: _ENERGY,
    Quantity.ENERGY_EXPORT: _ENERGY,
    Quantity.ENERGY_TOTAL: _ENERGY,
    Quantity.REACTIVE_ENERGY_IMPORT: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_EXPORT: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_TOTAL: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_Q1: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_Q2: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_Q3: _REACTIVE_ENERGY,
    Quantity.REACTIVE_ENERGY_Q4: _REACTIVE_ENERGY,
    Quantity.ACTIVE_POWER: ("W", "kW", "MW"),
    Quantity.ACTIVE_POWER_L1: ("W", "kW", "MW"),
    Quantity.ACTIVE_POWER_L2: ("W", "kW", "MW"),
    Quantity.ACTIVE_POWER_L3: ("W", "kW", "MW"),
    Quantity.DEMAND_ACTIVE_POWER: ("W", "kW", "MW"),
    Quantity.REACTIVE_POWER: ("var", "kvar", "Mvar"),
    Quantity.APPARENT_POWER: ("VA", "kVA", "MVA"),
    Quantity.POWER_FACTOR: _NONE,
    Quantity.VOLTAGE_L1: ("V", "kV"),
    Quantity.VOLTAGE_L2: ("V", "kV"),
    Quantity.VOLTAGE_L3: ("V", "kV"),
    Quantity.VOLTAGE_L1_L2: ("V", "kV"),
    Quantity.VOLTAGE_L2_L3: ("V", "kV"),
    Quantity.VOLTAGE_L3_L1: ("V", "kV"),
    Quantity.CURRENT_L1: ("A", "kA"),
    Quantity.CURRENT_L2: ("A", "kA"),
    Quantity.CURRENT_L3: ("A", "kA"),
    Quantity.CURRENT_N: ("A", "kA"),
    Quantity.FREQUENCY: ("Hz",),
    Quantity.FLOW_TOTAL: ("m3", "Nm3", "L", "t", "kg"),
    Quantity.FLOW_RATE: ("m3/h", "Nm3/h", "L/h", "L/s", "t/h", "kg/h"),
    Quantity.HEAT_TOTAL: ("GJ", "MJ", "kWh", "MWh"),
    Quantity.HEAT_RATE: ("GJ/h", "MJ/h", "kW", "MW"),
    Quantity.PRODUCTION_TOTAL: ("t", "kg", "pcs", "m3"),
    Quantity.PRODUCTION_RATE: ("t/h", "kg/h", "pcs/h", "m3/h"),
    Quantity.TEMPERATURE: ("degC",),
    Quantity.PRESSURE: ("Pa", "kPa", "MPa", "bar"),
    Quantity.CT_RATIO: _NONE,
    Quantity.PT_RATIO: _NONE,
    Quantity.SCALE_FACTOR: _NONE,
    Quantity.STATUS: _NONE,
    Quantity.RUNNING: _NONE,
    Quantity.ALARM: _NONE,
}
"""Engineering units allowed for each quantity (``""`` = dimensionless)."""

_CUMULATIVE = frozenset(
    {
        Quantity.ENERGY_IMPORT,
        Quantity.ENERGY_EXPORT,
        Quantity.ENERGY_TOTAL,
        Quantity.REACTIVE_ENERGY_IMPORT,
        Quantity.REACTIVE_ENERGY_EXPORT,
        Quantity.REACTIVE_ENERGY_TOTAL,
        Quantity.REACTIVE_ENERGY_Q1,
        Quantity.REACTIVE_ENERGY_Q2,
        Quantity.REACTIVE_ENERGY_Q3,
        Quantity.REACTIVE_ENERGY_Q4,
        Quantity.FLOW_TOTAL,
        Quantity.HEAT_TOTAL,
        Quantity.PRODUCTION_TOTAL,
    }
)
_ELECTRICAL = frozenset(
    q
    for q in Quantity
    if QUANTITY_UNITS[q] and QUANTITY_UNITS[q][0] in ("Wh", "varh", "W", "var", "VA", "V", "A")
)
_UNSIGNED = {
    DataType.INT16: DataType.UINT16,
    DataType.UINT16: DataType.UINT16,
    DataType.INT32: DataType.UINT32,
    DataType.UINT32: DataType.UINT32,
    DataType.INT64: DataType.UINT64,
    DataType.UINT64: DataType.UINT64,
}


class _Unset(Enum):
    UNSET = 0


_UNSET = _Unset.UNSET

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class MapProblem:
    """One validation problem: which field (if any), which attribute (if any), and why."""

    field: str | None
    attribute: str | None
    message: str

    def describe(self) -> str:
        """``field 'x': attribute 'y': message`` with the absent parts left out."""
        parts = []
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        if self.attribute is not None:
            parts.append(f"attribute {self.attribute!r}")
        parts.append(self.message)
        return ": ".join(parts)


class _Problems(ValueError):
    """Raised inside validators; carries structured problems through pydantic."""

    def __init__(self, problems: Sequence[MapProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.describe() for p in self.problems))


class RegisterMapError(ValueError):
    """A register map file or definition is invalid.

    ``str()`` lists every problem on its own line, each prefixed with the map's model and
    source file, the field name and the attribute.
    """

    def __init__(
        self,
        problems: Sequence[MapProblem],
        *,
        model: str | None = None,
        source: str | None = None,
    ) -> None:
        self.problems = tuple(problems)
        self.model = model
        self.source = source
        super().__init__("\n".join(f"{self._prefix()}: {p.describe()}" for p in self.problems))

    def _prefix(self) -> str:
        where = "register map"
        if self.model is not None:
            where += f" {self.model!r}"
        if self.source is not None:
            where += f" ({self.source})"
        return where


# --------------------------------------------------------------------------- models


def _reject_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    return v


class RegisterField(BaseModel):
    """One value of a meter: where it is, how to decode it and what it means.

    ``address`` is the 0-based protocol address; ``scale``/``scale_exponent``/``offset``
    turn the raw value into ``unit`` (value = raw × scale × 10**exponent + offset).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=_NAME_PATTERN, max_length=64)]
    address: Annotated[int, Field(ge=0, le=MAX_ADDRESS)]
    table: Table = Table.HOLDING
    dtype: DataType
    order: ByteOrder = ByteOrder.ABCD
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    scale: int | float = 1
    scale_exponent: Annotated[int, Field(ge=-MAX_SCALE_EXPONENT, le=MAX_SCALE_EXPONENT)] = 0
    scale_register: str | None = None
    offset: int | float = 0
    unit: str = ""
    quantity: Quantity
    kind: Kind
    rollover: int | float | Literal["width"] | None = None
    ratio: Ratio = Ratio.NONE
    sentinels: tuple[int | float, ...] = ()
    description: str = ""

    @field_validator("address", mode="before")
    @classmethod
    def _parse_address(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return int(v.strip(), 0)
            except ValueError:
                raise ValueError(f"address {v!r} is not an integer (decimal or 0x-hex)") from None
        return _reject_bool(v)

    @field_validator("dtype", "table", "kind", "ratio", "quantity", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("order", mode="before")
    @classmethod
    def _normalize_order(cls, v: Any) -> ByteOrder:
        return codec.normalize_order(v)

    @field_validator("scale", "offset", "rollover", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        return _reject_bool(v)

    @field_validator("sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (v,)
        if isinstance(v, list | tuple):
            for s in v:
                _reject_bool(s)
        return v

    @model_validator(mode="after")
    def _check(self) -> RegisterField:
        problems = [MapProblem(self.name, a, m) for a, m in self._field_problems()]
        if problems:
            raise _Problems(problems)
        return self

    def _field_problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        dtype = self.dtype
        n = dtype.register_count
        if self.address + n - 1 > MAX_ADDRESS:
            out.append(("address", f"address {self.address} + {n} register(s) runs past 65535"))
        if not math.isfinite(self.scale) or self.scale == 0:
            out.append(("scale", f"scale must be finite and non-zero, got {self.scale!r}"))
        if not math.isfinite(self.offset):
            out.append(("offset", f"offset must be finite, got {self.offset!r}"))
        if self.table.is_bit and dtype is not DataType.BOOL:
            out.append(("dtype", f"table {self.table} holds single bits; dtype must be bool"))
        if self.bit is not None:
            if dtype.is_float:
                out.append(("bit", f"bit is an integer-only option; {dtype} is a float type"))
            elif dtype is not DataType.BOOL:
                out.append(("bit", "bit selects one bit of a register and needs dtype bool"))
            elif self.table.is_bit:
                out.append(("bit", f"bit is meaningless on the {self.table} table"))
        if self.scale_register is not None:
            if self.scale_exponent != 0:
                out.append(
                    ("scale_register", "give either scale_exponent or scale_register, not both")
                )
            if self.scale_register == self.name:
                out.append(("scale_register", "a field cannot be its own scale register"))
        if dtype is DataType.BOOL and (
            self.scale != 1
            or self.scale_exponent != 0
            or self.offset != 0
            or self.scale_register is not None
        ):
            out.append(("scale", "bool fields are not scaled"))
        if self.rollover is not None:
            if self.kind is not Kind.COUNTER:
                out.append(("rollover", f"only counters roll over; kind is {self.kind}"))
            elif self.rollover == "width":
                if not dtype.is_integer:
                    out.append(
                        (
                            "rollover",
                            f"rollover 'width' is an integer-only option; {dtype} needs "
                            "an explicit declared maximum",
                        )
                    )
            elif not math.isfinite(self.rollover) or self.rollover <= 0:
                out.append(("rollover", f"rollover must be a positive number, got {self.rollover}"))
            elif dtype.is_integer and (
                not isinstance(self.rollover, int) or self.rollover > dtype.max_raw
            ):
                out.append(
                    (
                        "rollover",
                        f"rollover {self.rollover} must be an integer raw value "
                        f"<= {dtype.max_raw} for {dtype}",
                    )
                )
        if self.kind is Kind.COUNTER and dtype is DataType.BOOL:
            out.append(("kind", "a bool cannot be a counter"))
        if self.quantity in _CUMULATIVE and self.kind is Kind.INSTANTANEOUS:
            out.append(
                (
                    "kind",
                    f"quantity {self.quantity} is cumulative; kind must be counter or interval",
                )
            )
        if self.quantity not in _CUMULATIVE and self.kind is Kind.COUNTER:
            out.append(
                ("kind", f"quantity {self.quantity} is not cumulative; it cannot be a counter")
            )
        allowed = QUANTITY_UNITS[self.quantity]
        if self.unit not in allowed:
            shown = ", ".join(repr(u) for u in allowed)
            out.append(
                ("unit", f"unit {self.unit!r} does not fit quantity {self.quantity} ({shown})")
            )
        if self.ratio is not Ratio.NONE and self.quantity not in _ELECTRICAL:
            out.append(("ratio", f"quantity {self.quantity} is not scaled by CT/PT ratios"))
        for s in self.sentinels:
            if dtype is DataType.BOOL:
                out.append(("sentinels", "bool fields have no sentinels"))
                break
            if dtype.is_integer:
                lo, hi = -(1 << (dtype.bits - 1)), (1 << dtype.bits) - 1
                if not isinstance(s, int) or not lo <= s <= hi:
                    out.append(
                        ("sentinels", f"sentinel {s!r} is not a {dtype.bits}-bit raw pattern")
                    )
        return out

    # ----------------------------------------------------------------- derived facts

    @property
    def register_count(self) -> int:
        """Registers (or bits, on coil/discrete-input tables) the field occupies."""
        return self.dtype.register_count

    @property
    def end(self) -> int:
        """One past the last address the field occupies."""
        return self.address + self.register_count

    @property
    def function_code(self) -> int:
        """Read function code for the field's table (1, 2, 3 or 4)."""
        return self.table.function_code

    @property
    def rollover_raw(self) -> Number | None:
        """Largest raw value before wrap-around, with ``width`` resolved; None if undeclared."""
        if self.rollover == "width":
            return self.dtype.max_raw
        return self.rollover

    def primary_factor(self, ct: Number = 1, pt: Number = 1) -> Number:
        """Multiplier from this field's value to the primary side for given CT and PT ratios."""
        return {
            Ratio.NONE: 1,
            Ratio.CT: ct,
            Ratio.PT: pt,
            Ratio.CT_PT: ct * pt,
        }[self.ratio]

    # ----------------------------------------------------------------- codec

    def _exponent(self, scale_exponent: int | None) -> int:
        if self.scale_register is not None:
            if scale_exponent is None:
                raise ValueError(
                    f"field {self.name!r} takes its exponent from field "
                    f"{self.scale_register!r}; pass scale_exponent"
                )
            return scale_exponent
        if scale_exponent is not None and scale_exponent != self.scale_exponent:
            raise ValueError(
                f"field {self.name!r} has a fixed scale_exponent {self.scale_exponent}"
            )
        return self.scale_exponent

    def exponent_from(self, value: Number | None) -> int | None:
        """Interpret this field's engineering value as a power-of-ten exponent.

        Used for fields that other fields name as ``scale_register``; ``None`` (a sentinel)
        stays ``None``. Raises :class:`ValueError` when the value is not a small integer.
        """
        if value is None:
            return None
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"scale register {self.name!r} holds a non-integer {value!r}")
        exponent = int(value)
        if abs(exponent) > MAX_SCALE_EXPONENT:
            raise ValueError(f"scale register {self.name!r} holds an implausible {exponent}")
        return exponent

    def decode(
        self, registers: Sequence[int], *, scale_exponent: int | None | _Unset = _UNSET
    ) -> Number | None:
        """Engineering value of this field from its own registers (or bit), ``None`` if N/A.

        Fields with a ``scale_register`` need ``scale_exponent`` (the decoded exponent, see
        :meth:`exponent_from`); passing ``None`` there means the exponent is not available and
        the value decodes to ``None``. Other fields use their own ``scale_exponent``.
        """
        if self.dtype is DataType.BOOL:
            if len(registers) != 1:
                raise ValueError(f"field {self.name!r} needs 1 value, got {len(registers)}")
            raw = int(registers[0])
            if self.bit is not None:
                return bool((raw >> self.bit) & 1)
            return bool(raw)
        if self.scale_register is not None and scale_exponent is None:
            codec.decode(registers, self.dtype, self.order)  # still validate the registers
            return None
        exponent = self._exponent(None if scale_exponent is _UNSET else scale_exponent)
        return codec.decode_value(
            registers,
            self.dtype,
            self.order,
            scale=self.scale,
            scale_exponent=exponent,
            offset=self.offset,
            sentinels=self.sentinels,
        )

    def to_raw(self, value: Number, *, scale_exponent: int | None = None) -> Number:
        """Raw value for an engineering value (simulators); see :func:`codec.to_raw`."""
        return codec.to_raw(
            value,
            self.dtype,
            scale=self.scale,
            scale_exponent=self._exponent(scale_exponent),
            offset=self.offset,
        )

    def encode(self, value: Number | None, *, scale_exponent: int | None = None) -> tuple[int, ...]:
        """Registers (or the bit) a meter holds for ``value``; ``None`` encodes "not available".

        "Not available" is NaN for floats and the first declared sentinel for integers; an
        integer field without sentinels cannot encode ``None`` (:class:`ValueError`).
        A ``bool`` field with ``bit`` sets only that bit of the register.
        """
        if self.dtype is DataType.BOOL:
            if value is None:
                raise ValueError(f"bool field {self.name!r} cannot encode 'not available'")
            if self.bit is not None:
                return ((1 << self.bit) if value else 0,)
            return (1 if value else 0,)
        if value is None:
            if self.dtype.is_float:
                return codec.encode(math.nan, self.dtype, self.order)
            if not self.sentinels:
                raise ValueError(f"field {self.name!r} declares no sentinel for 'not available'")
            pattern = codec.raw_bit_pattern(int(self.sentinels[0]), self.dtype)
            return codec.encode(pattern, _UNSIGNED[self.dtype], self.order)
        raw = self.to_raw(value, scale_exponent=scale_exponent)
        return codec.encode(raw, self.dtype, self.order)


class RegisterMap(BaseModel):
    """All fields of one meter model, validated as a whole (overlaps, references)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Annotated[str, Field(pattern=_MODEL_PATTERN, max_length=64)]
    manufacturer: Annotated[str, Field(min_length=1)]
    description: str = ""
    byte_order: ByteOrder = ByteOrder.ABCD
    sources: tuple[str, ...] = ()
    ct_ratio_field: str | None = None
    pt_ratio_field: str | None = None
    fields: Annotated[tuple[RegisterField, ...], Field(min_length=1)]

    @field_validator("byte_order", mode="before")
    @classmethod
    def _normalize_order(cls, v: Any) -> ByteOrder:
        return codec.normalize_order(v)

    @model_validator(mode="before")
    @classmethod
    def _inherit_order(cls, data: Any) -> Any:
        """Fields without an ``order`` take the map's ``byte_order``."""
        if not isinstance(data, dict):
            return data
        try:
            default = codec.normalize_order(data.get("byte_order", ByteOrder.ABCD))
        except ValueError:
            return data  # reported on byte_order itself
        fields = data.get("fields")
        if not isinstance(fields, list | tuple):
            return data
        inherited: list[Any] = []
        for f in fields:
            if isinstance(f, dict) and "order" not in f:
                f = {**f, "order": default}
            elif isinstance(f, RegisterField) and "order" not in f.model_fields_set:
                f = f.model_copy(update={"order": default})
            inherited.append(f)
        return {**data, "fields": inherited}

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        problems: list[MapProblem] = []
        by_name: dict[str, RegisterField] = {}
        for f in self.fields:
            if f.name in by_name:
                problems.append(MapProblem(f.name, "name", "duplicate field name"))
            by_name.setdefault(f.name, f)
        problems += _overlaps(self.fields)
        for f in self.fields:
            if f.scale_register is None:
                continue
            target = by_name.get(f.scale_register)
            if target is None:
                problems.append(
                    MapProblem(
                        f.name,
                        "scale_register",
                        f"refers to unknown field {f.scale_register!r}",
                    )
                )
            elif not target.dtype.is_integer or target.table.is_bit:
                problems.append(
                    MapProblem(
                        f.name,
                        "scale_register",
                        f"scale register {target.name!r} must be an integer register, "
                        f"not {target.dtype}",
                    )
                )
            elif target.scale_register is not None:
                problems.append(
                    MapProblem(
                        f.name,
                        "scale_register",
                        f"scale register {target.name!r} has a scale register itself",
                    )
                )
        for attr, quantity in (
            ("ct_ratio_field", Quantity.CT_RATIO),
            ("pt_ratio_field", Quantity.PT_RATIO),
        ):
            ref = getattr(self, attr)
            if ref is None:
                continue
            target = by_name.get(ref)
            if target is None:
                problems.append(MapProblem(None, attr, f"refers to unknown field {ref!r}"))
            elif target.quantity is not quantity:
                problems.append(
                    MapProblem(None, attr, f"field {ref!r} has quantity {target.quantity}")
                )
        if problems:
            raise _Problems(problems)
        return self

    # ----------------------------------------------------------------- lookups

    @property
    def field_names(self) -> tuple[str, ...]:
        """Field names in file order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> RegisterField:
        """The field called ``name`` (:class:`KeyError` naming the map otherwise)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register map {self.model!r} has no field {name!r}")

    def with_dependencies(self, names: Iterable[str]) -> tuple[RegisterField, ...]:
        """The named fields plus the scale-register fields they need, in file order."""
        wanted = set()
        for name in names:
            f = self.field(name)
            wanted.add(f.name)
            if f.scale_register is not None:
                wanted.add(f.scale_register)
        return tuple(f for f in self.fields if f.name in wanted)

    @classmethod
    def from_data(
        cls, data: Any, *, source: str | None = None, expected_model: str | None = None
    ) -> RegisterMap:
        """Validate parsed YAML/JSON data; errors become :class:`RegisterMapError`."""
        if not isinstance(data, dict):
            raise RegisterMapError(
                [MapProblem(None, None, "the file must contain a mapping (model, fields, …)")],
                source=source,
            )
        raw_model = data.get("model")
        model_name = raw_model if isinstance(raw_model, str) else None
        try:
            result = cls.model_validate(data)
        except ValidationError as exc:
            raise RegisterMapError(_translate(exc, data), model=model_name, source=source) from None
        if expected_model is not None and result.model != expected_model:
            raise RegisterMapError(
                [
                    MapProblem(
                        None,
                        "model",
                        f"model {result.model!r} must match the file name {expected_model!r}",
                    )
                ],
                model=model_name,
                source=source,
            )
        return result


def _overlaps(fields: Sequence[RegisterField]) -> list[MapProblem]:
    problems = []
    by_table: dict[Table, list[RegisterField]] = {}
    for f in fields:
        by_table.setdefault(f.table, []).append(f)
    for table_fields in by_table.values():
        ordered = sorted(table_fields, key=lambda f: (f.address, f.end, f.name))
        for i, f in enumerate(ordered):
            for g in ordered[i + 1 :]:
                if g.address >= f.end:
                    break
                shared_bits = (
                    f.bit is not None
                    and g.bit is not None
                    and f.bit != g.bit
                    and f.address == g.address
                )
                if shared_bits:
                    continue
                problems.append(
                    MapProblem(
                        g.name,
                        "address",
                        f"{g.table} address {g.address} (0x{g.address:04X}) overlaps field "
                        f"{f.name!r} at {f.address}..{f.end - 1}",
                    )
                )
    return problems


def _translate(exc: ValidationError, data: dict[str, Any]) -> list[MapProblem]:
    """Turn pydantic errors into problems that name the field and the attribute."""
    raw_fields = data.get("fields")
    problems: list[MapProblem] = []
    for err in exc.errors():
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, _Problems):
            problems.extend(original.problems)
            continue
        loc = err["loc"]
        field: str | None = None
        attribute: str | None = None
        rest: tuple[Any, ...] = loc
        if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):
            idx = loc[1]
            raw = raw_fields[idx] if isinstance(raw_fields, list) and idx < len(raw_fields) \
                else None
            name = raw.get("name") if isinstance(raw, dict) else None
            field = name if isinstance(name, str) else f"#{idx + 1}"
            rest = loc[2:]
        if rest:
            attribute = ".".join(str(p) for p in rest)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown attribute"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(MapProblem(field, attribute, message))
    return problems


# --------------------------------------------------------------------------- loading


def parse_register_map(
    text: str, *, source: str = "<string>", expected_model: str | None = None
) -> RegisterMap:
    """Parse and validate register-map YAML text (``source`` is used in error messages)."""
    try:
        data = parse_strict(text)
    except yaml.YAMLError as exc:
        raise RegisterMapError(
            [MapProblem(None, None, f"invalid YAML: {yaml_problem(exc)}")], source=source
        ) from None
    return RegisterMap.from_data(data, source=source, expected_model=expected_model)


def _maps_dir() -> resources.abc.Traversable:
    return resources.files("modbus").joinpath("maps")


def available_models() -> tuple[str, ...]:
    """Model names of the register maps shipped in ``modbus/maps/``, sorted."""
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in _maps_dir().iterdir()
            if entry.is_file() and entry.name.endswith(".yaml")
        )
    )


@cache
def _load_packaged(model: str) -> RegisterMap:
    entry = _maps_dir().joinpath(f"{model}.yaml")
    return parse_register_map(
        entry.read_text(encoding="utf-8"), source=f"{model}.yaml", expected_model=model
    )


def load_register_map(name_or_path: str | os.PathLike[str]) -> RegisterMap:
    """Load a register map by shipped model name (``"eastron_sdm630"``) or by file path.

    A string ending in ``.yaml``/``.yml`` or containing a path separator is a path; the
    file's stem must equal its ``model``. Shipped maps are parsed once and cached (the
    models are immutable).
    """
    if isinstance(name_or_path, str) and not (
        name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or os.sep in name_or_path
    ):
        if name_or_path not in available_models():
            raise RegisterMapError(
                [
                    MapProblem(
                        None,
                        None,
                        f"unknown model; available: {', '.join(available_models())}",
                    )
                ],
                model=name_or_path,
            )
        return _load_packaged(name_or_path)
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegisterMapError(
            [MapProblem(None, None, f"cannot read file: {exc.strerror or exc}")], source=str(path)
        ) from None
    return parse_register_map(text, source=str(path), expected_model=path.stem)


def counter_rollover(model: str) -> tuple[float, float] | None:
    """``(largest value before the wrap, one register step)`` in engineering units for the
    primary counter of register map ``model`` (a shipped model name or a map file path).

    The primary counter is the first field of kind counter that declares a ``rollover``
    (explicit raw maximum, or ``width`` = ``2**bits - 1`` of its integer type). Both values
    use the field's fixed scale ``|scale| × 10**scale_exponent`` (offset ignored); the step
    is 0.0 for a float register. None when no counter declares a rollover, or when that
    counter takes its exponent from a ``scale_register`` (known only at run time). Accounting
    wraps such a counter at ``largest + step``.
    """
    for f in load_register_map(model).fields:
        if f.kind is not Kind.COUNTER or f.rollover is None:
            continue
        if f.scale_register is not None:
            return None
        factor = abs(Decimal(str(f.scale)).scaleb(f.scale_exponent))
        raw = Decimal((1 << f.dtype.bits) - 1) if f.rollover == "width" else Decimal(
            str(f.rollover))
        step = factor if f.dtype.is_integer else Decimal(0)
        return float(raw * factor), float(step)
    return None
