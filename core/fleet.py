"""Fleet files: regions, plants, production units and meters as validated data.

A fleet file is YAML (see ``core/examples/fleet.yaml``). Models are frozen and forbid unknown
keys; every error names the plant, unit, meter and field it is about, e.g.::

    fleet.yaml: plant 'jx-yujiang-cement' > meter 'kiln-coal' > field 'multiplier':
        Input should be greater than 0
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.contract import CODE_PATTERN

Code = Annotated[str, Field(pattern=CODE_PATTERN)]
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$")]

# GB 32100-2015 unified social credit code: 18 characters from this alphabet, the last a
# check character over the first 17 with weights 3**i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


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
        for dup in sorted({u for u in unit_ids if unit_ids.count(u) > 1}):
            problems.append(f"unit {dup!r} > field 'id': defined more than once")
        meter_ids = [m.id for m in self.meters]
        for dup in sorted({m for m in meter_ids if meter_ids.count(m) > 1}):
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
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def unit(self, unit_id: str) -> ProductionUnit:
        return next(u for u in self.units if u.id == unit_id)


class Fleet(_Model):
    """A whole fleet file."""

    fleet: str = Field(min_length=1, description="name of this fleet")
    timezone: str = "Asia/Shanghai"
    regions: tuple[Region, ...] = ()
    plants: tuple[Plant, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems: list[str] = []
        codes = [r.code for r in self.regions]
        for dup in sorted({c for c in codes if codes.count(c) > 1}):
            problems.append(f"region {dup!r} > field 'code': defined more than once")
        known = set(codes)
        for region in self.regions:
            if region.parent is not None and region.parent not in known:
                problems.append(f"region {region.code!r} > field 'parent': unknown region "
                                f"{region.parent!r}")
        plant_ids = [p.id for p in self.plants]
        for dup in sorted({p for p in plant_ids if plant_ids.count(p) > 1}):
            problems.append(f"plant {dup!r} > field 'id': defined more than once")
        usccs = [p.uscc for p in self.plants]
        for dup in sorted({u for u in usccs if usccs.count(u) > 1}):
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
