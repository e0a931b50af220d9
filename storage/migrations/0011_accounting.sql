-- Accounting bookkeeping shared by both backends: factor sets, the recompute queue, declared
-- production, and rollups per unit, plant and region built on the per-meter rollups.

CREATE TABLE factor_sets (
    id                      smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    standard_coal_version   text NOT NULL,
    emission_version        text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (standard_coal_version, emission_version)
);

-- Ranges of readings that changed and whose intervals must be recomputed. Writers (ingest,
-- backfill) call energymon_mark_dirty() in the transaction that stores the readings.
CREATE TABLE accounting_dirty (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id   bigint NOT NULL,
    from_ts    timestamptz NOT NULL,
    to_ts      timestamptz NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounting_dirty_meter_idx ON accounting_dirty (meter_id);

CREATE FUNCTION energymon_mark_dirty(meter_ids bigint[], from_ts timestamptz[],
                                     to_ts timestamptz[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO accounting_dirty (meter_id, from_ts, to_ts)
    SELECT * FROM unnest(meter_ids, from_ts, to_ts);
$$;

-- Declared production (when a unit has no production meter), in the unit's product unit.
CREATE TABLE production_records (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id       bigint NOT NULL REFERENCES production_units (id) ON DELETE CASCADE,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL CHECK (period_end > period_start),
    quantity      double precision NOT NULL CHECK (quantity >= 0),
    source        text NOT NULL,
    declared_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (unit_id, period_start, period_end)
);

-- Measured calorific values declared by a plant (override GB/T 2589 defaults).
CREATE TABLE measured_calorific_values (
    plant_id          bigint NOT NULL REFERENCES plants (id) ON DELETE CASCADE,
    energy_type       text NOT NULL,
    lhv_kj_per_unit   double precision NOT NULL CHECK (lhv_kj_per_unit > 0),
    valid_from        timestamptz NOT NULL,
    source            text NOT NULL,
    PRIMARY KEY (plant_id, energy_type, valid_from)
);

-- Per-unit / per-plant / per-region rollups by energy type. net_* = consumed - exported.
CREATE VIEW energy_by_unit_day AS
SELECT m.unit_id, r.bucket, m.energy_type,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'consumed') AS consumed,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'exported') AS exported,
       sum(CASE WHEN m.direction = 'exported' THEN -r.kgce ELSE r.kgce END) AS net_kgce,
       sum(CASE WHEN m.direction = 'exported' THEN -r.co2_kg ELSE r.co2_kg END) AS net_co2_kg,
       sum(r.quantity) FILTER (WHERE m.kind = 'production') AS output,
       sum(r.estimated * coalesce(r.kgce / nullif(r.quantity, 0), 0)) AS estimated_kgce,
       sum(r.readings) AS readings
FROM energy_by_meter_day r JOIN meters m ON m.id = r.meter_id
WHERE m.unit_id IS NOT NULL
GROUP BY m.unit_id, r.bucket, m.energy_type;

CREATE VIEW energy_by_unit_month AS
SELECT m.unit_id, r.bucket, m.energy_type,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'consumed') AS consumed,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'exported') AS exported,
       sum(CASE WHEN m.direction = 'exported' THEN -r.kgce ELSE r.kgce END) AS net_kgce,
       sum(CASE WHEN m.direction = 'exported' THEN -r.co2_kg ELSE r.co2_kg END) AS net_co2_kg,
       sum(r.quantity) FILTER (WHERE m.kind = 'production') AS output,
       sum(r.estimated * coalesce(r.kgce / nullif(r.quantity, 0), 0)) AS estimated_kgce,
       sum(r.readings) AS readings
FROM energy_by_meter_month r JOIN meters m ON m.id = r.meter_id
WHERE m.unit_id IS NOT NULL
GROUP BY m.unit_id, r.bucket, m.energy_type;

CREATE VIEW energy_by_plant_day AS
SELECT m.plant_id, r.bucket, m.energy_type,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'consumed') AS consumed,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'exported') AS exported,
       sum(CASE WHEN m.direction = 'exported' THEN -r.kgce ELSE r.kgce END) AS net_kgce,
       sum(CASE WHEN m.direction = 'exported' THEN -r.co2_kg ELSE r.co2_kg END) AS net_co2_kg,
       sum(r.readings) AS readings
FROM energy_by_meter_day r JOIN meters m ON m.id = r.meter_id
GROUP BY m.plant_id, r.bucket, m.energy_type;

CREATE VIEW energy_by_plant_month AS
SELECT m.plant_id, r.bucket, m.energy_type,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'consumed') AS consumed,
       sum(r.quantity) FILTER (WHERE m.kind <> 'production' AND m.direction = 'exported') AS exported,
       sum(CASE WHEN m.direction = 'exported' THEN -r.kgce ELSE r.kgce END) AS net_kgce,
       sum(CASE WHEN m.direction = 'exported' THEN -r.co2_kg ELSE r.co2_kg END) AS net_co2_kg,
       sum(r.readings) AS readings
FROM energy_by_meter_month r JOIN meters m ON m.id = r.meter_id
GROUP BY m.plant_id, r.bucket, m.energy_type;

-- region = the plant's own (county) region; higher levels aggregate through regions.parent_code
CREATE VIEW energy_by_region_month AS
SELECT p.region_code, r.bucket, r.energy_type,
       sum(r.consumed) AS consumed, sum(r.exported) AS exported,
       sum(r.net_kgce) AS net_kgce, sum(r.net_co2_kg) AS net_co2_kg, sum(r.readings) AS readings
FROM energy_by_plant_month r JOIN plants p ON p.id = r.plant_id
GROUP BY p.region_code, r.bucket, r.energy_type;

CREATE VIEW energy_by_region_day AS
SELECT p.region_code, r.bucket, r.energy_type,
       sum(r.consumed) AS consumed, sum(r.exported) AS exported,
       sum(r.net_kgce) AS net_kgce, sum(r.net_co2_kg) AS net_co2_kg, sum(r.readings) AS readings
FROM energy_by_plant_day r JOIN plants p ON p.id = r.plant_id
GROUP BY p.region_code, r.bucket, r.energy_type;

-- Declared meter replacements / resets: the old register's final value and the new one's
-- initial value make the interval across the change exact instead of estimated.
CREATE TABLE meter_replacements (
    meter_id     bigint NOT NULL REFERENCES meters (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    old_final    double precision NOT NULL,
    new_initial  double precision NOT NULL,
    note         text,
    PRIMARY KEY (meter_id, ts)
);
