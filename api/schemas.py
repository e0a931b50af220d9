"""Request and response shapes of the API (distinct from storage rows in :mod:`api.queries`).

Every numeric field states its unit twice: in its description ("Unit: kgce.") and as the
OpenAPI extension ``x-unit`` (``"1"`` for counts and ratios, or a reference such as
``"see intensity_unit"`` when the unit depends on the catalogue entry). A test walks the
OpenAPI document and fails on any number without ``x-unit``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from benchmarks.evaluate import Status
from core.contract import CODE_PATTERN

T = TypeVar("T")

#: the values of :class:`benchmarks.evaluate.Status`, in its order, spelled out for the schema
StatusValue = Literal["at_benchmark", "below_benchmark", "below_baseline", "not_evaluable",
                      "no_output", "unmapped"]
if get_args(StatusValue) != tuple(s.value for s in Status):
    raise RuntimeError(f"api.schemas.StatusValue {get_args(StatusValue)} differs from "
                       f"benchmarks.evaluate.Status {tuple(s.value for s in Status)}")


def q(unit: str, description: str, **kwargs: Any) -> Any:
    """A numeric field with its unit stated in the schema."""
    extra = kwargs.pop("json_schema_extra", {})
    return Field(description=f"{description} Unit: {unit}.",
                 json_schema_extra={"x-unit": unit, **extra}, **kwargs)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        if isinstance(value, str) and any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF
                                          for c in value):
            raise ValueError("control characters are not allowed")
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("needs a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
            if not 1900 <= value.year <= 2200:
                raise ValueError("year must be within 1900..2200")
        return value


# -- pagination ------------------------------------------------------------------------------
class Page(_Out, Generic[T]):
    """One page of a list; follow ``next`` (also sent as a ``Link: <...>; rel="next"`` header)
    until it is null."""

    data: list[T]
    count: int = q("1", "Total number of items matching the filters (all pages).")
    limit: int = q("1", "Page size used.")
    offset: int = q("1", "Index of the first item of this page.")
    next: str | None = Field(default=None, description="URL of the next page, or null.")


# -- registry --------------------------------------------------------------------------------
class Region(_Out):
    code: str = Field(description="GB/T 2260 administrative division code.",
                      examples=["360622"])
    name: str = Field(examples=["余江区"])
    level: Literal["province", "prefecture", "county"]
    parent: str | None = Field(default=None, description="Parent region code.")


class Plant(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "id": "jx-yujiang-cement", "uscc": "91360622MA35CEM01A",
        "name": "余江示例水泥有限公司 (Yujiang example cement)", "region": "360622",
        "region_name": "余江区", "industry": "cement", "energy_class": "ge_10000_tce",
        "annual_energy_tce": 260000, "key_unit": True, "timezone": "Asia/Shanghai",
        "units": 2, "meters": 7, "updated_at": "2026-11-20T10:00:00+08:00"}]})

    id: str = Field(description="Plant code (used in every path and in MQTT topics).")
    uscc: str = Field(description="Unified social credit code (GB 32100-2015).")
    name: str
    region: str = Field(description="GB/T 2260 region code of the plant.")
    region_name: str
    industry: str
    energy_class: str = Field(description="ge_10000_tce | 5000_10000_tce | lt_5000_tce")
    annual_energy_tce: float | None = q("tce", "Declared annual comprehensive energy.")
    key_unit: bool = Field(description="A key energy-using unit (重点用能单位).")
    timezone: str
    units: int = q("1", "Number of production units.")
    meters: int = q("1", "Number of meters.")
    updated_at: datetime


class ProductionUnit(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "id": "kiln-1", "name": "5000 t/d clinker line 1",
        "catalogue_key": "cement/clinker", "catalogue_edition": None,
        "product": "cement clinker", "product_unit": "t", "design_capacity": 5000,
        "capacity_unit": "t/d", "meters": 3, "updated_at": "2026-11-20T10:00:00+08:00"}]})

    plant: str
    id: str = Field(description="Unit code, unique within its plant.")
    name: str
    catalogue_key: str | None = Field(description="Benchmarks catalogue key, e.g. "
                                      "cement/clinker; null = not mapped.")
    catalogue_edition: int | None = q("year", "Pinned catalogue edition (null = newest with "
                                      "values).")
    product: str
    product_unit: str = Field(description="Unit of output, e.g. t, weight_box.")
    design_capacity: float = q("see capacity_unit", "Design capacity.")
    capacity_unit: str
    meters: int = q("1", "Number of meters of the unit.")
    updated_at: datetime


class Meter(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "id": "k1-elec", "name": "line 1 incoming feeder",
        "unit": "kiln-1", "energy_type": "electricity", "kind": "counter", "eng_unit": "kWh",
        "multiplier": 1, "direction": "consumed", "rollover_max": 99999999,
        "model": "chint_dtsu666", "interval_s": 900, "installed_at": None,
        "updated_at": "2026-11-20T10:00:00+08:00"}]})

    plant: str
    id: str = Field(description="Meter code, unique within its plant.")
    name: str
    unit: str | None = Field(description="Production unit code; null = plant level.")
    energy_type: str = Field(description="GB/T 2589 energy type key, or 'product'.")
    kind: Literal["counter", "interval", "instantaneous", "production"]
    eng_unit: str = Field(description="Engineering unit of the register value, e.g. kWh.")
    multiplier: float = q("1", "CT x PT ratio (or other scale) applied to the value.")
    direction: Literal["consumed", "exported"]
    rollover_max: float | None = q("see eng_unit", "Counter value after which it wraps to 0.")
    model: str | None = Field(description="Register map (meter model) name.")
    interval_s: int = q("s", "Expected interval between readings.")
    installed_at: datetime | None
    updated_at: datetime


class PlantWrite(_In):
    """Create or replace a plant (admin). Validated like a fleet file."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "uscc": "91360622MA35CEM01A", "name": "余江示例水泥有限公司", "region": "360622",
        "industry": "cement", "energy_class": "ge_10000_tce", "annual_energy_tce": 260000,
        "key_unit": True}]})

    uscc: str = Field(min_length=18, max_length=18,
                      description="Unified social credit code with its check character.")
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(pattern=r"^[0-9]{6}$", description="A registered GB/T 2260 code.")
    industry: str = Field(min_length=1, max_length=100)
    energy_class: Literal["ge_10000_tce", "5000_10000_tce", "lt_5000_tce"]
    annual_energy_tce: Decimal | None = q("tce", "Declared annual energy.", default=None,
                                          ge=0, le=1e9)
    key_unit: bool
    timezone: str | None = Field(default=None, max_length=64,
                                 description="IANA time zone; default Asia/Shanghai.")


class UnitWrite(_In):
    """Create or replace a production unit (admin)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "name": "5000 t/d clinker line 1", "catalogue": "cement/clinker",
        "product": "cement clinker", "product_unit": "t", "design_capacity": 5000,
        "capacity_unit": "t/d"}]})

    name: str = Field(min_length=1, max_length=200)
    catalogue: str | None = Field(default=None, max_length=100,
                                  description="Catalogue key (area/product).")
    edition: int | None = q("year", "Pinned catalogue edition.", default=None, ge=2021,
                            le=2100)
    product: str = Field(min_length=1, max_length=200)
    product_unit: str = Field(min_length=1, max_length=50)
    design_capacity: Decimal = q("see capacity_unit", "Design capacity.", gt=0, le=1e12)
    capacity_unit: str = Field(min_length=1, max_length=50)


class MeterWrite(_In):
    """Create or replace a meter (admin)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "name": "line 1 incoming feeder", "unit": "kiln-1", "energy_type": "electricity",
        "kind": "counter", "eng_unit": "kWh", "multiplier": 1, "rollover_max": 99999999,
        "model": "chint_dtsu666"}]})

    name: str = Field(min_length=1, max_length=200)
    unit: str | None = Field(default=None, pattern=CODE_PATTERN,
                             description="Production unit code; omit for plant level.")
    energy_type: str = Field(pattern=CODE_PATTERN)
    kind: Literal["counter", "interval", "instantaneous", "production"]
    eng_unit: str = Field(min_length=1, max_length=50)
    multiplier: Decimal = q("1", "CT x PT ratio.", default=Decimal(1), gt=0, le=1e9)
    direction: Literal["consumed", "exported"] = "consumed"
    rollover_max: Decimal | None = q("see eng_unit", "Counter wrap value.", default=None,
                                     gt=0, le=1e18)
    model: str | None = Field(default=None, max_length=100, description="Register map name.")
    interval_s: int = q("s", "Expected interval between readings.", default=900, gt=0,
                        le=86400)
    installed_at: datetime | None = Field(default=None,
                                          description="ISO 8601 with a UTC offset.")


# -- readings push -----------------------------------------------------------------------------
class PushRejection(_Out):
    reason_code: str = Field(description="Machine-readable reason (dead_letters.reason_code), "
                             "e.g. unknown_meter, future_timestamp.")
    reason: str


class PushReceipt(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-copper", "accepted": 2, "rejected": [],
        "outcome": "committed", "received_at": "2026-11-20T10:15:02+08:00"}]})

    plant: str
    accepted: int = q("1", "Readings that passed validation and are stored (a redelivered "
                      "duplicate is absorbed; a different value for a stored key is kept as a "
                      "conflict for review).")
    rejected: list[PushRejection] = Field(description="What was set aside in dead_letters.")
    outcome: Literal["committed", "set_aside", "queued"] = Field(
        description="committed: durable; set_aside: refused by the database and kept in "
        "dead_letters; queued: still being written (202).")
    received_at: datetime


# -- status ------------------------------------------------------------------------------------
class MeterStatus(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "meter": "k1-elec", "unit": "kiln-1", "energy_type": "electricity", "kind": "counter",
        "eng_unit": "kWh", "online": True, "last_seen": "2026-11-20T10:15:00+08:00",
        "last_value": 1234567.5, "last_quality": "good", "interval_s": 900,
        "received": 96, "expected": 96.0, "completeness": 1.0}]})

    meter: str
    unit: str | None
    energy_type: str
    kind: str
    eng_unit: str
    online: bool = Field(description="A reading arrived within the last 3 intervals.")
    last_seen: datetime | None = Field(description="Timestamp of the newest reading.")
    last_value: float | None = q("see eng_unit", "Newest reading's value as the register "
                                 "reports it (before the multiplier).")
    last_quality: Literal["good", "estimated", "suspect", "missing"] | None
    interval_s: int = q("s", "Expected interval between readings.")
    received: int = q("1", "Readings received in the window.")
    expected: float = q("1", "Readings expected in the window (from the meter's interval and "
                        "installation date).")
    completeness: float = q("1", "received / expected, capped at 1 (0..1).")


class PlantStatus(_Out):
    plant: str
    window_from: datetime = Field(description="Start of the completeness window.")
    window_to: datetime = Field(description="End of the completeness window (exclusive).")
    now: datetime
    meters_online: int = q("1", "Meters online.")
    meters: list[MeterStatus]


# -- energy ----------------------------------------------------------------------------------
class EnergyRow(_Out):
    energy_type: str = Field(description="Energy type, or 'product' for output.")
    flow: Literal["consumed", "exported", "production"] = Field(
        description="consumed or exported/recovered energy, or production output.")
    quantity: float = q("see quantity_unit", "Quantity in native units (after multiplier).")
    quantity_unit: str = Field(description="Native (engineering) unit, e.g. kWh, t, m3.")
    kgce: float | None = q("kgce", "Standard coal equivalent (GB/T 2589-2020); null for "
                           "output.")
    tce: float | None = q("tce", "Standard coal equivalent in tonnes.")
    co2_kg: float | None = q("kg CO2", "CO2 emissions; null for output.")
    estimated_quantity: float = q("see quantity_unit", "Part of quantity resting on "
                                  "estimated data.")
    meters: int = q("1", "Meters contributing.")


class EnergySummary(_Out):
    model_config = ConfigDict(frozen=True, populate_by_name=True,
                              json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "unit": None, "period": "2026-10",
        "from": "2026-10-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00",
        "consumed_kgce": 2.1e6, "exported_kgce": 1.2e4, "comprehensive_kgce": 2.088e6,
        "comprehensive_tce": 2088.0, "co2_kg": 5.4e6, "co2_t": 5400.0, "rows": []}]})

    plant: str
    unit: str | None = Field(description="Unit code, or null for the whole plant.")
    period: str = Field(description="Period label on the local calendar.")
    from_: datetime = Field(alias="from", description="Period start (local midnight).")
    to: datetime = Field(description="Period end (exclusive).")
    consumed_kgce: float = q("kgce", "Energy consumed.")
    exported_kgce: float = q("kgce", "Energy exported or recovered outside the boundary.")
    comprehensive_kgce: float = q("kgce", "Comprehensive energy = consumed - exported.")
    comprehensive_tce: float = q("tce", "Comprehensive energy in tonnes of standard coal.")
    co2_kg: float = q("kg CO2", "Net CO2 (consumed - exported).")
    co2_t: float = q("t CO2", "Net CO2 in tonnes.")
    rows: list[EnergyRow]


# -- intensity and verdicts --------------------------------------------------------------------
class Provenance(_Out):
    catalogue_version: str = Field(description="Catalogue data file and SHA-256 prefix.")
    edition: int | None = q("year", "Catalogue edition the unit was judged against.")
    factor_versions: list[str] = Field(description="Standard-coal and emission factor tables "
                                       "the energy numbers were computed with.")


class UnitIntensity(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "plant_name": "余江示例水泥有限公司", "region": "360622",
        "unit": "kiln-1", "period": "2026-10", "catalogue_key": "cement/clinker",
        "status": "below_benchmark", "intensity": 116.75, "intensity_unit": "kgce/t",
        "benchmark": 100.0, "baseline": 117.0, "gap_to_benchmark_pct": 16.75,
        "saving_potential_tce": 249.18, "output": 14880.0, "output_unit": "t",
        "energy_kgce": 1737180.48, "energy_tce": 1737.18048, "electricity_kwh": 297600.0,
        "co2_kg": 5.2e6, "carbon_intensity": 349.5, "estimated_share": 0.0,
        "completeness": 1.0, "design_capacity": 5000.0, "capacity_unit": "t/d",
        "provenance": {"catalogue_version": "efficiency_levels.csv@3f2a…", "edition": 2021,
                       "factor_versions": ["GB/T 2589-2020"]}}]})

    plant: str
    plant_name: str
    region: str
    unit: str
    period: str
    catalogue_key: str | None
    status: StatusValue = Field(
        description="at_benchmark (达到标杆): intensity <= benchmark; below_benchmark: "
        "benchmark < intensity <= baseline (improve); below_baseline: intensity > baseline "
        "(must retrofit); not_evaluable / no_output / unmapped: no verdict.")
    intensity: float | None = q("see intensity_unit", "Comprehensive energy per unit of "
                                "qualified output.")
    intensity_unit: str | None = Field(description="The catalogue entry's unit, e.g. kgce/t.")
    benchmark: float | None = q("see intensity_unit", "Benchmark level (标杆水平).")
    baseline: float | None = q("see intensity_unit", "Baseline level (基准水平).")
    gap_to_benchmark_pct: float | None = q("%", "(intensity - benchmark) / |benchmark|; "
                                           "positive = worse than benchmark.")
    saving_potential_tce: float | None = q("tce", "(intensity - benchmark) x output, when "
                                           "worse than benchmark.")
    output: float = q("see output_unit", "Qualified product output over the period.")
    output_unit: str
    energy_kgce: float = q("kgce", "Comprehensive energy (consumed - exported).")
    energy_tce: float = q("tce", "Comprehensive energy in tonnes.")
    electricity_kwh: float = q("kWh", "Net electricity.")
    co2_kg: float = q("kg CO2", "Net CO2.")
    carbon_intensity: float | None = q("kg CO2 per output_unit", "CO2 per unit of output.")
    estimated_share: float = q("1", "Share of consumed energy resting on estimated data "
                               "(0..1).")
    completeness: float = q("1", "Received / expected readings of the unit's meters (0..1).")
    design_capacity: float = q("see capacity_unit", "Design capacity.")
    capacity_unit: str
    provenance: Provenance


class PlantIntensity(_Out):
    plant: str
    period: str
    units: list[UnitIntensity]
    energy_kgce: float = q("kgce", "Sum of the units' comprehensive energy (plant-level "
                           "meters such as exports not attributed to a unit are in "
                           "/energy, not here).")
    saving_potential_tce: float = q("tce", "Sum of the units' saving potential.")
    flagged_units: int = q("1", "Units below benchmark or below baseline.")


class AreaKpi(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "catalogue_key": "cement/clinker", "units": 2, "capacity_unit": "t/d",
        "capacity_total": 7500.0, "share_capacity_at_benchmark": 0.667,
        "share_capacity_below_baseline": 0.333,
        "counts": {"at_benchmark": 1, "below_baseline": 1},
        "plants_below_benchmark": ["jx-yujiang-cement"], "completeness": 0.98,
        "target_share_at_benchmark_2025": 0.3, "target_share_below_baseline_2025": 0.0}]})

    catalogue_key: str
    units: int = q("1", "Units of this area/product in the region.")
    capacity_unit: str
    capacity_total: float = q("see capacity_unit", "Total design capacity.")
    share_capacity_at_benchmark: float = q("1", "Share of judged capacity at benchmark "
                                           "(2025 target >= 0.30).")
    share_capacity_below_baseline: float = q("1", "Share of judged capacity below baseline "
                                             "(2025 target 0).")
    counts: dict[str, int] = Field(description="Units per status.",
                                   json_schema_extra={"x-unit": "1"})
    plants_below_benchmark: list[str]
    completeness: float = q("1", "Mean data completeness of the units (0..1).")
    target_share_at_benchmark_2025: float = q("1", "National 2025 target.", default=0.30)
    target_share_below_baseline_2025: float = q("1", "National 2025 target.", default=0.0)


class RegionKpis(_Out):
    region: str
    region_name: str
    period: str
    plants: int = q("1", "Plants with production units in the region (and scope).")
    units: int = q("1", "Production units.")
    flagged_units: int = q("1", "Units below benchmark or below baseline.")
    saving_potential_tce: float = q("tce", "Sum of saving potential of flagged units.")
    energy_tce: float = q("tce", "Sum of the units' comprehensive energy.")
    co2_t: float = q("t CO2", "Sum of the units' net CO2.")
    completeness: float = q("1", "Mean data completeness of the units (0..1).")
    areas: list[AreaKpi]


# -- history -----------------------------------------------------------------------------------
class HistoryMeta(_Out):
    level: Literal["meter", "unit", "plant"]
    plant: str
    unit: str | None
    meter: str | None
    resolution: Literal["raw", "15min", "hour", "day", "month"]
    from_: datetime = Field(alias="from")
    to: datetime
    timezone: str = Field(description="Local calendar of the day and month buckets.")
    columns: dict[str, str] = Field(description="Column -> unit (or meaning).")

    model_config = ConfigDict(frozen=True, populate_by_name=True)


class HistoryRow(_Out):
    """One bucket of one series. Meter level: one series (the meter). Unit and plant level:
    one series per energy type, unit of measure and flow."""

    ts: datetime = Field(description="Bucket start (raw: reading time), local offset.")
    energy_type: str
    flow: Literal["consumed", "exported", "production", "reading"]
    quantity: float | None = q("see quantity_unit", "Energy or output in the bucket (native "
                               "unit, after multiplier); raw resolution: null.")
    quantity_unit: str
    value: float | None = q("see quantity_unit", "Raw register value (raw resolution only, "
                            "before the multiplier).", default=None)
    quality: str | None = Field(default=None, description="Raw resolution: reading quality.")
    estimated: float | None = q("see quantity_unit", "Part of quantity resting on "
                                "estimation.", default=None)
    kgce: float | None = q("kgce", "Standard coal.", default=None)
    co2_kg: float | None = q("kg CO2", "CO2.", default=None)
    readings: int | None = q("1", "Readings inside the bucket.", default=None)


class History(_Out):
    meta: HistoryMeta
    data: list[HistoryRow]
    next: str | None = Field(default=None, description="URL of the next page (keyset: the "
                             "same query from the first bucket not on this page), or null.")


# -- health ------------------------------------------------------------------------------------
class Health(_Out):
    status: Literal["ok"]


class Readiness(_Out):
    status: Literal["ready", "not_ready"]
    database: str
    schema_version: int | None = q("1", "Highest applied migration.")
    pending_migrations: list[str]
    detail: str | None = None
