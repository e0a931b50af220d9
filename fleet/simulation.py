"""Simulation blocks of a fleet file (optional; read only by the simulators).

Every block here is optional: a fleet without ``simulation`` keys validates and loads exactly as
before. The simulators (``energymon simulate ...``) turn a plant with a ``simulation`` block into
Modbus TCP meters or an MQTT-pushing plant; see simulators/__init__.py for the plant model.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from fleet.base import AwareDatetime, Code, Duration, _Model


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def index(self) -> int:  # type: ignore[override]  # a weekday is never searched as a str
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

