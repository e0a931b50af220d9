-- readings on plain PostgreSQL: declarative range partitioning by month of ts.
-- Monthly partitions are created ahead by energymon_ensure_partitions(); a DEFAULT partition
-- catches anything outside them so no reading is ever rejected for lack of a partition, and
-- energymon_ensure_partitions() moves such rows into their month when it creates it.
-- No foreign key to meters (see the TimescaleDB variant for why).

CREATE TABLE readings (
    meter_id  bigint           NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    quality   smallint         NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 3), -- good/estimated/suspect/missing
    PRIMARY KEY (meter_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE readings_default PARTITION OF readings DEFAULT;

CREATE FUNCTION energymon_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz;
    part_name   text;
    created     integer := 0;
BEGIN
    WHILE month_start < to_ts LOOP
        month_end := (month_start AT TIME ZONE 'UTC' + INTERVAL '1 month') AT TIME ZONE 'UTC';
        part_name := format('readings_%s', to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM'));
        IF to_regclass(part_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part_name);
            EXECUTE format(
                'WITH moved AS (DELETE FROM readings_default WHERE ts >= %L AND ts < %L RETURNING *) '
                'INSERT INTO %I SELECT * FROM moved', month_start, month_end, part_name);
            EXECUTE format('ALTER TABLE readings ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           part_name, month_start, month_end);
            created := created + 1;
        END IF;
        month_start := month_end;
    END LOOP;
    RETURN created;
END;
$$;

-- Five years back (history backfills) and two years ahead; `energymon migrate` extends ahead.
SELECT energymon_ensure_partitions(now() - INTERVAL '5 years', now() + INTERVAL '2 years');
