"""End to end against the simulators' ground truth: backfill a week of the example fleet,
run accounting, compare each unit's intensity and verdict with what the simulator generated.

Stated tolerance: without protocol faults the platform's intensity equals the truth to
0.1 % (the remaining differences come from the declared register faults, e.g. a spike run at
a window edge); with the fleet's declared faults (missed polls, undeclared resets, stuck
values, spikes) within 0.5 %, and every verdict is the true one.
"""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from accounting.periods import Period
from accounting.store import Accountant
from accounting.verdicts import unit_results
from fleet import load_fleet
from fleet.registry import load_registry
from simulators.backfill import backfill_copy
from simulators.model import FleetModel
from simulators.truth import compute_truth, summarise

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=SH)
END = datetime(2026, 10, 8, tzinfo=SH)


@pytest.mark.parametrize(("faults", "tolerance"), [(False, 1e-3), (True, 5e-3)])
def test_platform_matches_ground_truth(migrated_db: str, example_fleet_path: Path,
                                       faults: bool, tolerance: float) -> None:
    fleet = load_fleet(example_fleet_path)
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, fleet)
    model = FleetModel(fleet)
    k0, k1 = int(START.timestamp()) // 900, int(END.timestamp()) // 900
    backfill_copy(model, migrated_db, k0, k1 + 1, faults=faults, progress=False)
    Accountant(migrated_db).recompute()
    truth = {(s.plant, s.unit): s for s in summarise(compute_truth(model, k0, k1))}
    with psycopg.connect(migrated_db) as conn:
        results = unit_results(conn, Period("week", "custom", START, END))
    assert len(results) == len(truth) == 9
    statuses = set()
    for r in results:
        t = truth[r.plant, r.unit]
        assert r.output == pytest.approx(t.output, rel=1e-9), (r.plant, r.unit)
        assert r.intensity == pytest.approx(t.intensity, rel=tolerance), (r.plant, r.unit)
        assert r.status == t.status, (r.plant, r.unit)
        statuses.add(r.status)
    assert statuses == {"at_benchmark", "below_benchmark", "below_baseline"}


def test_incremental_recompute_equals_full_recompute(migrated_db: str,
                                                      example_fleet_path: Path) -> None:
    """Recomputing a queued range in the middle of the data changes nothing that a full
    recompute would not give (context padding and edge rules of accounting.store)."""
    from datetime import timedelta

    from storage.dirty import mark_dirty

    fleet = load_fleet(example_fleet_path)
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, fleet)
    model = FleetModel(fleet)
    k0, k1 = int(START.timestamp()) // 900, int(END.timestamp()) // 900
    backfill_copy(model, migrated_db, k0, k1 + 1, faults=True, progress=False)
    accountant = Accountant(migrated_db)
    accountant.recompute()
    query = "SELECT meter_id, ts, quantity, estimated, kgce FROM energy_intervals ORDER BY 1, 2"
    with psycopg.connect(migrated_db) as conn:
        full = conn.execute(query).fetchall()
        ids = [r[0] for r in conn.execute("SELECT id FROM meters")]
        for offset in (timedelta(hours=5), timedelta(days=2, hours=3), timedelta(days=6)):
            lo = START + offset
            mark_dirty(conn, [(m, lo, lo + timedelta(hours=1)) for m in ids])
    accountant.process_dirty()
    with psycopg.connect(migrated_db) as conn:
        again = conn.execute(query).fetchall()
    assert len(again) == len(full)
    for a, b in zip(full, again, strict=True):
        assert a[:2] == b[:2]
        for x, y in zip(a[2:], b[2:], strict=True):
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9, abs=1e-9)
