"""The TimescaleDB code path (skips with a reason where the extension is absent)."""

import psycopg
import pytest

from storage.migrate import Backend, migrate

pytestmark = pytest.mark.timescale


def test_migrations_create_a_compressed_hypertable(timescale_db: str) -> None:
    result = migrate(timescale_db)
    assert result.backend is Backend.TIMESCALEDB
    with psycopg.connect(timescale_db) as conn:
        row = conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
            " ORDER BY 1").fetchall()
        assert row == [("energy_intervals", False), ("readings", True)]
        dims = conn.execute(
            "SELECT column_name, time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'readings'").fetchall()
        assert [d[0] for d in dims] == ["ts"]
        segmentby = conn.execute(
            "SELECT attname FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'readings' AND segmentby_column_index IS NOT NULL"
        ).fetchall()
        assert segmentby == [("meter_id",)]
        jobs = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'readings'").fetchall()
        assert ("policy_compression",) in jobs
        # not a natively partitioned table on this backend
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings'"
                            ).fetchone() == ("r",)


def test_unique_key_holds_on_compressed_chunks(timescale_db: str) -> None:
    migrate(timescale_db)
    with psycopg.connect(timescale_db, autocommit=True) as conn:
        conn.execute("INSERT INTO readings SELECT 1, ts, 1.0, 0 FROM generate_series("
                     "'2025-01-01Z'::timestamptz, '2025-01-03Z', interval '15 minutes') ts")
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'readings' AND is_compressed").fetchone()[0]
        assert compressed >= 1
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO readings VALUES (1, '2025-01-02T00:00:00Z', 5.0, 0)")
        assert migrate(timescale_db).applied == []
