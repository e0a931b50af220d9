-- energymon:no-transaction
-- Interval energy per meter per aligned interval, and its rollups (TimescaleDB): a hypertable
-- and continuous aggregates on the local calendar {{calendar_tz}}, refreshed by accounting for
-- the ranges it recomputes (and real-time for the newest data).

CREATE TABLE IF NOT EXISTS energy_intervals (
    meter_id    bigint           NOT NULL,
    ts          timestamptz      NOT NULL,
    quantity    double precision NOT NULL,
    estimated   double precision NOT NULL DEFAULT 0,
    kgce        double precision,
    co2_kg      double precision,
    readings    integer          NOT NULL DEFAULT 0,
    factor_set  smallint         NOT NULL,
    PRIMARY KEY (meter_id, ts)
);
SELECT create_hypertable('energy_intervals', by_range('ts', INTERVAL '30 days'),
                         if_not_exists => true);

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_by_meter_hour
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, time_bucket(INTERVAL '1 hour', ts, {{calendar_tz}}) AS bucket,
       sum(quantity) AS quantity, sum(estimated) AS estimated, sum(kgce) AS kgce,
       sum(co2_kg) AS co2_kg, sum(readings)::bigint AS readings, count(*) AS intervals,
       min(factor_set) AS factor_set_min, max(factor_set) AS factor_set_max
FROM energy_intervals GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_by_meter_day
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, time_bucket(INTERVAL '1 day', ts, {{calendar_tz}}) AS bucket,
       sum(quantity) AS quantity, sum(estimated) AS estimated, sum(kgce) AS kgce,
       sum(co2_kg) AS co2_kg, sum(readings)::bigint AS readings, count(*) AS intervals,
       min(factor_set) AS factor_set_min, max(factor_set) AS factor_set_max
FROM energy_intervals GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_by_meter_month
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, time_bucket(INTERVAL '1 month', ts, {{calendar_tz}}) AS bucket,
       sum(quantity) AS quantity, sum(estimated) AS estimated, sum(kgce) AS kgce,
       sum(co2_kg) AS co2_kg, sum(readings)::bigint AS readings, count(*) AS intervals,
       min(factor_set) AS factor_set_min, max(factor_set) AS factor_set_max
FROM energy_intervals GROUP BY 1, 2 WITH NO DATA;
