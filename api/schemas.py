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
    removed_at: datetime | None = Field(default=None, description="End of service; no "
                                        "readings are expected after it.")
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
    removed_at: datetime | None = Field(default=None, description="End of service, ISO 8601 "
                                        "with a UTC offset.")


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


class GatewayStream(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "gateway": "gw-yujiang-1", "epoch": 3141592653589793, "acked_seq": 18421,
        "max_seq": 18421, "gap": False, "gap_since": None, "committed_batches": 18422,
        "redeliveries": 37, "skipped_batches": 0, "dropped_readings": 0,
        "first_seen": "2026-11-01T08:00:02+08:00",
        "last_commit_at": "2026-11-20T10:15:01+08:00"}]})

    gateway: str = Field(description="The collector gateway's id.")
    epoch: int = q("1", "Its spool file's id (a new spool starts a new stream at seq 0).")
    acked_seq: int = q("1", "Every batch up to this seq is committed (or no longer held by "
                       "the gateway); the end-to-end acknowledgement sent to it.")
    max_seq: int = q("1", "Highest seq committed.")
    gap: bool = Field(description="A seq below max_seq has not arrived yet.")
    gap_since: datetime | None = Field(description="Since when a gap has been open.")
    committed_batches: int = q("1", "Batches committed.")
    redeliveries: int = q("1", "Batches that came again (resends, broker redeliveries; "
                          "absorbed).")
    skipped_batches: int = q("1", "Seqs the gateway no longer holds that never arrived: "
                             "dropped by its spool's capacity policy.")
    dropped_readings: int = q("1", "Readings the gateway's spool dropped by its capacity "
                              "policy (the gateway's own count).")
    first_seen: datetime
    last_commit_at: datetime = Field(description="When a batch of this stream was last "
                                     "committed.")


class GatewayStreams(_Out):
    plant: str
    streams: list[GatewayStream]
    open_gaps: int = q("1", "Streams with a gap open.")


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
    catalogue_confidence: str | None = Field(
        default=None, description="Confidence the catalogue states for the entry's values "
        "(high, medium-high, medium, low-medium); null when it states none.")
    catalogue_source: str | None = Field(default=None, description="Source of the entry's "
                                         "values, as the catalogue records it.")


class VerdictReason(_Out):
    """Why a unit is not judged, or what qualifies its result."""

    code: str = Field(description="meter_incomplete, energy_estimated, output_estimated, "
                      "unconvertible, no_energy_meters, no_energy_data, no_output_data, "
                      "declared_output_partial, no_meters, unmapped, catalogue_no_values, "
                      "unit_mismatch, no_output; warnings: co2_incomplete, output_deviation.")
    message: str
    meter: str | None = Field(default=None, description="The meter concerned, if one.")
    value: float | None = q("1", "The measured share, completeness or deviation (0..1), or "
                            "a count of intervals (unconvertible).", default=None)
    limit: float | None = q("1", "The rule's threshold (0..1).", default=None)
    days: list[str] = Field(default_factory=list, description="Local dates concerned "
                            "(at most 31 listed).")
    day_count: int = q("d", "Days concerned in all.", default=0)


class MeterData(_Out):
    """One meter's data sufficiency over the period."""

    meter: str
    kind: str
    role: Literal["energy", "output"]
    expected: float = q("1", "Readings expected over the period (service dates, interval).")
    received: float = q("1", "Readings received, capped per local day at the expectation.")
    completeness: float = q("1", "received / expected (0..1).")
    days: int = q("1", "Meter-days with readings expected.")
    complete_days: int = q("1", "Meter-days at least 90 % complete.")
    incomplete_days: list[str] = Field(description="Local dates below 90 % (at most 31).")
    estimated_share: float = q("1", "Share of the meter's quantity resting on estimation.")
    conversion_issues: list[str] = Field(description="Why some intervals' kgce or CO2 "
                                         "could not be computed.")


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
    co2_kg: float | None = q("kg CO2", "Net CO2; null when some intervals' CO2 is unknown "
                             "(see warnings).")
    carbon_intensity: float | None = q("kg CO2 per output_unit", "CO2 per unit of output.")
    estimated_share: float = q("1", "Share of the energy (consumed and exported kgce) resting "
                               "on estimated data (0..1).")
    estimated_output_share: float = q("1", "Share of metered output resting on estimated "
                                      "data (0..1).", default=0.0)
    completeness: float = q("1", "Share of the unit's energy and production meter-days that "
                            "are at least 90 % complete (0..1).")
    output_source: Literal["meter", "declared"] | None = Field(
        default=None, description="Where `output` comes from: the production meters, or the "
        "declared (statistical) production records; null = no output data.")
    metered_output: float | None = q("see output_unit", "Output of the production meters "
                                     "(null: none in service).", default=None)
    declared_output: float | None = q("see output_unit", "Declared output, pro-rated to the "
                                      "period (null: no record).", default=None)
    declared_prorated: bool = Field(default=False, description="A declared record reaches "
                                    "outside the period and was pro-rated by time.")
    reasons: list[VerdictReason] = Field(default_factory=list, description="Why the unit is "
                                         "not judged (empty when it is).")
    warnings: list[VerdictReason] = Field(default_factory=list)
    meters: list[MeterData] = Field(default_factory=list, description="Each meter's data "
                                    "sufficiency over the period.")
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
        "catalogue_key": "cement/clinker", "units": 2, "capacity_unit": "t/a",
        "capacity_total": 2737500.0, "share_capacity_at_benchmark": 0.667,
        "share_capacity_below_benchmark": 0.0, "share_capacity_below_baseline": 0.333,
        "share_capacity_unknown": 0.0,
        "counts": {"at_benchmark": 1, "below_baseline": 1},
        "plants_below_benchmark": ["jx-yujiang-cement"], "completeness": 0.98,
        "target_share_at_benchmark_2025": 0.3, "target_share_below_baseline_2025": 0.0}]})

    catalogue_key: str
    units: int = q("1", "Units of this area/product in the region.")
    capacity_unit: str
    capacity_total: float = q("see capacity_unit", "All registered design capacity of the "
                              "entry's units, normalised to a yearly unit (t/d x 365).")
    share_capacity_at_benchmark: float = q("1", "Share of all registered capacity at "
                                           "benchmark (2025 target >= 0.30).")
    share_capacity_below_benchmark: float = q("1", "Share below benchmark, not below "
                                              "baseline.")
    share_capacity_below_baseline: float = q("1", "Share of all registered capacity below "
                                             "baseline (2025 target 0).")
    share_capacity_unknown: float = q("1", "Share whose status is unknown (not evaluable, "
                                      "no output).")
    capacity_not_normalised: list[str] = Field(
        default_factory=list, description="Units left out of the capacity sums because "
        "their capacity unit could not be normalised.")
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
    co2_t: float | None = q("t CO2", "Sum of the units' net CO2; null when some unit's CO2 "
                            "is unknown.")
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


# -- declared data -----------------------------------------------------------------------------
_ENTERED_BY = ("Who entered it: `token:<id> (<name>)` (API) or `cli:<user>`; null for rows "
               "entered before declared data was audited.")
_SOURCE = "Where the value comes from (report, laboratory, certificate ...)."


class RecomputeRange(_Out):
    """A range of a meter's readings queued for recompute by a declared write."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    meter: str = Field(description="Meter code.")
    from_: datetime = Field(alias="from", description="Start of the range.")
    to: datetime | None = Field(description="End of the range; null: open-ended (every "
                                "later reading).")


class DeclaredReceipt(_Out, Generic[T]):
    """What a declared write did, in one transaction: the record stored (201: inserted; 200:
    replaced one with the same key), the record it replaced, and the meters whose intervals
    were queued for recompute (the accounting service picks them up)."""

    action: Literal["insert", "replace"]
    record: T
    replaced: T | None = Field(default=None, description="The record replaced (action "
                               "replace), as it was.")
    recompute: list[RecomputeRange] = Field(description="Ranges queued for recompute; empty "
                                            "for production records (verdicts read them "
                                            "directly).")


class ProductionRecordWrite(_In):
    """Declare a production unit's statistical output over a period (plant token for its own
    plant, admin for any). Give `period` or `period_start` + `period_end`."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [
        {"unit": "kiln-1", "period": "2026-11", "quantity": 138000.0,
         "source": "统计报表 2026-11"},
        {"unit": "kiln-1", "period_start": "2026-11-01T00:00:00+08:00",
         "period_end": "2026-11-16T00:00:00+08:00", "quantity": 69000.0, "quantity_unit": "t",
         "source": "half-month statistics"}]})

    unit: str = Field(pattern=CODE_PATTERN, description="Production unit code of the plant.")
    period: str | None = Field(default=None, min_length=4, max_length=16,
                               description="A local-calendar day `2026-11-05`, month "
                               "`2026-11` or year `2026`; or give period_start and period_end.")
    period_start: datetime | None = Field(default=None, description="Start, ISO 8601 with a "
                                          "UTC offset (with period_end, instead of period).")
    period_end: datetime | None = Field(default=None, description="End (exclusive), ISO 8601 "
                                        "with a UTC offset.")
    quantity: float = q("see quantity_unit", "Output over the period, in the unit's product "
                        "unit (>= 0).", ge=0, le=1e12)
    quantity_unit: str | None = Field(default=None, min_length=1, max_length=50,
                                      description="Optional check: must be the unit's "
                                      "product_unit (e.g. t, weight_box).")
    source: str = Field(min_length=1, max_length=500, description=_SOURCE)


class ProductionRecord(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "unit": "kiln-1",
        "period_start": "2026-11-01T00:00:00+08:00", "period_end": "2026-12-01T00:00:00+08:00",
        "quantity": 138000.0, "quantity_unit": "t", "source": "统计报表 2026-11",
        "entered_by": "token:3 (cement plant)", "entered_at": "2026-12-02T09:30:00+08:00"}]})

    plant: str
    unit: str
    period_start: datetime
    period_end: datetime = Field(description="End of the period (exclusive).")
    quantity: float = q("see quantity_unit", "Declared output over the period.")
    quantity_unit: str = Field(description="The unit's product unit.")
    source: str
    entered_by: str | None = Field(description=_ENTERED_BY)
    entered_at: datetime | None


class CalorificValueWrite(_In):
    """Declare a measured low calorific value of an energy type at the plant, valid from a
    time on (it overrides the GB/T 2589 default, or supplies the value the standard does not
    give, e.g. coke_oven_gas)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "energy_type": "coke_oven_gas", "valid_from": "2026-01-01T00:00:00+08:00",
        "lhv_kj_per_unit": 17000.0, "source": "lab report 2025-12-28"}]})

    energy_type: str = Field(pattern=r"^[a-z0-9]+(?:_[a-z0-9]+)*$", max_length=64,
                             description="GB/T 2589 energy type key, e.g. coke_oven_gas, "
                             "natural_gas, raw_coal (as the plant's meters name it).")
    valid_from: datetime = Field(description="From when the value holds, ISO 8601 with a "
                                 "UTC offset.")
    lhv_kj_per_unit: float = q("kJ per the energy type's unit (kJ/kg, kJ/m3)",
                               "Measured low calorific value (> 0).", gt=0, le=1e7)
    source: str = Field(min_length=1, max_length=500, description=_SOURCE)


class CalorificValue(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "gx-liuzhou-steel", "energy_type": "coke_oven_gas",
        "valid_from": "2026-01-01T00:00:00+08:00", "lhv_kj_per_unit": 17000.0,
        "lhv_unit": "m3", "kgce_per_unit": 0.58006, "source": "lab report 2025-12-28",
        "entered_by": "cli:energy-manager", "entered_at": "2026-01-02T10:00:00+08:00"}]})

    plant: str
    energy_type: str
    valid_from: datetime
    lhv_kj_per_unit: float = q("kJ per lhv_unit", "Measured low calorific value.")
    lhv_unit: str | None = Field(description="The energy type's unit in GB/T 2589 (kg, m3 "
                                 "...); null when the table no longer has the type.")
    kgce_per_unit: float | None = q("kgce per lhv_unit", "The coefficient the value gives "
                                    "(lhv / 29 307.6).")
    source: str
    entered_by: str | None = Field(description=_ENTERED_BY)
    entered_at: datetime | None


class MeterReplacementWrite(_In):
    """Declare that a counter or production meter's register was replaced (or reset): the
    old register's final value and the new one's initial value make the interval across the
    change exact instead of estimated."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "ts": "2026-11-12T10:30:00+08:00", "old_final": 12345678.0, "new_initial": 0.0,
        "note": "meter swapped after a fault"}]})

    ts: datetime = Field(description="When the register changed, ISO 8601 with a UTC offset.")
    old_final: float = q("the meter's eng_unit", "Final value of the old register (before "
                         "the multiplier, >= 0).", ge=0, le=1e18)
    new_initial: float = q("the meter's eng_unit", "Initial value of the new register "
                           "(before the multiplier, >= 0).", ge=0, le=1e18)
    note: str | None = Field(default=None, max_length=500, description="Free text.")


class MeterReplacement(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "meter": "k1-elec", "ts": "2026-11-12T10:30:00+08:00",
        "old_final": 12345678.0, "new_initial": 0.0, "eng_unit": "kWh",
        "note": "meter swapped after a fault", "entered_by": "token:3 (cement plant)",
        "entered_at": "2026-11-12T11:00:00+08:00"}]})

    plant: str
    meter: str
    ts: datetime
    old_final: float = q("see eng_unit", "Final value of the old register.")
    new_initial: float = q("see eng_unit", "Initial value of the new register.")
    eng_unit: str = Field(description="The meter's engineering unit.")
    note: str | None
    entered_by: str | None = Field(description=_ENTERED_BY)
    entered_at: datetime | None


class MeterMultiplierWrite(_In):
    """Declare a CT x PT multiplier change of a meter from a time on (e.g. its CT changed from
    300/5 to 600/5). History before it keeps the old multiplier."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "valid_from": "2026-11-15T08:00:00+08:00", "multiplier": 120,
        "source": "CT 300/5 → 600/5"}]})

    valid_from: datetime = Field(description="From when the multiplier applies, ISO 8601 "
                                 "with a UTC offset.")
    multiplier: Decimal = q("1", "CT ratio x PT ratio (> 0).", gt=0, le=1e9)
    source: str = Field(min_length=1, max_length=500, description=_SOURCE)


class MeterMultiplier(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "meter": "k2-elec",
        "valid_from": "2026-11-15T08:00:00+08:00", "multiplier": 120.0,
        "source": "CT 300/5 → 600/5", "entered_by": "token:9 (admin)",
        "entered_at": "2026-11-15T09:00:00+08:00"}]})

    plant: str
    meter: str
    valid_from: datetime | None = Field(description="From when it applies; null: since always "
                                        "(the registry's multiplier before the first declared "
                                        "change).")
    multiplier: float = q("1", "CT ratio x PT ratio in force from valid_from.")
    source: str
    entered_by: str = Field(description=_ENTERED_BY)
    entered_at: datetime


class GridFactorWrite(_In):
    """Declare (or replace) the plant's own purchased-electricity emission factor for a year;
    it holds for later years until the plant declares another one."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "kgco2_per_kwh": 0.5366, "source": "省生态环境厅 2025"}]})

    kgco2_per_kwh: float = q("kgCO2/kWh", "Emission factor (= tCO2/MWh), 0 <= factor < 2.",
                             ge=0, lt=2)
    source: str = Field(min_length=1, max_length=500, description=_SOURCE)


class GridFactor(_Out):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "plant": "jx-yujiang-cement", "year": 2025, "kgco2_per_kwh": 0.5366,
        "source": "省生态环境厅 2025", "entered_by": "token:9 (admin)",
        "entered_at": "2026-03-01T09:00:00+08:00"}]})

    plant: str
    year: int = q("year", "Local calendar year.")
    kgco2_per_kwh: float = q("kgCO2/kWh", "Emission factor of purchased electricity.")
    source: str
    entered_by: str | None = Field(description=_ENTERED_BY)
    entered_at: datetime | None
