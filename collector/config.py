"""Gateway configuration: one YAML file per on-site collector, validated at load.

A gateway file has a single top-level key ``gateway:`` (that is how ``energymon check-config``
tells it from a fleet file)::

    gateway:
      id: gw-yujiang-1                # the gateway's name in payloads (``gateway`` field)
      plant: jx-yujiang-cement        # plant id: topic plants/{plant}/readings
      spool: {capacity_readings: 2000000, when_full: drop_oldest}
      publish: {drain_rate_msgs_s: 20, max_inflight: 20}
      links:
        - {name: mcc-1, transport: tcp, host: 10.0.0.21, port: 502, timeout_s: 1, retries: 1}
        - {name: rs485-1, transport: rtu, port: /dev/ttyUSB0, baudrate: 9600, parity: E}
        - {name: moxa-1, transport: rtu_over_tcp, host: 10.0.0.30, port: 4001,
           quirks: {max_registers_per_read: 64}}
      devices:
        - {id: k1-feeder, link: mcc-1, unit_id: 1, model: chint_dtsu666, interval_s: 900,
           meters: [{id: k1-elec, field: energy_import}]}
      mqtt_meters:                      # meters that publish on a local broker
        url: mqtt://127.0.0.1:1883
        meters: [{id: main-elec, topic: site/main/kwh, format: number}]

Everything is a frozen pydantic model with ``extra="forbid"``; link transports are a tagged
union on ``transport``. Every problem names the link, device, meter and field it is about::

    gateway.yaml: 2 problem(s):
      device 'k1-feeder' > field 'link': unknown link 'mcc-9' (links: mcc-1, rs485-1)
      link 'rs485-1' > field 'parity': Input should be 'N', 'E' or 'O'

Spool sizing: the national end-device rule asks for >= 6 months of local history. At the
15-minute rate one meter produces 96 readings a day, so ``capacity_readings`` should be at
least ``meters × 96 × 183`` (200 meters: 3.5 M readings, roughly 0.3 GB of SQLite).
The default (5 M) covers 284 meters at 15-minute data for 183 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.contract import CODE_PATTERN
from core.payload import MAX_READINGS_PER_BATCH
from core.settings import MqttEndpoint
from core.yamlfile import ConfigFileError, describe_location, read_yaml, repeated
from modbus import RegisterMapError, load_register_map, plan_reads

__all__ = [
    "DAY_S",
    "Device",
    "Gateway",
    "GatewayConfigError",
    "GatewayFile",
    "Link",
    "LinkQuirks",
    "MeterBinding",
    "MqttMeter",
    "MqttMeters",
    "PublishConfig",
    "RtuLink",
    "RtuOverTcpLink",
    "SpoolConfig",
    "TcpLink",
    "is_gateway_data",
    "load_gateway",
    "parse_gateway",
    "readings_for_six_months",
]

Code = Annotated[str, Field(pattern=CODE_PATTERN)]
DAY_S = 86_400
SIX_MONTHS_DAYS = 183


def readings_for_six_months(meters: int, interval_s: int = 900) -> int:
    """Spool capacity that holds 183 days of ``meters`` meters read every ``interval_s``."""
    return meters * (DAY_S // interval_s) * SIX_MONTHS_DAYS


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# --------------------------------------------------------------------------------- links
class LinkQuirks(_Model):
    """Named work-arounds for one physical link (gateways and meters that bend the rules)."""

    max_registers_per_read: int = Field(
        default=125, ge=1, le=125,
        description="lower the 125-register read limit (some RS-485 gateways choke on long frames)",
    )
    max_bits_per_read: int = Field(default=2000, ge=1, le=2000)
    delay_after_connect_s: float = Field(
        default=0.0, ge=0, le=10, description="wait this long after (re)connecting before reading"
    )
    reset_on_timeout: bool | None = Field(
        default=None,
        description="close and reopen the link after a timeout so a late answer cannot be taken "
        "for the next request's; default: on for RTU framing (no transaction id), off for TCP",
    )
    close_after_cycle: bool = Field(
        default=False, description="disconnect after every cycle (gateways with one session slot)"
    )


class _LinkBase(_Model):
    name: Code
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="per request")
    retries: int = Field(default=1, ge=0, le=10, description="extra attempts after a timeout")
    pause_s: float = Field(default=0.0, ge=0, le=10, description="silence between two requests")
    reconnect_min_s: float = Field(default=0.5, gt=0, le=600)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    quirks: LinkQuirks = LinkQuirks()

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("field 'reconnect_max_s': must be >= reconnect_min_s")
        return self

    @property
    def rtu_framing(self) -> bool:
        """True when frames carry no transaction id (RTU on a serial line or over TCP)."""
        return False

    @property
    def reset_on_timeout(self) -> bool:
        q = self.quirks.reset_on_timeout
        return self.rtu_framing if q is None else q

    @property
    def max_unit_id(self) -> int:
        return 247 if self.rtu_framing else 255

    @property
    def min_unit_id(self) -> int:
        return 1 if self.rtu_framing else 0


class TcpLink(_LinkBase):
    """Modbus TCP (MBAP framing) to a meter or a TCP gateway."""

    transport: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)


class RtuOverTcpLink(_LinkBase):
    """RTU frames (with CRC) tunnelled through a transparent serial-to-TCP converter."""

    transport: Literal["rtu_over_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=4001, ge=1, le=65535)

    @property
    def rtu_framing(self) -> bool:
        return True


class RtuLink(_LinkBase):
    """Modbus RTU on a local serial port (RS-485); ``port`` may also be a pyserial URL."""

    transport: Literal["rtu"]
    port: str = Field(min_length=1, description="/dev/ttyUSB0, COM3 or a pyserial URL")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def rtu_framing(self) -> bool:
        return True


Link = Annotated[TcpLink | RtuLink | RtuOverTcpLink, Field(discriminator="transport")]


# ------------------------------------------------------------------------------- devices
class MeterBinding(_Model):
    """A fleet meter whose value is one field of the device's register map."""

    id: Code = Field(description="fleet meter id (unique on the gateway)")
    field: str = Field(min_length=1, description="register-map field, e.g. energy_import")


class Device(_Model):
    """One Modbus slave: where it is, which register map it speaks and which meters it feeds."""

    id: Code
    link: Code
    unit_id: int = Field(ge=0, le=255)
    model: str = Field(min_length=1, description="register map: shipped model name or a path")
    interval_s: int = Field(default=900, gt=0, le=DAY_S)
    meters: tuple[MeterBinding, ...] = Field(min_length=1)
    ratio: Literal["none", "configured", "from_meter"] = Field(
        default="none",
        description="none: publish the register value (the platform applies the fleet "
        "multiplier); configured: multiply CT/PT-scaled fields by ct_ratio/pt_ratio; "
        "from_meter: by the ratios the meter itself reports",
    )
    ct_ratio: float | None = Field(default=None, gt=0)
    pt_ratio: float | None = Field(default=None, gt=0)
    max_gap: int = Field(default=0, ge=0, le=124, description="read through gaps up to this")
    late_after_s: float | None = Field(
        default=None, gt=0,
        description="a read later than this after the boundary is 'suspect' "
        "(default: min(60 s, interval/2))",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if DAY_S % self.interval_s:
            raise ValueError(
                f"field 'interval_s': {self.interval_s} does not divide a day; use e.g. 60, 300, "
                "900, 1800 or 3600 so cycles align to clock boundaries"
            )
        if self.ratio == "configured" and self.ct_ratio is None and self.pt_ratio is None:
            raise ValueError("field 'ct_ratio': ratio 'configured' needs ct_ratio and/or pt_ratio")
        if self.ratio != "configured" and (self.ct_ratio is not None or self.pt_ratio is not None):
            raise ValueError(
                "field 'ratio': ct_ratio/pt_ratio are only used with ratio: configured"
            )
        if self.late_after_s is not None and self.late_after_s >= self.interval_s:
            raise ValueError("field 'late_after_s': must be shorter than interval_s")
        return self

    @property
    def late_threshold_s(self) -> float:
        if self.late_after_s is not None:
            return self.late_after_s
        return min(60.0, self.interval_s / 2)


# --------------------------------------------------------------------------- MQTT meters
class MqttMeter(_Model):
    """A meter that publishes its own values on the plant's local broker."""

    id: Code
    topic: str = Field(min_length=1)
    format: Literal["reading", "number", "json"] = Field(
        default="reading",
        description="reading: energymon single-reading JSON {meter, ts, value[, quality]}; "
        "number: the payload is the value (timestamped on receipt); json: an object with "
        "value_key (and ts_key when the meter stamps its values)",
    )
    value_key: str | None = None
    ts_key: str | None = None

    @model_validator(mode="after")
    def _keys(self) -> Self:
        if self.format == "json" and not self.value_key:
            raise ValueError("field 'value_key': format 'json' needs value_key")
        if self.format != "json" and (self.value_key or self.ts_key):
            raise ValueError("field 'value_key': value_key/ts_key are only used with format json")
        if any(c in self.topic for c in "+#"):
            raise ValueError("field 'topic': one meter per topic; wildcards are not allowed")
        return self


class MqttMeters(_Model):
    url: str = Field(description="local broker, mqtt://[user:pass@]host:port")
    client_id: Code | None = None
    flush_s: float = Field(default=1.0, gt=0, le=60, description="spool (then ack) every flush_s")
    meters: tuple[MqttMeter, ...] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        try:
            MqttEndpoint.parse(url)
        except ValueError as exc:
            raise ValueError(str(exc).replace("ENERGYMON_MQTT_URL", "url")) from None
        return url

    @property
    def endpoint(self) -> MqttEndpoint:
        return MqttEndpoint.parse(self.url)


# ---------------------------------------------------------------------- spool / publish
class SpoolConfig(_Model):
    path: Path | None = Field(
        default=None,
        description="SQLite file; relative paths are under ENERGYMON_DATA_DIR; default "
        "<data_dir>/collector/<gateway id>.sqlite",
    )
    capacity_readings: int = Field(default=5_000_000, ge=100, le=2_000_000_000)
    when_full: Literal["drop_oldest", "refuse_new"] = "drop_oldest"

    @field_validator("path")
    @classmethod
    def _contained(cls, value: Path | None) -> Path | None:
        """A relative spool path stays under the data directory (security review L2); an
        operator who wants it elsewhere writes an absolute path."""
        if value is not None and not value.is_absolute() and ".." in value.parts:
            raise ValueError(f"{str(value)!r} leaves the data directory ('..'); a relative "
                             "spool path stays under ENERGYMON_DATA_DIR, write an absolute "
                             "path to put the spool elsewhere")
        return value
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: fsync on every commit (survives power loss); normal: survives a "
        "process crash only",
    )


class PublishConfig(_Model):
    drain_rate_msgs_s: float = Field(
        default=20.0, gt=0, le=10_000, description="cap on messages per second (backlog drain)"
    )
    order: Literal["oldest_first", "live_first"] = Field(
        default="oldest_first",
        description="oldest_first: strict spool order (per-meter order kept on the wire); "
        "live_first: the newest cycle jumps the backlog, the backlog drains oldest-first",
    )
    max_inflight: int = Field(default=20, ge=1, le=1000)
    max_readings_per_message: int = Field(default=5000, ge=1, le=MAX_READINGS_PER_BATCH)
    ack_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="a message the broker has not acknowledged "
        "(PUBACK) within this of a live connection is sent again")
    acknowledgement: Literal["platform", "broker"] = Field(
        default="platform",
        description="platform: a batch leaves the spool only when the platform has committed "
        "it (plants/{plant}/acks/{gateway}); broker: on the broker's PUBACK (at-least-once to "
        "the broker only: a broker that loses what it acknowledged loses those readings)",
    )
    platform_ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="a batch the broker acknowledged but the platform has not confirmed "
        "within this is sent again; the wait doubles with every resend of that batch",
    )
    platform_ack_max_s: float = Field(
        default=600.0, gt=0, le=86_400, description="cap of the doubling wait between resends")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1, le=600)
    reconnect_max_s: int = Field(default=30, ge=1, le=3600)
    client_id: Code | None = Field(default=None, description="default: energymon-<gateway id>")


class MetricsConfig(_Model):
    port: int | None = Field(default=None, ge=0, le=65535, description="unset: no HTTP endpoint")
    host: str = "127.0.0.1"


class Gateway(_Model):
    id: Code
    plant: Code
    spool: SpoolConfig = SpoolConfig()
    publish: PublishConfig = PublishConfig()
    metrics: MetricsConfig = MetricsConfig()
    links: tuple[Link, ...] = ()
    devices: tuple[Device, ...] = ()
    mqtt_meters: MqttMeters | None = None

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems: list[str] = []
        names = [link.name for link in self.links]
        for dup in repeated(names):
            problems.append(f"link {dup!r} > field 'name': defined more than once")
        ids = [d.id for d in self.devices]
        for dup in repeated(ids):
            problems.append(f"device {dup!r} > field 'id': defined more than once")
        endpoints: dict[str, str] = {}
        for link in self.links:
            where = link.port if isinstance(link, RtuLink) else f"{link.host}:{link.port}"
            other = endpoints.setdefault(where, link.name)
            if other != link.name:
                problems.append(f"link {link.name!r} > field 'port': {where} is already link "
                                f"{other!r} (one client per physical link)")
        links = {link.name: link for link in self.links}
        seen_units: dict[tuple[str, int], str] = {}
        for dev in self.devices:
            dev_link = links.get(dev.link)
            if dev_link is None:
                known = ", ".join(sorted(links)) or "none"
                problems.append(
                    f"device {dev.id!r} > field 'link': unknown link {dev.link!r} (links: {known})"
                )
                continue
            if not dev_link.min_unit_id <= dev.unit_id <= dev_link.max_unit_id:
                problems.append(
                    f"device {dev.id!r} > field 'unit_id': {dev.unit_id} is outside "
                    f"{dev_link.min_unit_id}..{dev_link.max_unit_id} on {dev_link.transport} "
                    f"link {dev_link.name!r}"
                )
            other = seen_units.setdefault((dev.link, dev.unit_id), dev.id)
            if other != dev.id:
                problems.append(
                    f"device {dev.id!r} > field 'unit_id': unit {dev.unit_id} on link "
                    f"{dev.link!r} is already device {other!r}"
                )
        bound: dict[str, str] = {}
        places = [(m.id, f"device {dev.id!r}") for dev in self.devices for m in dev.meters]
        if self.mqtt_meters is not None:
            places += [(mm.id, "mqtt_meters") for mm in self.mqtt_meters.meters]
            topics = [mm.topic for mm in self.mqtt_meters.meters]
            for mm in self.mqtt_meters.meters:
                if topics.count(mm.topic) > 1:
                    problems.append(f"mqtt_meters > meter {mm.id!r} > field 'topic': "
                                    f"{mm.topic!r} is used by more than one meter")
        for meter, where in places:
            if meter in bound:
                problems.append(f"{where} > meter {meter!r} > field 'id': meter {meter!r} is "
                                f"already bound in {bound[meter]}")
            bound.setdefault(meter, where)
        if not self.devices and self.mqtt_meters is None:
            problems.append("field 'devices': a gateway needs devices or mqtt_meters")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def link(self, name: str) -> TcpLink | RtuLink | RtuOverTcpLink:
        return next(link for link in self.links if link.name == name)

    @property
    def meter_count(self) -> int:
        n = sum(len(d.meters) for d in self.devices)
        return n + (len(self.mqtt_meters.meters) if self.mqtt_meters else 0)


class GatewayFile(_Model):
    """The whole file: ``gateway:`` and nothing else."""

    gateway: Gateway


# -------------------------------------------------------------------------------- errors
class GatewayConfigError(ConfigFileError):
    """A gateway file is invalid; ``problems`` lists one readable line per error."""


_LABELS = {"links": "link", "devices": "device", "meters": "meter"}
_TRANSPORTS = ("tcp", "rtu", "rtu_over_tcp")


def gateway_location(data: Any, loc: Sequence[int | str]) -> str:
    """A pydantic error location as ``device 'k1' > meter 'm' > field 'f'``: list items are
    named by their ``id`` (or ``name`` for links); the tagged-union tag pydantic inserts for
    links is skipped."""
    if loc and loc[0] == "gateway":
        data = data.get("gateway") if isinstance(data, dict) else None
        loc = loc[1:]
    return describe_location(data, loc, _LABELS, id_keys=("id", "name"),
                             sections=("mqtt_meters",), tags=_TRANSPORTS)


def _problems_from(exc: ValidationError, data: Any) -> list[str]:
    problems: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = err["loc"]
        if err["type"] == "too_short" and any(
            len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors
        ):
            continue  # a list whose items were invalid, reported item by item
        where = gateway_location(data, err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "union_tag_invalid":
            msg = f"field 'transport': {msg}"
        # one validator may report several problems, one per line, each naming its location
        for piece in msg.splitlines():
            problems.append(_join(where, piece))
    return problems


def _join(where: str, msg: str) -> str:
    if not where:
        return msg
    return f"{where} > {msg}" if msg.startswith("field '") else f"{where}: {msg}"


def _cross_check(gateway: Gateway) -> list[str]:
    """What the schema cannot see: register maps, their fields and the read plans."""

    problems: list[str] = []
    for dev in gateway.devices:
        where = f"device {dev.id!r}"
        try:
            rmap = load_register_map(dev.model)
        except RegisterMapError as exc:
            first = str(exc).splitlines()[0]
            problems.append(f"{where} > field 'model': {first}")
            continue
        fields = set(rmap.field_names)
        for m in dev.meters:
            if m.field not in fields:
                problems.append(
                    f"{where} > meter {m.id!r} > field 'field': register map {rmap.model!r} has "
                    f"no field {m.field!r} (fields: {', '.join(rmap.field_names)})"
                )
        if dev.ratio == "from_meter":
            needed = {rmap.field(m.field).ratio.value for m in dev.meters if m.field in fields}
            if "ct" in needed or "ct_pt" in needed:
                if rmap.ct_ratio_field is None:
                    problems.append(f"{where} > field 'ratio': register map {rmap.model!r} "
                                    "reports no CT ratio (use ratio: configured)")
            if "pt" in needed or "ct_pt" in needed:
                if rmap.pt_ratio_field is None:
                    problems.append(f"{where} > field 'ratio': register map {rmap.model!r} "
                                    "reports no PT ratio (use ratio: configured)")
        if any(m.field not in fields for m in dev.meters):
            continue
        link = gateway.link(dev.link) if any(x.name == dev.link for x in gateway.links) else None
        if link is None:
            continue
        try:
            plan_reads(
                rmap,
                dev.unit_id,
                select=device_fields(dev, rmap),
                max_gap=dev.max_gap,
                max_registers=link.quirks.max_registers_per_read,
                max_bits=link.quirks.max_bits_per_read,
            )
        except ValueError as exc:
            problems.append(f"{where} > field 'model': cannot plan reads: {exc}")
    return problems


def device_fields(device: Device, rmap: Any) -> list[str]:
    """Register-map fields a device poll reads: the bound fields plus reported ratios."""
    names = [m.field for m in device.meters]
    if device.ratio == "from_meter":
        for extra in (rmap.ct_ratio_field, rmap.pt_ratio_field):
            if extra is not None and extra not in names:
                names.append(extra)
    return names


# ------------------------------------------------------------------------------- loading
def is_gateway_data(data: Any) -> bool:
    """True for parsed YAML that is a gateway file (top-level key ``gateway``)."""
    return isinstance(data, dict) and "gateway" in data


def parse_gateway(data: Any, source: str = "<gateway>") -> Gateway:
    """Validate already-parsed YAML data; raise :class:`GatewayConfigError` listing problems."""
    if not is_gateway_data(data):
        raise GatewayConfigError(source, ["the file must be a mapping with a 'gateway' key"])
    try:
        gateway = GatewayFile.model_validate(data).gateway
    except ValidationError as exc:
        raise GatewayConfigError(source, _problems_from(exc, data)) from None
    problems = _cross_check(gateway)
    if problems:
        raise GatewayConfigError(source, problems)
    return gateway


def load_gateway(path: str | Path) -> Gateway:
    """Read and validate a gateway YAML file."""
    return parse_gateway(read_yaml(path, GatewayConfigError), str(path))


def spool_path(gateway: Gateway, data_dir: Path) -> Path:
    """Where the gateway's spool lives (relative paths are under ``data_dir``)."""
    path = gateway.spool.path or Path("collector") / f"{gateway.id}.sqlite"
    return path if path.is_absolute() else Path(data_dir) / path
