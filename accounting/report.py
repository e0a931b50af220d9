"""Plain-text rendering of verdicts for the CLI and the demo."""

from __future__ import annotations

from accounting.verdicts import AreaKpi, UnitResult
from benchmarks.evaluate import Status

STATUS_TEXT: dict[Status, str] = {
    Status.AT_BENCHMARK: "at benchmark (达到标杆)",
    Status.BELOW_BENCHMARK: "below benchmark: improve",
    Status.BELOW_BASELINE: "BELOW BASELINE: retrofit",
    Status.NOT_EVALUABLE: "not evaluable",
    Status.NO_OUTPUT: "no output in period",
    Status.UNMAPPED: "no catalogue entry",
}


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_verdicts(results: list[UnitResult], kpis: list[AreaKpi], period: str) -> None:
    print(f"Verdicts for {period} (local calendar)")
    header = (f"{'plant':<22} {'unit':<10} {'catalogue entry':<42} {'intensity':>10} "
              f"{'benchmark':>9} {'baseline':>8} {'unit':<16} {'gap %':>7} {'save tce':>9} "
              f"{'est %':>5} {'data %':>6}  status")
    print(header)
    print("-" * len(header))
    ordered = sorted(results, key=lambda r: (r.plant, r.unit))
    for r in ordered:
        entry = f"{r.catalogue_key or '-'}" + (f" ({r.edition})" if r.edition else "")
        print(f"{r.plant:<22} {r.unit:<10} {entry:<42} {_num(r.intensity):>10} "
              f"{_num(r.benchmark):>9} {_num(r.baseline):>8} {r.intensity_unit or '-':<16} "
              f"{_num(r.gap_to_benchmark_pct):>7} {_num(r.saving_potential_tce):>9} "
              f"{r.estimated_share * 100:>5.1f} {r.completeness * 100:>6.1f}  "
              f"{STATUS_TEXT[r.status]}")
    explained = [r for r in ordered if r.reasons or r.warnings]
    if explained:
        print()
        print("Why (data sufficiency: each energy meter >= 90 % complete, at most 10 % of "
              "energy and of output estimated):")
        for r in explained:
            for reason in r.reasons:
                print(f"  {r.plant}/{r.unit}: {reason.message}{_days(reason.days)}")
            for warning in r.warnings:
                print(f"  {r.plant}/{r.unit}: warning: {warning.message}")
    if kpis:
        print()
        print("Area KPIs: share of ALL registered capacity at benchmark (2025 target >= 30 %), "
              "below baseline (target 0 %), unknown (not judged)")
        for k in kpis:
            print(f"  {k.catalogue_key:<36} units {k.units:>2}  at benchmark "
                  f"{k.share_capacity_at_benchmark * 100:5.1f} %  below baseline "
                  f"{k.share_capacity_below_baseline * 100:5.1f} %  unknown "
                  f"{k.share_capacity_unknown * 100:5.1f} %  data "
                  f"{k.completeness * 100:5.1f} %")
    if results:
        versions = sorted({v for r in results for v in r.factor_versions})
        print()
        print(f"catalogue: {results[0].catalogue_version}; factors: {'; '.join(versions) or '-'}")


def _days(days: tuple[str, ...]) -> str:
    if not days:
        return ""
    shown = ", ".join(days[:5])
    return f" ({shown}{', ...' if len(days) > 5 else ''})"
