"""Benchmark evaluation of one production unit's energy intensity (design rule 5).

For a lower-is-better entry (every entry unless its notes say otherwise)::

    intensity <= benchmark             -> at_benchmark     (达到标杆水平)
    benchmark < intensity <= baseline  -> below_benchmark  (flagged: improve)
    intensity > baseline               -> below_baseline   (flagged: must retrofit)

mirrored for a higher-is-better entry (>= benchmark at, >= baseline below benchmark, else below
baseline). An entry without values gives ``not_evaluable``, never a guessed verdict.

Gap: ``gap_to_benchmark_pct = (intensity - benchmark) / |benchmark| x 100`` (lower is better;
``(benchmark - intensity) / |benchmark| x 100`` if higher is better). Positive = worse than the
benchmark by that share of the benchmark's magnitude, negative = better. Dividing by
``|benchmark|`` keeps the sign meaningful for negative benchmarks: converter steelmaking
(benchmark -30 kgce/t) at -24 kgce/t is 6 kgce/t worse, i.e. +20 %. ``None`` when the
benchmark is 0 (no relative gap exists).

Saving potential, in tonnes of standard coal (tce)::

    saving_potential_tce = max(0, intensity - benchmark) x output x k / 1000

with ``output`` in the entry's product unit (t, weight-box, m2, t·energy factor) and ``k`` the
kgce per unit of the intensity's energy part: kgce -> 1; kWh -> 0.1229 (electricity,
equivalent value, GB/T 2589-2020 table); kgoe -> 1.4286 (crude oil row, 41 816 kJ/kg = 1 kgoe).
All arithmetic is ``Decimal`` and unrounded, so an auditor can re-derive every figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from benchmarks._units import as_decimal, split_unit
from benchmarks.catalogue import CatalogueEntry
from benchmarks.factors import EnergyFactors, default_energy_factors

#: energy part of an intensity unit -> energy-type key whose coefficient converts it to kgce
#: (``None`` = already kgce)
NUMERATOR_ENERGY_TYPES: dict[str, str | None] = {
    "kgce": None,
    "kWh": "electricity_equivalent",
    "kgoe": "crude_oil",
}


class Status(StrEnum):
    """The one verdict vocabulary: of an intensity against a catalogue entry, and of a
    production unit (accounting, CLI, API).

    :func:`evaluate` gives the first four; a unit that cannot be evaluated at all is
    ``no_output`` (no product output in the period) or ``unmapped`` (no catalogue entry, or
    one the catalogue does not know).
    """

    AT_BENCHMARK = "at_benchmark"
    BELOW_BENCHMARK = "below_benchmark"
    BELOW_BASELINE = "below_baseline"
    NOT_EVALUABLE = "not_evaluable"
    NO_OUTPUT = "no_output"
    UNMAPPED = "unmapped"


#: statuses of a judged unit (an intensity compared with benchmark and baseline)
JUDGED: tuple[Status, ...] = (Status.AT_BENCHMARK, Status.BELOW_BENCHMARK,
                              Status.BELOW_BASELINE)
#: statuses that flag a unit: improve (below benchmark) or retrofit (below baseline)
FLAGGED: tuple[Status, ...] = (Status.BELOW_BENCHMARK, Status.BELOW_BASELINE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Result of :func:`evaluate`; values in ``unit`` except where the name says otherwise."""

    key: str
    edition: int
    status: Status
    intensity: Decimal
    #: product output the saving is computed for, in the entry's product unit (t, m2 ...)
    output: Decimal
    benchmark: Decimal | None
    baseline: Decimal | None
    unit: str
    #: % of |benchmark|; positive = worse than benchmark; None if not evaluable or benchmark 0
    gap_to_benchmark_pct: Decimal | None
    #: tce; None if not evaluable
    saving_potential_tce: Decimal | None
    lower_is_better: bool
    #: version of the standard-coal table used to convert kWh / kgoe (None if not evaluable)
    factors_version: str | None


def kgce_per_energy_unit(unit: str, factors: EnergyFactors | None = None) -> Decimal:
    """kgce per unit of the energy part of an intensity ``unit`` (``kWh/t`` -> 0.1229)."""
    numerator, _ = split_unit(unit)
    if numerator not in NUMERATOR_ENERGY_TYPES:
        raise ValueError(
            f"unit {unit!r}: cannot convert {numerator!r} to kgce "
            f"(known: {', '.join(NUMERATOR_ENERGY_TYPES)})"
        )
    energy_type = NUMERATOR_ENERGY_TYPES[numerator]
    if energy_type is None:
        return Decimal(1)
    table = factors if factors is not None else default_energy_factors()
    return table.coefficient(energy_type).kgce_per_unit


def classify(
    intensity: Decimal, benchmark: Decimal, baseline: Decimal, lower_is_better: bool = True
) -> Status:
    """The status of ``intensity`` against a benchmark/baseline pair (boundaries inclusive)."""
    if lower_is_better:
        if intensity <= benchmark:
            return Status.AT_BENCHMARK
        return Status.BELOW_BENCHMARK if intensity <= baseline else Status.BELOW_BASELINE
    if intensity >= benchmark:
        return Status.AT_BENCHMARK
    return Status.BELOW_BENCHMARK if intensity >= baseline else Status.BELOW_BASELINE


def evaluate(
    entry: CatalogueEntry,
    intensity: Decimal | float | int,
    output: Decimal | float | int,
    *,
    factors: EnergyFactors | None = None,
) -> Verdict:
    """Evaluate ``intensity`` (in ``entry.unit``) for ``output`` units of product.

    ``output`` is the qualified product output over the period in the entry's product unit
    (t, weight-box, m2 ...), >= 0. ``factors`` defaults to the packaged GB/T 2589-2020 table.
    Raises ``ValueError`` for a non-finite intensity, a negative output or an entry unit whose
    energy part cannot be converted to kgce.
    """
    value = as_decimal(intensity, "intensity")
    amount = as_decimal(output, "output")
    if amount < 0:
        raise ValueError(f"output must be >= 0, got {amount}")
    if entry.benchmark is None or entry.baseline is None:
        return Verdict(
            entry.key,
            entry.edition,
            Status.NOT_EVALUABLE,
            value,
            amount,
            entry.benchmark,
            entry.baseline,
            entry.unit,
            None,
            None,
            entry.lower_is_better,
            None,
        )
    table = factors if factors is not None else default_energy_factors()
    k = kgce_per_energy_unit(entry.unit, table)
    benchmark, baseline = entry.benchmark, entry.baseline
    with localcontext() as ctx:
        ctx.prec = 28
        excess = value - benchmark if entry.lower_is_better else benchmark - value
        gap = None if benchmark == 0 else excess / abs(benchmark) * 100
        saving = max(Decimal(0), excess) * amount * k / 1000
    return Verdict(
        key=entry.key,
        edition=entry.edition,
        status=classify(value, benchmark, baseline, entry.lower_is_better),
        intensity=value,
        output=amount,
        benchmark=benchmark,
        baseline=baseline,
        unit=entry.unit,
        gap_to_benchmark_pct=gap,
        saving_potential_tce=saving,
        lower_is_better=entry.lower_is_better,
        factors_version=table.version,
    )
