-- Registry: regions, plants, production units, meters.
-- Codes (plants.code, production_units.code, meters.code) are the ids used in fleet files and
-- MQTT topics; surrogate bigint ids are used for joins and in the readings table.

CREATE TABLE regions (
    code         text PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),   -- GB/T 2260 administrative division code
    name         text NOT NULL,
    parent_code  text REFERENCES regions (code),
    level        text NOT NULL CHECK (level IN ('province', 'prefecture', 'county')),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plants (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                 text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    uscc                 text NOT NULL UNIQUE CHECK (uscc ~ '^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$'),
    name                 text NOT NULL,
    region_code          text NOT NULL REFERENCES regions (code),
    industry             text NOT NULL,
    energy_class         text NOT NULL CHECK (energy_class IN ('ge_10000_tce', '5000_10000_tce', 'lt_5000_tce')),
    annual_energy_tce    numeric CHECK (annual_energy_tce >= 0),
    key_unit             boolean NOT NULL,
    timezone             text NOT NULL DEFAULT 'Asia/Shanghai',
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plants_region_idx ON plants (region_code);

CREATE TABLE production_units (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plant_id         bigint NOT NULL REFERENCES plants (id) ON DELETE CASCADE,
    code             text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    name             text NOT NULL,
    catalogue_key    text,                       -- benchmarks catalogue key, e.g. cement/clinker
    catalogue_edition integer,                   -- pinned edition; NULL = newest with values
    product          text NOT NULL,
    product_unit     text NOT NULL,              -- unit of output, e.g. t, weight_box, m2
    design_capacity  numeric NOT NULL CHECK (design_capacity > 0),
    capacity_unit    text NOT NULL,              -- e.g. t/d, t/a
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plant_id, code)
);

CREATE TABLE meters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plant_id       bigint NOT NULL REFERENCES plants (id) ON DELETE CASCADE,
    unit_id        bigint REFERENCES production_units (id) ON DELETE SET NULL,  -- NULL = plant level
    code           text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    name           text NOT NULL,
    energy_type    text NOT NULL,                -- electricity, raw_coal, natural_gas, ... or product
    kind           text NOT NULL CHECK (kind IN ('counter', 'interval', 'instantaneous', 'production')),
    eng_unit       text NOT NULL,                -- engineering unit of the value, e.g. kWh, m3, t
    multiplier     numeric NOT NULL DEFAULT 1 CHECK (multiplier > 0),  -- CT x PT ratio etc.
    direction      text NOT NULL DEFAULT 'consumed' CHECK (direction IN ('consumed', 'exported')),
    rollover_max   numeric CHECK (rollover_max > 0), -- counter wraps to 0 after this value
    meter_model    text,                         -- register map name, e.g. chint-dtsu666
    interval_s     integer NOT NULL DEFAULT 900 CHECK (interval_s > 0),
    installed_at   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plant_id, code),
    CHECK (rollover_max IS NULL OR kind IN ('counter', 'production'))
);
CREATE INDEX meters_unit_idx ON meters (unit_id);
