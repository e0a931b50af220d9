-- Interval energy per meter per aligned interval, and its rollups (plain PostgreSQL).
-- Rollup tables are maintained incrementally by energymon_refresh_rollups() for the meters and
-- time range that accounting recomputed; buckets follow the local calendar {{calendar_tz}}.

CREATE TABLE energy_intervals (
    meter_id    bigint           NOT NULL,
    ts          timestamptz      NOT NULL,  -- interval start
    quantity    double precision NOT NULL,  -- engineering unit x multiplier (kWh, t, m3, GJ, product)
    estimated   double precision NOT NULL DEFAULT 0,  -- part of quantity resting on estimation
    kgce        double precision,           -- standard coal (NULL for production meters)
    co2_kg      double precision,           -- CO2 (NULL for production meters)
    readings    integer          NOT NULL DEFAULT 0,  -- readings with ts in the interval
    factor_set  smallint         NOT NULL,
    PRIMARY KEY (meter_id, ts)
);
CREATE INDEX energy_intervals_ts_idx ON energy_intervals (ts);

CREATE TABLE energy_by_meter_hour (
    meter_id bigint NOT NULL, bucket timestamptz NOT NULL,
    quantity double precision NOT NULL, estimated double precision NOT NULL,
    kgce double precision, co2_kg double precision, readings bigint NOT NULL,
    intervals bigint NOT NULL,
    factor_set_min smallint NOT NULL, factor_set_max smallint NOT NULL,  -- provenance
    PRIMARY KEY (meter_id, bucket)
);
CREATE TABLE energy_by_meter_day (LIKE energy_by_meter_hour INCLUDING ALL);
CREATE TABLE energy_by_meter_month (LIKE energy_by_meter_hour INCLUDING ALL);

CREATE FUNCTION energymon_refresh_rollups(meter_ids bigint[], from_ts timestamptz,
                                          to_ts timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tz   constant text := {{calendar_tz}};
    spec record;
    lo   timestamptz;
    hi   timestamptz;
BEGIN
    FOR spec IN SELECT * FROM (VALUES ('hour', 'energy_by_meter_hour', INTERVAL '1 hour'),
                                      ('day', 'energy_by_meter_day', INTERVAL '1 day'),
                                      ('month', 'energy_by_meter_month', INTERVAL '1 month'))
                AS s(unit, tbl, step)
    LOOP
        lo := date_trunc(spec.unit, from_ts, tz);
        hi := date_trunc(spec.unit, to_ts, tz);
        IF hi < to_ts THEN
            hi := ((hi AT TIME ZONE tz) + spec.step) AT TIME ZONE tz;
        END IF;
        EXECUTE format('DELETE FROM %I WHERE meter_id = ANY($1) AND bucket >= $2 AND bucket < $3',
                       spec.tbl) USING meter_ids, lo, hi;
        EXECUTE format(
            'INSERT INTO %I (meter_id, bucket, quantity, estimated, kgce, co2_kg, readings, '
            '                intervals, factor_set_min, factor_set_max) '
            'SELECT meter_id, date_trunc(%L, ts, %L), sum(quantity), sum(estimated), sum(kgce), '
            '       sum(co2_kg), sum(readings), count(*), min(factor_set), max(factor_set) '
            'FROM energy_intervals WHERE meter_id = ANY($1) AND ts >= $2 AND ts < $3 '
            'GROUP BY 1, 2', spec.tbl, spec.unit, tz) USING meter_ids, lo, hi;
    END LOOP;
END;
$$;
