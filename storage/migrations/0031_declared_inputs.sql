-- Input paths for declared data (issue 13): production records, measured calorific values,
-- meter replacements, CT x PT multiplier changes and plant grid factors, written by the CLI
-- (the owner) and by the API (role energymon_api: plant tokens for their own plant, admin
-- tokens for any plant; regulators and auditors read only). The one writer is
-- accounting/declared.py; this migration adds what it writes and the database backstop under
-- the API:
--
--   entered_by / entered_at on the four existing tables (NULL on rows entered before),
--   meter_multipliers (the multiplier history of a meter),
--   declared_input_log (one row per write: who, when, key, old and new values),
--   energymon.scope_declare, a transaction-local setting made by energymon_api_authenticate
--     ('on' for plant and admin tokens), required by every write policy below,
--   energymon_api_queue_recompute(), the API's only way into accounting_dirty,
--   a trigger keeping meters.multiplier equal to the multiplier in force now.
--
-- All new relations are plain tables on both backends (TimescaleDB too), so they carry their
-- row-level-security policies directly; no view in energymon_scoped is needed.

-- -- who entered a row, and when ---------------------------------------------------------------
-- (the default is set after the column is added, so rows entered before keep NULL)
ALTER TABLE production_records ADD COLUMN entered_by text, ADD COLUMN entered_at timestamptz;
ALTER TABLE production_records ALTER COLUMN entered_at SET DEFAULT now();
ALTER TABLE measured_calorific_values ADD COLUMN entered_by text,
    ADD COLUMN entered_at timestamptz;
ALTER TABLE measured_calorific_values ALTER COLUMN entered_at SET DEFAULT now();
ALTER TABLE meter_replacements ADD COLUMN entered_by text, ADD COLUMN entered_at timestamptz;
ALTER TABLE meter_replacements ALTER COLUMN entered_at SET DEFAULT now();
ALTER TABLE plant_grid_factors ADD COLUMN entered_by text, ADD COLUMN entered_at timestamptz;
ALTER TABLE plant_grid_factors ALTER COLUMN entered_at SET DEFAULT now();

-- -- CT x PT multiplier history -----------------------------------------------------------------
-- The multiplier in force at time t is the row with the greatest valid_from <= t. The first
-- declared change of a meter also stores a base row valid_from = '-infinity' with the
-- registry's multiplier of that moment (source 'registry'), so history before the change
-- keeps the old ratio. meters.multiplier follows the multiplier in force now (trigger below).
CREATE TABLE meter_multipliers (
    meter_id    bigint NOT NULL REFERENCES meters (id) ON DELETE CASCADE,
    valid_from  timestamptz NOT NULL,
    multiplier  numeric NOT NULL CHECK (multiplier > 0),
    source      text NOT NULL,
    entered_by  text NOT NULL,
    entered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, valid_from)
);

-- -- the audit log of declared data ---------------------------------------------------------------
-- kind: production_record | calorific_value | meter_replacement | meter_multiplier |
-- grid_factor; key: the row's natural key (codes, not ids); old: the replaced values (action
-- 'replace'); new: the values written. No foreign key: the log outlives deleted plants.
CREATE TABLE declared_input_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    plant_id  bigint,
    kind      text NOT NULL,
    action    text NOT NULL CHECK (action IN ('insert', 'replace')),
    key       jsonb NOT NULL,
    old       jsonb,
    new       jsonb NOT NULL
);
CREATE INDEX declared_input_log_plant_idx ON declared_input_log (plant_id, at);

-- -- the declare scope -----------------------------------------------------------------------------
CREATE FUNCTION energymon_scope_declare() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('energymon.scope_declare', true), '') = 'on'
$$;

-- energymon_api_authenticate of migration 0020, unchanged except that it also sets
-- energymon.scope_declare: 'on' for plant and admin tokens (declared-data writes), else 'off'.
CREATE OR REPLACE FUNCTION energymon_api_authenticate(secret_hash bytea)
RETURNS TABLE (token_id bigint, token_name text, token_role text, scope_plant text,
               scope_region text, plant_ids bigint[], expires_at timestamptz,
               revoked_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    t   api_tokens%ROWTYPE;
    ids bigint[];
BEGIN
    SELECT * INTO t FROM api_tokens WHERE secret_sha256 = secret_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF t.scope_plant_id IS NOT NULL THEN
        ids := ARRAY[t.scope_plant_id];
    ELSIF t.scope_region_code IS NOT NULL THEN
        WITH RECURSIVE subtree AS (
            SELECT code FROM regions WHERE code = t.scope_region_code
            UNION ALL
            SELECT r.code FROM regions r JOIN subtree s ON r.parent_code = s.code
        )
        SELECT coalesce(array_agg(p.id ORDER BY p.id), '{}'::bigint[]) INTO ids
        FROM plants p WHERE p.region_code IN (SELECT code FROM subtree);
    END IF;
    IF t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) THEN
        PERFORM set_config('energymon.scope_all',
                           CASE WHEN t.scope_plant_id IS NULL AND t.scope_region_code IS NULL
                                THEN 'on' ELSE 'off' END, true);
        PERFORM set_config('energymon.scope_plants', coalesce(array_to_string(ids, ','), ''),
                           true);
        PERFORM set_config('energymon.scope_write',
                           CASE WHEN t.role = 'admin' THEN 'on' ELSE 'off' END, true);
        PERFORM set_config('energymon.scope_declare',
                           CASE WHEN t.role IN ('plant', 'admin') THEN 'on' ELSE 'off' END,
                           true);
        IF t.last_used_at IS NULL OR t.last_used_at < now() - INTERVAL '1 minute' THEN
            -- at most once a minute, never waiting for a concurrent request of the same token
            UPDATE api_tokens SET last_used_at = now()
            WHERE id IN (SELECT id FROM api_tokens WHERE id = t.id FOR UPDATE SKIP LOCKED);
        END IF;
    END IF;
    RETURN QUERY SELECT t.id, t.name, t.role,
                        (SELECT p.code FROM plants p WHERE p.id = t.scope_plant_id),
                        t.scope_region_code,
                        CASE WHEN t.scope_plant_id IS NULL AND t.scope_region_code IS NULL
                             THEN NULL ELSE ids END,
                        t.expires_at, t.revoked_at;
END
$$;

-- CREATE OR REPLACE resets the function's SET clauses: pin the search path again (as 0020).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION energymon_api_authenticate(bytea) SET search_path = %I, '
                   'pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION energymon_api_authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION energymon_api_authenticate(bytea) TO energymon_api;

-- -- the recompute queue for the API -------------------------------------------------------------
-- The API role has no access to accounting_dirty. This function queues (meter, from, to)
-- ranges for it, and only for meters of plants in the caller's scope with declare on: it
-- refuses the whole call otherwise (nothing queued), so a declared write and its recompute
-- stay one transaction that either happens whole or not at all. Returns the ranges queued.
CREATE FUNCTION energymon_api_queue_recompute(meter_ids bigint[], from_ts timestamptz[],
                                              to_ts timestamptz[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n        integer := coalesce(cardinality(meter_ids), 0);
    foreign_ bigint;
BEGIN
    IF NOT energymon_scope_declare() THEN
        RAISE EXCEPTION 'recompute queue: this request may not declare data'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF n <> coalesce(cardinality(from_ts), 0) OR n <> coalesce(cardinality(to_ts), 0) THEN
        RAISE EXCEPTION 'recompute queue: meter_ids, from_ts and to_ts differ in length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    SELECT u.id INTO foreign_
    FROM unnest(meter_ids) AS u(id) LEFT JOIN meters m ON m.id = u.id
    WHERE u.id IS NULL OR m.id IS NULL
       OR NOT (energymon_scope_all() OR m.plant_id = ANY (energymon_scope_plants()))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'recompute queue: meter id % is not in this request''s scope', foreign_
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(from_ts, to_ts) AS r(lo, hi)
               WHERE lo IS NULL OR hi IS NULL OR hi < lo) THEN
        RAISE EXCEPTION 'recompute queue: every range needs from_ts <= to_ts'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO accounting_dirty (meter_id, from_ts, to_ts)
    SELECT * FROM unnest(meter_ids, from_ts, to_ts);
    RETURN n;
END
$$;

-- meters.multiplier = the multiplier in force now, whoever wrote meter_multipliers (the API
-- role may not update meters itself; the policies on meter_multipliers decide who may write
-- the history this follows).
CREATE FUNCTION energymon_meter_multiplier_follow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    current_ numeric;
BEGIN
    SELECT mm.multiplier INTO current_ FROM meter_multipliers mm
    WHERE mm.meter_id = NEW.meter_id AND mm.valid_from <= now()
    ORDER BY mm.valid_from DESC LIMIT 1;
    IF current_ IS NOT NULL THEN
        UPDATE meters SET multiplier = current_, updated_at = now()
        WHERE id = NEW.meter_id AND multiplier IS DISTINCT FROM current_;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER meter_multipliers_follow AFTER INSERT OR UPDATE ON meter_multipliers
    FOR EACH ROW EXECUTE FUNCTION energymon_meter_multiplier_follow();

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION energymon_api_queue_recompute(bigint[], timestamptz[], '
                   'timestamptz[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION energymon_meter_multiplier_follow() SET search_path = %I, '
                   'pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION energymon_api_queue_recompute(bigint[], timestamptz[], timestamptz[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION energymon_api_queue_recompute(bigint[], timestamptz[], timestamptz[])
    TO energymon_api;
REVOKE ALL ON FUNCTION energymon_meter_multiplier_follow() FROM PUBLIC;

-- -- what the API role may read and write ------------------------------------------------------
-- (SELECT on production_records, measured_calorific_values, meter_replacements: 0020)
GRANT SELECT ON plant_grid_factors, meter_multipliers, declared_input_log TO energymon_api;
GRANT INSERT, UPDATE ON production_records, measured_calorific_values, meter_replacements,
    plant_grid_factors, meter_multipliers TO energymon_api;
GRANT INSERT ON declared_input_log TO energymon_api;

-- Policies: reads within the scope (as 0020); inserts and updates only with
-- energymon.scope_declare on AND for a plant in scope. "(SELECT f())": one init plan per query.

-- keyed by plant
ALTER TABLE plant_grid_factors ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON plant_grid_factors FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));

ALTER TABLE declared_input_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON declared_input_log FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));
CREATE POLICY api_declare_insert ON declared_input_log FOR INSERT TO energymon_api
    WITH CHECK ((SELECT energymon_scope_declare()) AND ((SELECT energymon_scope_all())
                OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[])));

DO $$
DECLARE
    tbl    text;
    filter constant text :=
        '(SELECT energymon_scope_declare()) AND ((SELECT energymon_scope_all()) '
        'OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]))';
BEGIN
    FOREACH tbl IN ARRAY ARRAY['measured_calorific_values', 'plant_grid_factors']
    LOOP
        EXECUTE format('CREATE POLICY api_declare_insert ON %I FOR INSERT TO energymon_api '
                       'WITH CHECK (' || filter || ')', tbl);
        EXECUTE format('CREATE POLICY api_declare_update ON %I FOR UPDATE TO energymon_api '
                       'USING (' || filter || ') WITH CHECK (' || filter || ')', tbl);
    END LOOP;
END
$$;

-- keyed by production unit
DO $$
DECLARE
    filter constant text :=
        '(SELECT energymon_scope_declare()) AND unit_id IN (SELECT u.id FROM '
        '%I.production_units u WHERE (SELECT energymon_scope_all()) '
        'OR u.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]))';
BEGIN
    EXECUTE format('CREATE POLICY api_declare_insert ON production_records FOR INSERT '
                   'TO energymon_api WITH CHECK (' || filter || ')', current_schema());
    EXECUTE format('CREATE POLICY api_declare_update ON production_records FOR UPDATE '
                   'TO energymon_api USING (' || filter || ') WITH CHECK (' || filter || ')',
                   current_schema(), current_schema());
END
$$;

-- keyed by meter (meter_replacements has row-level security since 0020, on both backends: it
-- is a plain table)
ALTER TABLE meter_multipliers ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON meter_multipliers FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR meter_id IN (
        SELECT m.id FROM meters m
        WHERE m.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[])));

DO $$
DECLARE
    tbl    text;
    filter constant text :=
        '(SELECT energymon_scope_declare()) AND meter_id IN (SELECT m.id FROM %I.meters m '
        'WHERE (SELECT energymon_scope_all()) '
        'OR m.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]))';
BEGIN
    IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass('meter_replacements'))
    THEN
        RAISE EXCEPTION 'meter_replacements has no row-level security (migration 0020)';
    END IF;
    FOREACH tbl IN ARRAY ARRAY['meter_replacements', 'meter_multipliers']
    LOOP
        EXECUTE format('CREATE POLICY api_declare_insert ON %I FOR INSERT TO energymon_api '
                       'WITH CHECK (' || filter || ')', tbl, current_schema());
        EXECUTE format('CREATE POLICY api_declare_update ON %I FOR UPDATE TO energymon_api '
                       'USING (' || filter || ') WITH CHECK (' || filter || ')',
                       tbl, current_schema(), current_schema());
    END LOOP;
END
$$;
