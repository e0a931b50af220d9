-- Declared data: integrity the database enforces whatever writes it (issue 13, review of 0031).
--
-- 1. Finite, plausible numbers. PostgreSQL sorts NaN above every number, so CHECK (x > 0)
--    alone admits 'NaN' (and 'Infinity'); an upper bound refuses both. The bounds mirror the
--    writer's (accounting/declared.py).
-- 2. Who and when cannot be chosen by the API role: for sessions of energymon_api,
--    entered_by and the log's actor come from the transaction-local setting energymon.actor
--    (made when the request's token is authenticated), entered_at and the log's time from
--    the transaction. (The API role could set energymon.actor itself, as it can its scope
--    settings: this guards against application mistakes, not a compromised API process.)
-- 3. No declared row without its log row: a deferred constraint trigger checks at commit, for
--    API sessions, that the transaction wrote a declared_input_log row of that kind and plant.
-- 4. Production records of a unit never overlap, whoever writes them.

ALTER TABLE meters ADD CONSTRAINT meters_multiplier_finite CHECK (multiplier <= 1e9);
ALTER TABLE meter_multipliers ADD CONSTRAINT meter_multipliers_finite
    CHECK (multiplier >= 1e-6 AND multiplier <= 1e9);
ALTER TABLE production_records ADD CONSTRAINT production_records_finite
    CHECK (quantity < 1e12);
ALTER TABLE measured_calorific_values ADD CONSTRAINT measured_calorific_values_finite
    CHECK (lhv_kj_per_unit < 1e9);
ALTER TABLE plant_grid_factors ADD CONSTRAINT plant_grid_factors_finite
    CHECK (kgco2_per_kwh < 2);
ALTER TABLE meter_replacements ADD CONSTRAINT meter_replacements_finite
    CHECK (old_final >= 0 AND old_final < 1e18 AND new_initial >= 0 AND new_initial < 1e18);

-- -- 2. who and when --------------------------------------------------------------------------
CREATE FUNCTION energymon_declared_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('energymon.actor', true), ''), 'api (no token)')
$$;

CREATE FUNCTION energymon_declared_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.entered_at := now();
    IF current_user = 'energymon_api' THEN
        NEW.entered_by := energymon_declared_actor();
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE declared_input_log ADD COLUMN txid bigint;

CREATE FUNCTION energymon_declared_log_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.at := now();
    NEW.txid := txid_current();
    IF current_user = 'energymon_api' THEN
        NEW.actor := energymon_declared_actor();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER declared_input_log_stamp BEFORE INSERT ON declared_input_log
    FOR EACH ROW EXECUTE FUNCTION energymon_declared_log_stamp();

-- -- 3. no declared row without its log row (API sessions) ----------------------------------
CREATE FUNCTION energymon_declared_logged() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    plant bigint;
BEGIN
    IF current_user <> 'energymon_api' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'production_records' THEN
        plant := (SELECT u.plant_id FROM production_units u WHERE u.id = NEW.unit_id);
    ELSIF TG_TABLE_NAME IN ('meter_replacements', 'meter_multipliers') THEN
        plant := (SELECT m.plant_id FROM meters m WHERE m.id = NEW.meter_id);
    ELSE
        plant := NEW.plant_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM declared_input_log l
                   WHERE l.txid = txid_current() AND l.kind = TG_ARGV[0]
                     AND l.plant_id = plant) THEN
        RAISE EXCEPTION 'a % of plant id % was written without its declared_input_log row',
            TG_ARGV[0], plant USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ARRAY['production_records', 'production_record'],
        ARRAY['measured_calorific_values', 'calorific_value'],
        ARRAY['meter_replacements', 'meter_replacement'],
        ARRAY['meter_multipliers', 'meter_multiplier'],
        ARRAY['plant_grid_factors', 'grid_factor']]
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION energymon_declared_stamp()',
                       spec[1] || '_stamp', spec[1]);
        EXECUTE format('CREATE CONSTRAINT TRIGGER %I AFTER INSERT OR UPDATE ON %I '
                       'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW '
                       'EXECUTE FUNCTION energymon_declared_logged(%L)',
                       spec[1] || '_logged', spec[1], spec[2]);
    END LOOP;
END
$$;

-- -- 4. production records of a unit never overlap ------------------------------------------
-- SECURITY DEFINER: the check must see every record of the unit, not only those visible to
-- the writer; an advisory lock per unit orders concurrent writers.
CREATE FUNCTION energymon_production_no_overlap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7315013, (NEW.unit_id % 2147483647)::integer);
    IF EXISTS (SELECT 1 FROM production_records r
               WHERE r.unit_id = NEW.unit_id AND r.id <> NEW.id
                 AND r.period_start < NEW.period_end AND NEW.period_start < r.period_end) THEN
        RAISE EXCEPTION 'production record % .. % of unit id % overlaps another record of the '
            'unit', NEW.period_start, NEW.period_end, NEW.unit_id
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION energymon_production_no_overlap() SET search_path = %I, '
                   'pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION energymon_production_no_overlap() FROM PUBLIC;
CREATE TRIGGER production_records_no_overlap BEFORE INSERT OR UPDATE ON production_records
    FOR EACH ROW EXECUTE FUNCTION energymon_production_no_overlap();
