"""Cross-checks of a fleet against the project's data catalogues (used by check-config).

These live beside the models, not in them, because they consult other packages' data: the benchmarks
catalogue (catalogue keys, editions, energy types) and the register-map library (meter models).
"""

from __future__ import annotations

import difflib

from benchmarks.catalogue import Catalogue
from benchmarks.factors import EnergyFactors, MeasuredValueRequired, convert_quantity
from fleet.model import Fleet
from modbus.registermap import available_models


def cross_check(fleet: Fleet) -> list[str]:
    """Problems that schema validation alone cannot see; empty when the fleet is consistent."""
    problems: list[str] = []
    problems += _check_catalogue(fleet)
    problems += _check_meter_models(fleet)
    return problems


def _check_catalogue(fleet: Fleet) -> list[str]:
    catalogue = Catalogue.load()
    factors = EnergyFactors.load()
    known_keys = set(catalogue.keys())
    problems: list[str] = []
    for plant in fleet.plants:
        for unit in plant.units:
            if unit.catalogue is None:
                continue
            where = f"plant {plant.id!r} > unit {unit.id!r}"
            if unit.catalogue not in known_keys:
                close = difflib.get_close_matches(unit.catalogue, sorted(known_keys), n=1)
                hint = (f"did you mean {close[0]!r}?" if close else
                        "the keys are the 'key' column of benchmarks/data/efficiency_levels.csv")
                problems.append(f"{where} > field 'catalogue': unknown catalogue key "
                                f"{unit.catalogue!r} ({hint})")
                continue
            if unit.edition is not None and unit.edition not in catalogue.editions():
                problems.append(f"{where} > field 'edition': no catalogue edition "
                                f"{unit.edition} (editions: {sorted(catalogue.editions())})")
        for meter in plant.meters:
            if meter.energy_type == "product":
                continue
            where = f"plant {plant.id!r} > meter {meter.id!r}"
            if not factors.has(meter.energy_type):
                problems.append(
                    f"{where} > field 'energy_type': no standard-coal coefficient for "
                    f"{meter.energy_type!r} (known: electricity, {', '.join(factors.keys())})"
                )
                continue
            if meter.kind.value == "instantaneous":
                continue
            row_unit = factors.get(meter.energy_type).unit
            try:
                convert_quantity(1, meter.eng_unit, row_unit)
            except ValueError:
                problems.append(
                    f"{where} > field 'eng_unit': {meter.eng_unit!r} cannot be converted to "
                    f"{row_unit!r}, the unit of the {meter.energy_type!r} coefficient"
                )
    return problems


def _check_meter_models(fleet: Fleet) -> list[str]:
    models = set(available_models())
    problems: list[str] = []
    for plant in fleet.plants:
        for meter in plant.meters:
            if meter.model is not None and meter.model not in models:
                problems.append(
                    f"plant {plant.id!r} > meter {meter.id!r} > field 'model': no register map "
                    f"{meter.model!r} (available: {', '.join(sorted(models))})"
                )
    return problems


def conversion_warnings(fleet: Fleet) -> list[str]:
    """Meters whose energy accounting cannot convert to standard coal until the plant declares
    a measured calorific value (coke-oven gas, converter gas, coal slime, steam by pressure
    class ...). Such a meter is valid: its intervals are stored without kgce and its unit is
    not evaluable until the value is declared, so check-config says so before it sends data."""
    factors = EnergyFactors.load()
    out: list[str] = []
    for plant in fleet.plants:
        for meter in plant.meters:
            if meter.energy_type == "product" or meter.kind.value == "instantaneous" \
                    or not factors.has(meter.energy_type):
                continue
            try:
                factors.coefficient(meter.energy_type)
            except MeasuredValueRequired as exc:
                where = f"plant {plant.id!r} > meter {meter.id!r}"
                unit = f"unit {meter.unit!r}" if meter.unit else "the plant"
                out.append(
                    f"{where} > field 'energy_type': {exc}. Until the plant declares it "
                    f"(`energymon declare calorific-value --plant {plant.id} --energy-type "
                    f"{meter.energy_type} ...`), this meter's energy is stored without kgce "
                    f"and {unit} is not evaluable")
    return out
