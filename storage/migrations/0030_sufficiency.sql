-- Data sufficiency and conversion issues (issue 13).
--
-- meters.removed_at: end of the meter's service (NULL = in service). Expected readings run
-- from installed_at (or the period start) to removed_at (or the period end, or now).
-- meters.rollover_step: one register step in the reading's unit; the counter's modulus is
-- rollover_max + rollover_step (the register shows rollover_max, then 0).
-- energy_intervals.conversion_issue: why kgce (prefix 'kgce:') or CO2 (prefix 'co2:') of the
-- interval could not be computed and is NULL (no coefficient, no measured calorific value,
-- no grid factor for that year ...). NULL = converted. Accounting never stops on such a
-- meter; verdicts read the issues to call its unit not evaluable.

ALTER TABLE meters ADD COLUMN removed_at timestamptz;
ALTER TABLE meters ADD CONSTRAINT meters_service_dates
    CHECK (removed_at IS NULL OR installed_at IS NULL OR removed_at > installed_at);
ALTER TABLE meters ADD COLUMN rollover_step numeric CHECK (rollover_step > 0);

ALTER TABLE energy_intervals ADD COLUMN conversion_issue text;
CREATE INDEX energy_intervals_issue_idx ON energy_intervals (meter_id, ts)
    WHERE conversion_issue IS NOT NULL;

-- Where the API role reads energy_intervals through a scoped view (TimescaleDB with
-- policies unsupported, see 0020), the view's column list was fixed when it was created:
-- recreate it so the new column is visible, with the same scope filter.
DO $$
BEGIN
    IF to_regclass('energymon_scoped.energy_intervals') IS NOT NULL THEN
        EXECUTE format(
            'CREATE OR REPLACE VIEW energymon_scoped.energy_intervals WITH (security_barrier) AS '
            'SELECT * FROM %I.energy_intervals WHERE (SELECT energymon_scope_all()) OR '
            'meter_id IN (SELECT m.id FROM %I.meters m '
            'WHERE m.plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]))',
            current_schema(), current_schema());
    END IF;
END
$$;
