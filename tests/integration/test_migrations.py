import threading

import psycopg
import pytest

from storage.migrate import (
    Backend,
    MigrationError,
    available_migrations,
    migrate,
    schema_status,
)

REGISTRY_TABLES = {"regions", "plants", "production_units", "meters", "readings",
                   "dead_letters", "reading_conflicts", "schema_migrations", "energymon_meta"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_migrate_from_empty_then_rerun_is_a_no_op(fresh_db: str) -> None:
    first = migrate(fresh_db)
    assert first.backend is Backend.POSTGRES  # the embedded server has no TimescaleDB
    assert first.applied == [f"{m.version:04d}_{m.name}"
                             for m in available_migrations(Backend.POSTGRES)]
    assert REGISTRY_TABLES <= tables(fresh_db)
    second = migrate(fresh_db)
    assert second.applied == [] and second.already == len(first.applied)
    assert schema_status(fresh_db)["pending"] == []


def test_plain_postgres_readings_is_range_partitioned_by_month(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        kind, strategy = conn.execute(
            "SELECT c.relkind, p.partstrat FROM pg_class c "
            "JOIN pg_partitioned_table p ON p.partrelid = c.oid WHERE c.relname = 'readings'"
        ).fetchone()
        assert (kind, strategy) == ("p", "r")
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass")}
        assert "readings_default" in parts
        this_month = conn.execute(
            "SELECT 'readings_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')").fetchone()[0]
        assert this_month in parts


def test_reading_outside_partitions_is_kept_and_moved(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        conn.execute("INSERT INTO readings VALUES (1, '2012-03-04T05:00:00Z', 42.0, 0)")
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone()[0] == 1
        created = conn.execute("SELECT energymon_ensure_partitions("
                               "'2012-03-01Z', '2012-04-01Z')").fetchone()[0]
        assert created == 1
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone()[0] == 0
        assert conn.execute("SELECT value FROM readings_201203").fetchone()[0] == 42.0
        # the unique key holds across the move
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO readings VALUES (1, '2012-03-04T05:00:00Z', 1.0, 0)")


def test_edited_migration_is_detected(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(migrated_db)


def test_backend_cannot_switch_silently(migrated_db: str) -> None:
    with pytest.raises(MigrationError, match="migrated for backend 'postgres'"):
        migrate(migrated_db, backend="timescaledb")


def test_timescaledb_requested_but_absent_fails_clearly(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if available:
        pytest.skip("this server has TimescaleDB installed")
    with pytest.raises(MigrationError, match="not installed"):
        migrate(fresh_db, backend="timescaledb")


def test_concurrent_migrations_apply_once(fresh_db: str) -> None:
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(fresh_db))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = sorted(len(r.applied) for r in results)  # type: ignore[attr-defined]
    assert applied[:2] == [0, 0] and applied[2] == len(available_migrations(Backend.POSTGRES))


def test_readings_key_is_unique(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        conn.execute("INSERT INTO readings VALUES (7, now(), 1.0, 0)")
        conn.execute("INSERT INTO readings VALUES (7, now() - interval '15 minutes', 1.0, 0)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO readings VALUES (7, now(), 2.0, 0)")
