-- API authentication and the row-level-security backstop under the API (issue 7).
--
-- api_tokens: bearer tokens of the HTTP API. A token is 32 random bytes (base64url, prefixed
-- "emk_"); only the SHA-256 of the whole token string is stored. A fast hash is the right
-- tool here: the secret has 256 bits of entropy, so there is nothing to brute-force that a
-- slow password hash (bcrypt, argon2) would protect, and lookups stay one index probe.
-- A token carries a role (plant, regulator, auditor, admin) and a scope: one plant
-- (role plant), a region code whose subtree it covers (regulator; optional for auditor), or
-- nothing = everything (admin; auditor without a region).
--
-- energymon_api: a NOLOGIN role the API switches to with SET ROLE on every pooled
-- connection. It is neither owner nor superuser, so row-level security applies to it: for
-- every request, energymon_api_authenticate() below sets, transaction-locally,
--   energymon.scope_all    'on' when the principal sees every plant (admin, auditor w/o region)
--   energymon.scope_plants comma list of the plant ids the principal may see
--   energymon.scope_write  'on' for registry writes (admin)
-- and the policies below admit only rows of those plants, even if an application check is
-- skipped. The table owner (migrations, ingest, accounting, CLI) is not subject to these
-- policies (no FORCE ROW LEVEL SECURITY). Any OTHER non-owner role reading these tables now
-- sees no rows until it gets a policy of its own (RLS denies by default).
--
-- TimescaleDB: continuous aggregates (the rollups energy_by_meter_{hour,day,month}) and the
-- compressed readings hypertable cannot carry policies; the API role reads them through
-- scoped views instead (see "Tables keyed by meter" below). On plain PostgreSQL every one of
-- them is a table with a policy.

CREATE TABLE api_tokens (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    secret_sha256      bytea NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    role               text NOT NULL CHECK (role IN ('plant', 'regulator', 'auditor', 'admin')),
    scope_plant_id     bigint REFERENCES plants (id) ON DELETE CASCADE,
    scope_region_code  text REFERENCES regions (code),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    revoked_at         timestamptz,
    last_used_at       timestamptz,
    CHECK (scope_plant_id IS NULL OR scope_region_code IS NULL),
    CHECK ((role = 'plant') = (scope_plant_id IS NOT NULL)),
    CHECK (role <> 'regulator' OR scope_region_code IS NOT NULL),
    CHECK (role <> 'admin' OR scope_region_code IS NULL)
);

-- Roles are cluster-wide: create it once, tolerate other databases having done so. The
-- migrating role needs CREATEROLE the first time (or an operator creates energymon_api
-- beforehand, NOLOGIN, and grants it to the login role).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'energymon_api') THEN
        BEGIN
            CREATE ROLE energymon_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by the migration of another database
        END;
    END IF;
    -- the role the API logs in as (the owner that migrates) must be able to SET ROLE to it
    IF NOT pg_has_role(current_user, 'energymon_api', 'MEMBER') THEN
        EXECUTE format('GRANT energymon_api TO %I', current_user);
    END IF;
END
$$;

-- Scope of the current request (transaction-local settings made by the API).
CREATE FUNCTION energymon_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('energymon.scope_all', true), '') = 'on'
$$;

CREATE FUNCTION energymon_scope_write() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('energymon.scope_write', true), '') = 'on'
$$;

CREATE FUNCTION energymon_scope_plants() RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting('energymon.scope_plants', true), ''),
                                    ',')::bigint[], '{}'::bigint[])
$$;

-- Authentication without read access to api_tokens: the API role may only call this, once
-- per request, in the request's transaction. For an active token it also sets the request's
-- scope (the energymon.scope_* settings above, transaction-local), so authentication and scope
-- cost one round trip. Returns nothing for an unknown hash; the caller tells revoked and
-- expired tokens apart (no scope is set for them). plant_ids is NULL when the token sees
-- every plant. (The settings guard against a missing check in the application, not against
-- a compromised API process, which could set them itself.)
CREATE FUNCTION energymon_api_authenticate(secret_hash bytea)
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

-- SECURITY DEFINER functions must not resolve names through a schema the caller controls.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION energymon_api_authenticate(bytea) SET search_path = %I, '
                   'pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION energymon_api_authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION energymon_api_authenticate(bytea) TO energymon_api;

-- What the API role may read and write. No access to api_tokens, accounting_dirty, or the
-- per-unit/plant/region views (owner-rights views would bypass the policies).
GRANT SELECT ON regions, plants, production_units, meters, readings, energy_intervals,
    energy_by_meter_hour, energy_by_meter_day, energy_by_meter_month, dead_letters,
    reading_conflicts, production_records, measured_calorific_values, meter_replacements,
    factor_sets, energymon_meta, schema_migrations TO energymon_api;
-- registry writes (admin tokens; the policies below also require energymon.scope_write)
GRANT INSERT, UPDATE ON plants, production_units, meters TO energymon_api;

-- Policies. "(SELECT f())" makes each scope function an init plan evaluated once per query.
ALTER TABLE plants ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON plants FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR id = ANY ((SELECT energymon_scope_plants())::bigint[]));
CREATE POLICY api_insert ON plants FOR INSERT TO energymon_api
    WITH CHECK ((SELECT energymon_scope_write()));
CREATE POLICY api_update ON plants FOR UPDATE TO energymon_api
    USING ((SELECT energymon_scope_write())) WITH CHECK ((SELECT energymon_scope_write()));

ALTER TABLE production_units ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON production_units FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));
CREATE POLICY api_insert ON production_units FOR INSERT TO energymon_api
    WITH CHECK ((SELECT energymon_scope_write()));
CREATE POLICY api_update ON production_units FOR UPDATE TO energymon_api
    USING ((SELECT energymon_scope_write())) WITH CHECK ((SELECT energymon_scope_write()));

ALTER TABLE meters ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON meters FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));
CREATE POLICY api_insert ON meters FOR INSERT TO energymon_api
    WITH CHECK ((SELECT energymon_scope_write()));
CREATE POLICY api_update ON meters FOR UPDATE TO energymon_api
    USING ((SELECT energymon_scope_write())) WITH CHECK ((SELECT energymon_scope_write()));

ALTER TABLE measured_calorific_values ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON measured_calorific_values FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));

ALTER TABLE production_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON production_records FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR unit_id IN (
        SELECT u.id FROM production_units u
        WHERE u.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[])));

ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON dead_letters FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all()) OR plant_code IN (
        SELECT p.code FROM plants p WHERE p.id = ANY ((SELECT energymon_scope_plants())::bigint[])));

-- Tables keyed by meter: a row is visible when its meter belongs to a plant in scope (a
-- hashed sub-plan: the scope's meter ids are collected once per query). Where a relation
-- cannot carry policies (TimescaleDB: continuous aggregates, and the compressed readings
-- hypertable), the API role loses direct access to it and reads it instead through an
-- owner-rights security-barrier view of the same name in the schema energymon_scoped,
-- which applies the same scope filter; the API puts energymon_scoped first on its
-- search_path, so the same unqualified SQL works on both backends and a schema-qualified
-- query of the raw relation fails with "permission denied" instead of leaking rows.
CREATE SCHEMA energymon_scoped;
GRANT USAGE ON SCHEMA energymon_scoped TO energymon_api;

DO $$
DECLARE
    tbl    text;
    filter constant text :=
        '(SELECT energymon_scope_all()) OR meter_id IN (SELECT m.id FROM %I.meters m '
        'WHERE m.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]))';
    kind   "char";
    done   boolean;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['readings', 'energy_intervals', 'reading_conflicts',
                               'meter_replacements', 'energy_by_meter_hour',
                               'energy_by_meter_day', 'energy_by_meter_month']
    LOOP
        kind := (SELECT relkind FROM pg_class WHERE oid = to_regclass(tbl));
        done := false;
        IF kind IN ('r', 'p') THEN
            BEGIN
                EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
                EXECUTE format('CREATE POLICY api_read ON %I FOR SELECT TO energymon_api '
                               'USING (' || filter || ')', tbl, current_schema());
                done := true;
            EXCEPTION WHEN feature_not_supported THEN
                done := false;  -- e.g. a hypertable with compression enabled
            END;
        END IF;
        IF NOT done THEN
            EXECUTE format('CREATE VIEW energymon_scoped.%I WITH (security_barrier) AS '
                           'SELECT * FROM %I.%I WHERE ' || filter,
                           tbl, current_schema(), tbl, current_schema());
            EXECUTE format('REVOKE ALL ON %I FROM energymon_api', tbl);
            EXECUTE format('GRANT SELECT ON energymon_scoped.%I TO energymon_api', tbl);
        END IF;
    END LOOP;
END
$$;
