"""Backfill through the bulk path into a real PostgreSQL, checked against the ground truth."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from app.cli import main
from fleet import load_fleet
from fleet.registry import load_registry
from simulators.backfill import RegistryMissing, backfill_copy, delivered
from simulators.model import STEP_S
from simulators.truth import compute_truth, read_truth_csv
from tests.sim_support import NOON, example_model

END = NOON
K1 = int(END.timestamp() // STEP_S)
K0 = K1 - 96 * 2


@pytest.fixture
def registered_db(migrated_db: str, example_fleet_path: Path) -> str:
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, load_fleet(example_fleet_path))
    return migrated_db


def _stored(url: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.code, m.code, extract(epoch FROM r.ts)::float8, r.value "
            "FROM readings r JOIN meters m ON m.id = r.meter_id "
            "JOIN plants p ON p.id = m.plant_id ORDER BY 1, 2, 3").fetchall()
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for plant, meter, ts, value in rows:
        out.setdefault((plant, meter), []).append((ts, value))
    return out


def test_bulk_backfill_equals_the_ground_truth(registered_db: str) -> None:
    m = example_model()
    result = backfill_copy(m, registered_db, K0, K1, progress=True, stream=io.StringIO())
    meters = sum(len(p.meters) for p in m.plants.values())
    assert result.rows == meters * (K1 - K0)
    assert result.dropped > 0 and result.inserted == result.rows - result.dropped
    stored = _stored(registered_db)
    truth = compute_truth(m, K0 - 1, K1 - 1)        # readings at the ends = boundaries K0..K1-1
    for (plant, meter), mt in truth.meters.items():
        mm = m.meter(plant, meter)
        ok = delivered(mm, K0, K1)
        expected = [((K0 + i) * STEP_S, float(mt.reading[i])) for i in range(K1 - K0) if ok[i]]
        assert stored[plant, meter] == expected, meter
    # what the platform will compute: counter deltas x multiplier = true energy
    k1_elec = stored["jx-yujiang-cement", "k1-elec"]
    values = np.array([v for _, v in k1_elec])
    energy = np.diff(values).sum() * m.meter("jx-yujiang-cement", "k1-elec").multiplier
    assert energy == pytest.approx(truth.meters["jx-yujiang-cement", "k1-elec"].quantity[1:].sum(),
                                   rel=1e-9)
    # running it again stores nothing twice
    again = backfill_copy(m, registered_db, K0, K1, progress=False)
    assert again.inserted == 0


def test_backfill_needs_the_registry(migrated_db: str) -> None:
    with pytest.raises(RegistryMissing, match="registry load"):
        backfill_copy(example_model(), migrated_db, K0, K0 + 4, progress=False)


def test_cli_backfill_writes_history_and_truth(registered_db: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", registered_db)
    truth_file = tmp_path / "truth.csv"
    end = END.astimezone().isoformat()
    code = main(["simulate", "backfill", "--days", "0.5", "--end", end, "--no-progress",
                 "--no-faults", "--truth", str(truth_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "readings generated" in out and "0 left out by faults" in out
    with psycopg.connect(registered_db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert count == 30 * 48
    rows = read_truth_csv(truth_file)
    energy = [r for r in rows if r["meter"] == "k1-elec" and r["quantity"] == "energy"]
    assert len(energy) == 48
    start = datetime.fromisoformat(energy[0]["interval_start"])
    assert start == END - timedelta(hours=12) and start.utcoffset() == timedelta(hours=8)
    units = {r["unit"] for r in rows if r["quantity"] == "net_kgce" and r["unit"]}
    assert len(units) == 9
