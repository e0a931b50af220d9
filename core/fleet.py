"""Fleet files: regions, plants, production units and meters as validated data.

A fleet file is YAML (see ``core/examples/fleet.yaml``). Models are frozen and forbid unknown
keys; every error names the plant, unit, meter and field it is about, e.g.::

    fleet.yaml: plant 'jx-yujiang-cement' > meter 'kiln-coal' > field 'multiplier':
        Input should be greater than 0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.contract import CODE_PATTERN

Code = Annotated[str, Field(pattern=CODE_PATTERN)]
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$")]

# GB 32100-2015 unified social credit code: 18 characters from this alphabet, the last a
# check character over the first 17 with weights 3**i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (for 'defined more than once' errors)."""
    seen: set[str] = set()
    dups: set[str] = set()
    for value in values:
        (dups if value in seen else seen).add(value)
    return sorted(dups)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a USCC."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class RegionLevel(StrEnum):
    PROVINCE = "province"
    PREFECTURE = "prefecture"
    COUNTY = "county"


class EnergyClass(StrEnum):
    GE_10000 = "ge_10000_tce"   # key unit nationally (>= 10 000 tce/a)
    FROM_5000 = "5000_10000_tce"  # key unit where the province designates (>= 5 000 tce/a)
    LT_5000 = "lt_5000_tce"


class MeterKind(StrEnum):
    COUNTER = "counter"            # cumulative register (kWh, m3, t ...)
    INTERVAL = "interval"          # quantity consumed in the interval ending at ts
    INSTANTANEOUS = "instantaneous"  # kW, flow rate, temperature ...
    PRODUCTION = "production"      # cumulative product output counter


class Direction(StrEnum):
    CONSUMED = "consumed"
    EXPORTED = "exported"   # exported or recovered across the boundary (subtracted)


class Region(_Model):
    code: RegionCode
    name: str = Field(min_length=1)
    level: RegionLevel
    parent: RegionCode | None = None


# -- simulation blocks (optional; read only by the simulators) ------------------------------------
#
# Every block below is optional: a fleet without ``simulation`` keys validates and loads exactly as
# before. The simulators (``energymon simulate ...``) turn a plant with a ``simulation`` block into
# Modbus TCP meters or an MQTT-pushing plant; see simulators/__init__.py for the plant model.

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Seconds from ``900``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"`` (other values pass on)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (write e.g. 900, '90s', '15m', '2h', "
                             "'1d')")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""A duration in seconds; YAML may write ``900``, ``"15m"``, ``"2h"``, ``"1d"``."""


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("needs a UTC offset, e.g. 2026-01-01T08:00:00+08:00")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def index(self) -> int:
        """Monday = 0 ... Sunday = 6 (as ``datetime.weekday()``)."""
        return list(Weekday).index(self)


class TimeWindow(_Model):
    """When something applies: an absolute ``start``/``end`` (either may be open), and/or a
    recurring window of ``duration`` seconds every ``every`` seconds, shifted by ``offset`` from
    the simulation epoch. No keys at all = always."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    every: Duration | None = None
    duration: Duration | None = None
    offset: Duration = 0

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("field 'end': must be after 'start'")
        if (self.every is None) != (self.duration is None):
            raise ValueError("field 'every': a recurring window needs both 'every' and 'duration'")
        if self.every is not None and self.duration is not None:
            if self.every <= 0:
                raise ValueError("field 'every': must be > 0")
            if not 0 < self.duration < self.every:
                raise ValueError("field 'duration': must be > 0 and shorter than 'every'")
        return self

    @property
    def bounded(self) -> bool:
        """True when the window is not 'always'."""
        return any(v is not None for v in (self.start, self.end, self.every))


class Schedule(_Model):
    """Production schedule in the plant's local time zone."""

    shifts: int = Field(default=3, ge=1, le=3, description="8-hour shifts per day; 3 = 24 h")
    shift_start_h: float = Field(default=0, ge=0, lt=24,
                                 description="local hour the first shift starts (e.g. 8)")
    days_off: tuple[Weekday, ...] = Field(default=(), description="e.g. [sat, sun]")
    maintenance: tuple[TimeWindow, ...] = Field(default=(), description="stops (no output)")
    ramp_up_h: float = Field(default=0, ge=0, le=168,
                             description="hours from a start to full output (linear)")

    @field_validator("maintenance")
    @classmethod
    def _bounded(cls, value: tuple[TimeWindow, ...]) -> tuple[TimeWindow, ...]:
        for i, window in enumerate(value):
            if not window.bounded:
                raise ValueError(f"window #{i + 1} has no start/end/every: it would stop the "
                                 "unit for ever")
        return value


class IntensityLevel(StrEnum):
    AT_BENCHMARK = "at_benchmark"
    BELOW_BENCHMARK = "below_benchmark"
    BELOW_BASELINE = "below_baseline"


class RelativeIntensity(_Model):
    """A true intensity placed relative to the catalogue entry's levels.

    ``where`` runs from the better end (0.0) to the worse end (1.0) of the band: at_benchmark is
    [benchmark − span, benchmark], below_benchmark (benchmark, baseline], below_baseline
    (baseline, baseline + span], with span = |baseline − benchmark|."""

    level: IntensityLevel
    where: float = Field(default=0.5, ge=0, le=1)


class UnitSimulation(_Model):
    """How a production unit behaves in the simulators.

    Energy per 15-minute interval = output × intensity + base load, split over the unit's meters
    by ``mix`` (shares of consumed energy in kgce) and converted to each meter's unit with the
    GB/T 2589 coefficients; ``exports`` meters carry energy exported or recovered per unit of
    output (subtracted: comprehensive energy = consumed − exported)."""

    intensity: float | RelativeIntensity = Field(
        description="true (marginal) intensity: a number in the catalogue entry's unit "
                    "(kgce/<product unit> without a catalogue key), or {level, where}")
    utilisation: float = Field(default=0.85, gt=0, le=1.2,
                               description="mean output / design output while running")
    output_rate: float | None = Field(
        default=None, gt=0,
        description="output per hour at 100 % (product unit/h); default from design_capacity "
                    "when capacity_unit is <product_unit>/h, /d or /a")
    variability: float = Field(default=0.03, ge=0, le=0.5,
                               description="relative standard deviation of 15-min output")
    schedule: Schedule = Schedule()
    mix: dict[Code, Annotated[float, Field(gt=0, le=1)]] = Field(
        description="consumed-energy meter id -> share of the unit's consumed kgce (sum 1)")
    exports: dict[Code, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="exported-energy meter id -> energy per unit of output, in the intensity's "
                    "energy unit (e.g. kgce per t)")
    base_load: float = Field(default=0.03, ge=0, le=1,
                             description="consumption while idle, as a share of the consumption "
                                         "at 100 % output")

    @model_validator(mode="after")
    def _shares(self) -> Self:
        total = sum(self.mix.values())
        if self.mix and abs(total - 1) > 1e-6:
            raise ValueError(f"field 'mix': shares add up to {total:g}, not 1")
        if not self.mix:
            raise ValueError("field 'mix': name at least one consumed-energy meter")
        return self


class _Fault(TimeWindow):
    """Common part of every fault: the time window it applies in (default: always) and the
    share of events it affects."""

    probability: float = Field(default=1.0, gt=0, le=1,
                               description="share of requests / readings / messages affected")


class OfflineFault(_Fault):
    """The Modbus unit does not answer at all (the client times out)."""

    kind: Literal["offline"]


class TimeoutFault(_Fault):
    """A share of requests gets no response (the client times out)."""

    kind: Literal["timeout"]


class SlowFault(_Fault):
    """Responses are delayed by ``delay`` seconds."""

    kind: Literal["slow"]
    delay: Duration = 0.5


class ExceptionFault(_Fault):
    """Requests are answered with a Modbus exception response (``code``)."""

    kind: Literal["exception"]
    code: Literal[1, 2, 3, 4, 5, 6, 8, 10, 11] = 4


class RolloverFault(_Model):
    """The counter is positioned so that it wraps to 0 at ``at`` (needs a declared width:
    the meter's rollover_max or its register map's rollover; overrides ``initial``)."""

    kind: Literal["rollover"]
    at: AwareDatetime


class ResetFault(_Model):
    """Meter reset or replacement at ``at``: the counter restarts from ``value``."""

    kind: Literal["reset"]
    at: AwareDatetime
    value: float = Field(default=0, ge=0)


class StuckFault(_Fault):
    """Every value freezes at what it was when the window opened (needs a window)."""

    kind: Literal["stuck"]

    @model_validator(mode="after")
    def _needs_window(self) -> Self:
        if not self.bounded:
            raise ValueError("a stuck fault needs a window (start/end or every/duration)")
        if self.probability != 1:
            raise ValueError("field 'probability': a stuck fault applies to its whole window")
        return self


class SpikeFault(_Fault):
    """The meter's reading is multiplied by ``factor`` (a glitch; the counter itself is fine)."""

    kind: Literal["spike"]
    factor: float = Field(default=1000, gt=0)


MeterFault = Annotated[
    OfflineFault | TimeoutFault | SlowFault | ExceptionFault | RolloverFault | ResetFault
    | StuckFault | SpikeFault,
    Field(discriminator="kind"),
]
PROTOCOL_FAULTS = frozenset({"offline", "timeout", "slow", "exception"})


class MeterSimulation(_Model):
    unit_id: int | None = Field(default=None, ge=1, le=247,
                                description="Modbus unit id (default: position among the "
                                            "plant's meters, from 1)")
    initial: float | None = Field(default=None, ge=0,
                                  description="counter reading at the simulation epoch")
    faults: tuple[MeterFault, ...] = ()


class DuplicateFault(_Fault):
    """A message is published twice."""

    kind: Literal["duplicate"]


class OutOfOrderFault(_Fault):
    """A message is held back and published after the next one."""

    kind: Literal["out_of_order"]


class LateFault(_Fault):
    """A message is published ``delay`` seconds (simulated time) late."""

    kind: Literal["late"]
    delay: Duration = 3600


class ClockSkewFault(_Fault):
    """Reading timestamps are off by ``skew`` seconds (the plant's clock is wrong)."""

    kind: Literal["clock_skew"]
    skew: float = Field(default=300, description="seconds, may be negative")


class MalformedFault(_Fault):
    """The payload is broken (truncated JSON, wrong types, NaN, unknown keys ...)."""

    kind: Literal["malformed"]


MqttFault = Annotated[
    DuplicateFault | OutOfOrderFault | LateFault | ClockSkewFault | MalformedFault,
    Field(discriminator="kind"),
]


class ModbusTransport(_Model):
    """Meters served over Modbus TCP, one unit id per meter (a plant gateway)."""

    type: Literal["modbus"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 = a free port")


class MqttTransport(_Model):
    """The plant pushes its readings itself (topic plants/<plant>/readings)."""

    type: Literal["mqtt"]
    mode: Literal["batch", "single"] = "batch"
    gateway: Code | None = Field(default=None, description="gateway id (default <plant>-gw)")
    qos: Literal[0, 1] = 1
    faults: tuple[MqttFault, ...] = ()


class PlantLoad(_Model):
    """A plant-level meter (no production unit): either ``rate`` (the meter's unit per hour
    while the plant schedule runs) or ``per_output`` (per unit of output of the ``follows``
    units, e.g. waste-heat power per tonne of clinker)."""

    rate: float | None = Field(default=None, ge=0)
    per_output: float | None = Field(default=None, ge=0)
    follows: tuple[Code, ...] = ()
    variability: float = Field(default=0.05, ge=0, le=0.5)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.rate is None) == (self.per_output is None):
            raise ValueError("give exactly one of 'rate' and 'per_output'")
        if self.per_output is not None and not self.follows:
            raise ValueError("field 'follows': 'per_output' needs the production units it "
                             "follows")
        if self.rate is not None and self.follows:
            raise ValueError("field 'follows': only used with 'per_output'")
        return self


Transport = Annotated[ModbusTransport | MqttTransport, Field(discriminator="type")]


class PlantSimulation(_Model):
    transport: Transport = ModbusTransport(type="modbus")
    seed: int = Field(default=0, ge=0)
    schedule: Schedule = Field(default=Schedule(),
                               description="schedule of plant-level 'rate' loads")
    loads: dict[Code, PlantLoad] = Field(default_factory=dict,
                                         description="plant-level meter id -> load")


DEFAULT_EPOCH = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=8)))


class FleetSimulation(_Model):
    epoch: AwareDatetime = Field(default=DEFAULT_EPOCH,
                                 description="counters start at their initial value here; "
                                             "nothing is simulated before it")
    seed: int = Field(default=0, ge=0)


class ProductionUnit(_Model):
    id: Code
    name: str = Field(min_length=1)
    catalogue: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+/[a-z0-9_]+$",
        description="benchmarks catalogue key (area/product), e.g. cement/clinker",
    )
    edition: int | None = Field(default=None, ge=2021, le=2100,
                                description="pinned catalogue edition; default newest with values")
    product: str = Field(min_length=1)
    product_unit: str = Field(min_length=1, description="unit of output, e.g. t, weight_box")
    design_capacity: Decimal = Field(gt=0)
    capacity_unit: str = Field(min_length=1, description="e.g. t/d, t/a")
    simulation: UnitSimulation | None = None


class Meter(_Model):
    id: Code
    name: str = Field(min_length=1)
    unit: Code | None = Field(default=None, description="production unit id; omit for plant level")
    energy_type: Code = Field(description="energy type key (electricity, raw_coal ...) or "
                                          "'product' for production meters")
    kind: MeterKind
    eng_unit: str = Field(min_length=1)
    multiplier: Decimal = Field(default=Decimal(1), gt=0, description="CT x PT ratio etc.")
    direction: Direction = Direction.CONSUMED
    rollover_max: Decimal | None = Field(default=None, gt=0)
    model: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$",
                              description="register map (meter model) name")
    interval_s: int = Field(default=900, gt=0, le=86400)
    installed_at: str | None = Field(default=None, description="ISO 8601 with offset")
    simulation: MeterSimulation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.rollover_max is not None and self.kind not in (
            MeterKind.COUNTER, MeterKind.PRODUCTION
        ):
            raise ValueError("field 'rollover_max': only counter and production meters roll over")
        if (self.kind is MeterKind.PRODUCTION) != (self.energy_type == "product"):
            raise ValueError(
                "field 'energy_type': production meters have energy_type 'product' and "
                "only they do"
            )
        if self.kind is MeterKind.PRODUCTION and self.direction is Direction.EXPORTED:
            raise ValueError("field 'direction': production meters cannot be 'exported'")
        return self

    @field_validator("installed_at")
    @classmethod
    def _aware_iso(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
        if parsed.tzinfo is None:
            raise ValueError("installed_at needs a UTC offset, e.g. 2024-01-01T00:00:00+08:00")
        return value


class Plant(_Model):
    id: Code
    uscc: str = Field(description="unified social credit code (18 characters, GB 32100-2015)")
    name: str = Field(min_length=1)
    region: RegionCode
    industry: str = Field(min_length=1)
    energy_class: EnergyClass
    annual_energy_tce: Decimal | None = Field(default=None, ge=0)
    key_unit: bool
    timezone: str | None = None
    units: tuple[ProductionUnit, ...] = ()
    meters: tuple[Meter, ...] = ()
    simulation: PlantSimulation | None = None

    @field_validator("uscc")
    @classmethod
    def _valid_uscc(cls, value: str) -> str:
        value = value.upper()
        if len(value) != 18 or any(c not in USCC_ALPHABET for c in value):
            raise ValueError(
                "must be 18 characters of 0-9 and A-Y without I, O, S, V, Z (GB 32100-2015)"
            )
        expected = uscc_check_char(value[:17])
        if value[17] != expected:
            raise ValueError(f"check character is {value[17]!r}, expected {expected!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems: list[str] = []
        unit_ids = [u.id for u in self.units]
        for dup in repeated(unit_ids):
            problems.append(f"unit {dup!r} > field 'id': defined more than once")
        meter_ids = [m.id for m in self.meters]
        for dup in repeated(meter_ids):
            problems.append(f"meter {dup!r} > field 'id': defined more than once")
        units = {u.id: u for u in self.units}
        for meter in self.meters:
            if meter.unit is not None and meter.unit not in units:
                known = ", ".join(sorted(units)) or "none"
                problems.append(
                    f"meter {meter.id!r} > field 'unit': unknown production unit "
                    f"{meter.unit!r} (units of this plant: {known})"
                )
            elif meter.kind is MeterKind.PRODUCTION:
                if meter.unit is None:
                    problems.append(f"meter {meter.id!r} > field 'unit': a production meter "
                                    "must belong to a production unit")
                elif meter.eng_unit != units[meter.unit].product_unit:
                    problems.append(
                        f"meter {meter.id!r} > field 'eng_unit': {meter.eng_unit!r} differs "
                        f"from the product unit {units[meter.unit].product_unit!r} of unit "
                        f"{meter.unit!r}"
                    )
        if not problems:
            problems += self._simulation_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _simulation_problems(self) -> list[str]:
        """Cross-references of the optional simulation blocks (names unit/meter/field)."""
        problems: list[str] = []
        sim = self.simulation
        if sim is None:
            for unit in self.units:
                if unit.simulation is not None:
                    problems.append(f"unit {unit.id!r} > field 'simulation': the plant has no "
                                    "simulation block")
            for meter in self.meters:
                if meter.simulation is not None:
                    problems.append(f"meter {meter.id!r} > field 'simulation': the plant has no "
                                    "simulation block")
            return problems
        meters = {m.id: m for m in self.meters}
        for unit in self.units:
            where = f"unit {unit.id!r}"
            if unit.simulation is None:
                problems.append(f"{where} > field 'simulation': every unit of a simulated plant "
                                "needs a simulation block")
                continue
            own = [m for m in self.meters if m.unit == unit.id]
            producers = [m.id for m in own if m.kind is MeterKind.PRODUCTION]
            if len(producers) > 1:
                problems.append(f"{where} > field 'simulation': more than one production meter "
                                f"({', '.join(producers)}); the simulator needs at most one")
            for key, expected in (("mix", Direction.CONSUMED), ("exports", Direction.EXPORTED)):
                for meter_id in getattr(unit.simulation, key):
                    meter = meters.get(meter_id)
                    field = f"{where} > field 'simulation.{key}.{meter_id}'"
                    if meter is None or meter.unit != unit.id:
                        problems.append(f"{field}: no meter {meter_id!r} in this unit")
                    elif meter.kind is MeterKind.PRODUCTION:
                        problems.append(f"{field}: a production meter carries no energy")
                    elif meter.direction is not expected:
                        problems.append(f"{field}: meter direction is {meter.direction.value!r}; "
                                        f"{key} takes {expected.value!r} meters")
            named = set(unit.simulation.mix) | set(unit.simulation.exports)
            for meter in own:
                if meter.kind is not MeterKind.PRODUCTION and meter.id not in named:
                    problems.append(f"meter {meter.id!r} > field 'unit': unit {unit.id!r} does "
                                    "not say what it carries (add it to simulation.mix or "
                                    "simulation.exports)")
        units = {u.id for u in self.units}
        for meter_id, load in sim.loads.items():
            meter = meters.get(meter_id)
            field = f"field 'simulation.loads.{meter_id}'"
            # A load naming no meter at all is reported by the simulators, not here, so that
            # removing a meter from a fleet file does not invalidate the file.
            if meter is not None and meter.unit is not None:
                problems.append(f"{field}: meter {meter_id!r} belongs to unit {meter.unit!r} "
                                "and follows that unit's simulation")
            for unit_id in load.follows:
                if unit_id not in units:
                    problems.append(f"{field}.follows: unknown production unit {unit_id!r}")
        for meter in self.meters:
            if meter.unit is None and meter.kind is not MeterKind.PRODUCTION \
                    and meter.id not in sim.loads:
                problems.append(f"meter {meter.id!r} > field 'simulation': plant-level meter "
                                f"without a load (add simulation.loads.{meter.id} to the plant)")
        if sim.transport.type == "mqtt":
            for meter in self.meters:
                msim = meter.simulation
                if msim is None:
                    continue
                if msim.unit_id is not None:
                    problems.append(f"meter {meter.id!r} > field 'simulation.unit_id': the plant "
                                    "pushes MQTT; there is no Modbus unit id")
                for i, fault in enumerate(msim.faults):
                    if fault.kind in PROTOCOL_FAULTS:
                        problems.append(
                            f"meter {meter.id!r} > field 'simulation.faults.{i}': {fault.kind!r} "
                            "is a Modbus fault; this plant pushes MQTT (declare MQTT faults "
                            "under simulation.transport.faults)")
        else:
            seen: dict[int, str] = {}
            for position, meter in enumerate(self.meters, start=1):
                if meter.model is None:
                    problems.append(f"meter {meter.id!r} > field 'model': a Modbus-simulated "
                                    "meter needs a register map")
                unit_id = (meter.simulation.unit_id if meter.simulation
                           and meter.simulation.unit_id is not None else position)
                if unit_id in seen:
                    problems.append(f"meter {meter.id!r} > field 'simulation.unit_id': unit id "
                                    f"{unit_id} is also used by meter {seen[unit_id]!r}")
                seen.setdefault(unit_id, meter.id)
        return problems

    def unit(self, unit_id: str) -> ProductionUnit:
        return next(u for u in self.units if u.id == unit_id)


class Fleet(_Model):
    """A whole fleet file."""

    fleet: str = Field(min_length=1, description="name of this fleet")
    timezone: str = "Asia/Shanghai"
    regions: tuple[Region, ...] = ()
    plants: tuple[Plant, ...] = ()
    simulation: FleetSimulation | None = None

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems: list[str] = []
        codes = [r.code for r in self.regions]
        for dup in repeated(codes):
            problems.append(f"region {dup!r} > field 'code': defined more than once")
        known = set(codes)
        for region in self.regions:
            if region.parent is not None and region.parent not in known:
                problems.append(f"region {region.code!r} > field 'parent': unknown region "
                                f"{region.parent!r}")
        plant_ids = [p.id for p in self.plants]
        for dup in repeated(plant_ids):
            problems.append(f"plant {dup!r} > field 'id': defined more than once")
        usccs = [p.uscc for p in self.plants]
        for dup in repeated(usccs):
            problems.append(f"field 'uscc': {dup} is used by more than one plant")
        for plant in self.plants:
            if plant.region not in known:
                problems.append(f"plant {plant.id!r} > field 'region': unknown region "
                                f"{plant.region!r} (declare it under regions:)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def plant(self, plant_id: str) -> Plant:
        return next(p for p in self.plants if p.id == plant_id)


class FleetError(ValueError):
    """A fleet file is invalid; ``problems`` lists one readable line per error."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)
        )


_LABELS = {"plants": "plant", "units": "unit", "meters": "meter", "regions": "region"}


def describe_location(data: Any, loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location into 'plant 'p' > meter 'm' > field 'f''."""
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in _LABELS and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = int(loc[i + 1])
            item = None
            if isinstance(node, dict) and isinstance(node.get(key), list):
                seq = node[key]
                item = seq[index] if index < len(seq) else None
            ident = None
            if isinstance(item, dict):
                ident = item.get("id", item.get("code"))
            parts.append(f"{_LABELS[str(key)]} {ident!r}" if ident is not None
                         else f"{_LABELS[str(key)]} #{index + 1}")
            node = item
            i += 2
            continue
        rest = ".".join(str(k) for k in loc[i:])
        parts.append(f"field {rest!r}")
        break
    return " > ".join(parts)


def parse_fleet(data: Any, source: str = "<fleet>") -> Fleet:
    """Validate already-parsed YAML data; raise FleetError listing every problem."""
    if not isinstance(data, dict):
        raise FleetError(source, ["the file must be a mapping with 'fleet', 'regions', 'plants'"])
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = describe_location(data, err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        raise FleetError(source, problems) from None


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError(str(path), [f"cannot read file: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise FleetError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) \
            from None
    return parse_fleet(data, str(path))
