"""Synthetic fleets of any size (perf harnesses, load tests): N plants × M meters.

Each plant is a 5000 t/d cement clinker line (intensity at benchmark) whose consumed energy is
spread evenly over its meters, electricity meters cycling through the Acrel, CHINT and Eastron
register maps and coal feeders on the flow-totaliser map, plus one belt-scale production meter.
"""

from __future__ import annotations

from typing import Any

from fleet import USCC_ALPHABET, Fleet, parse_fleet, uscc_check_char

ELECTRIC_MODELS = ("acrel_adl400", "chint_dtsu666", "eastron_sdm630")


def _uscc(i: int) -> str:
    digits = []
    n = i
    for _ in range(7):
        n, r = divmod(n, len(USCC_ALPHABET))
        digits.append(USCC_ALPHABET[r])
    first17 = "9136062" + "2MA" + "".join(reversed(digits))
    return first17 + uscc_check_char(first17)


def synthetic_fleet_data(plants: int, meters_per_plant: int, *, transport: str = "modbus",
                         mode: str = "batch", first_port: int = 0) -> dict[str, Any]:
    """Fleet data (as parsed YAML) with ``plants`` plants of ``meters_per_plant`` meters."""
    if not 2 <= meters_per_plant <= 247:
        raise ValueError("meters_per_plant must be 2..247 (Modbus unit ids)")
    energy = meters_per_plant - 1
    share = round(1.0 / energy, 12)
    out_plants = []
    for p in range(plants):
        meters: list[dict[str, Any]] = [
            {"id": "line-output", "name": "clinker belt scale", "unit": "kiln",
             "kind": "production", "energy_type": "product", "eng_unit": "t",
             "model": "generic_belt_scale"}]
        mix: dict[str, float] = {}
        for j in range(energy):
            meter: dict[str, object]
            if j % 4 == 3:
                meter = {"id": f"coal-{j:03d}", "energy_type": "raw_coal", "eng_unit": "t",
                         "model": "generic_flow_totaliser"}
            else:
                meter = {"id": f"elec-{j:03d}", "energy_type": "electricity", "eng_unit": "kWh",
                         "model": ELECTRIC_MODELS[j % 3], "multiplier": 40}
            meters.append({"name": f"meter {j}", "unit": "kiln", "kind": "counter", **meter})
            mix[str(meter["id"])] = share
        last = meters[-1]["id"]
        mix[last] = round(1.0 - share * (energy - 1), 12)
        if transport == "modbus":
            tr: dict[str, Any] = {"type": "modbus", "host": "127.0.0.1",
                                  "port": first_port + p if first_port else 0}
        else:
            tr = {"type": "mqtt", "mode": mode}
        out_plants.append({
            "id": f"plant-{p:04d}", "uscc": _uscc(p), "name": f"synthetic plant {p}",
            "region": "360000", "industry": "cement", "energy_class": "ge_10000_tce",
            "key_unit": True,
            "simulation": {"transport": tr, "seed": p},
            "units": [{"id": "kiln", "name": "clinker line", "catalogue": "cement/clinker",
                       "product": "cement clinker", "product_unit": "t",
                       "design_capacity": 5000, "capacity_unit": "t/d",
                       "simulation": {"intensity": {"level": "at_benchmark", "where": 0.5},
                                      "mix": mix}}],
            "meters": meters,
        })
    return {"fleet": f"synthetic-{plants}x{meters_per_plant}", "timezone": "Asia/Shanghai",
            "simulation": {"epoch": "2026-01-01T00:00:00+08:00", "seed": 7},
            "regions": [{"code": "360000", "name": "Jiangxi", "level": "province"}],
            "plants": out_plants}


def synthetic_fleet(plants: int, meters_per_plant: int, **kwargs: Any) -> Fleet:
    return parse_fleet(synthetic_fleet_data(plants, meters_per_plant, **kwargs), "synthetic")
