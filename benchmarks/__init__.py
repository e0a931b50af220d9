"""energymon benchmarks: the pure energy-efficiency domain (standard library only).

* :mod:`benchmarks.catalogue` -- benchmark (标杆) / baseline (基准) levels by key and edition;
* :mod:`benchmarks.evaluate` -- an intensity against a catalogue entry -> :class:`Verdict`;
* :mod:`benchmarks.factors` -- GB/T 2589-2020 standard-coal coefficients, CO2 factors.

Imports nothing else of energymon. Data lives in ``benchmarks/data/*.csv`` (package data) and
is loaded on first use, never at import time.
"""

from benchmarks.catalogue import Catalogue, CatalogueEntry, UnknownEntryError
from benchmarks.evaluate import Status, Verdict, evaluate
from benchmarks.factors import (
    EmissionFactors,
    EnergyFactors,
    FactorUsed,
    MeasuredValueRequired,
    UnknownFactorError,
    co2_kg,
    co2_kg_electricity,
    co2_kg_fuel,
    to_kgce,
)

__all__ = [
    "Catalogue",
    "CatalogueEntry",
    "EmissionFactors",
    "EnergyFactors",
    "FactorUsed",
    "MeasuredValueRequired",
    "Status",
    "UnknownEntryError",
    "UnknownFactorError",
    "Verdict",
    "co2_kg",
    "co2_kg_electricity",
    "co2_kg_fuel",
    "evaluate",
    "to_kgce",
]
