"""Fleet files: regions, plants, production units and meters as validated data.

A fleet file is YAML (see ``fleet/examples/fleet.yaml``). Models are frozen and forbid unknown
keys; every error names the plant, unit, meter and field it is about, e.g.::

    fleet.yaml: plant 'jx-yujiang-cement' > meter 'kiln-coal' > field 'multiplier':
        Input should be greater than 0
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.yamlfile import ConfigFileError, describe_location, read_yaml, repeated
from fleet.base import USCC_ALPHABET, Code, RegionCode, _Model, uscc_check_char
from fleet.simulation import (
    PROTOCOL_FAULTS,
    FleetSimulation,
    MeterSimulation,
    PlantSimulation,
    UnitSimulation,
)


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
    removed_at: str | None = Field(
        default=None, description="ISO 8601 with offset: end of service (no readings are "
        "expected after it)")
    rollover_step: Decimal | None = Field(
        default=None, gt=0, description="one register step in eng_unit (the counter shows "
        "rollover_max, then 0); default: the register map's resolution, else the last digit "
        "of rollover_max as written")
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
        if self.rollover_step is not None and self.rollover_max is None:
            raise ValueError("field 'rollover_step': give rollover_max too")
        if (self.installed_at is not None and self.removed_at is not None
                and datetime.fromisoformat(self.removed_at)
                <= datetime.fromisoformat(self.installed_at)):
            raise ValueError("field 'removed_at': must be after installed_at")
        return self

    @field_validator("installed_at", "removed_at")
    @classmethod
    def _aware_iso(cls, value: str | None) -> str | None:
        if value is None:
            return None

        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
        if parsed.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2024-01-01T00:00:00+08:00")
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
                    named_meter = meters.get(meter_id)
                    field = f"{where} > field 'simulation.{key}.{meter_id}'"
                    if named_meter is None or named_meter.unit != unit.id:
                        problems.append(f"{field}: no meter {meter_id!r} in this unit")
                    elif named_meter.kind is MeterKind.PRODUCTION:
                        problems.append(f"{field}: a production meter carries no energy")
                    elif named_meter.direction is not expected:
                        problems.append(f"{field}: meter direction is "
                                        f"{named_meter.direction.value!r}; "
                                        f"{key} takes {expected.value!r} meters")
            named = set(unit.simulation.mix) | set(unit.simulation.exports)
            for meter in own:
                if meter.kind is not MeterKind.PRODUCTION and meter.id not in named:
                    problems.append(f"meter {meter.id!r} > field 'unit': unit {unit.id!r} does "
                                    "not say what it carries (add it to simulation.mix or "
                                    "simulation.exports)")
        units = {u.id for u in self.units}
        for meter_id, load in sim.loads.items():
            load_meter = meters.get(meter_id)
            field = f"field 'simulation.loads.{meter_id}'"
            # A load naming no meter at all is reported by the simulators, not here, so that
            # removing a meter from a fleet file does not invalidate the file.
            if load_meter is not None and load_meter.unit is not None:
                problems.append(f"{field}: meter {meter_id!r} belongs to unit {load_meter.unit!r} "
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
                device_id = (meter.simulation.unit_id if meter.simulation
                             and meter.simulation.unit_id is not None else position)
                if device_id in seen:
                    problems.append(f"meter {meter.id!r} > field 'simulation.unit_id': unit id "
                                    f"{device_id} is also used by meter {seen[device_id]!r}")
                seen.setdefault(device_id, meter.id)
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


class FleetError(ConfigFileError):
    """A fleet file is invalid; ``problems`` lists one readable line per error."""


_LABELS = {"plants": "plant", "units": "unit", "meters": "meter", "regions": "region"}


def fleet_location(data: Any, loc: Sequence[int | str]) -> str:
    """A pydantic error location as ``plant 'p' > meter 'm' > field 'f'``."""
    return describe_location(data, loc, _LABELS, id_keys=("id", "code"))


def parse_fleet(data: Any, source: str = "<fleet>") -> Fleet:
    """Validate already-parsed YAML data; raise FleetError listing every problem."""
    if not isinstance(data, dict):
        raise FleetError(source, ["the file must be a mapping with 'fleet', 'regions', 'plants'"])
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = fleet_location(data, err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        raise FleetError(source, problems) from None


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet YAML file (strict YAML: a duplicated key is refused)."""
    return parse_fleet(read_yaml(path, FleetError), str(path))
