-- Nothing is lost silently: messages that cannot be stored, and second values for an
-- existing (meter, ts) key, are kept with their reason for review.

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,               -- e.g. mqtt:plants/p1/readings, http:/api/v1/readings
    plant_code   text,                        -- the plant named by the authenticated topic/token
    reason_code  text NOT NULL,               -- machine-readable, e.g. unknown_meter, invalid_json
    reason       text NOT NULL,               -- human-readable detail
    payload      bytea NOT NULL               -- raw bytes as received
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_plant_idx ON dead_letters (plant_code, received_at);

CREATE TABLE reading_conflicts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id        bigint NOT NULL REFERENCES meters (id) ON DELETE CASCADE,
    ts              timestamptz NOT NULL,
    stored_value    double precision NOT NULL,
    stored_quality  smallint NOT NULL,
    new_value       double precision NOT NULL,
    new_quality     smallint NOT NULL,
    source          text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolution      text CHECK (resolution IN ('kept_stored', 'replaced'))
);
CREATE UNIQUE INDEX reading_conflicts_once_idx
    ON reading_conflicts (meter_id, ts, new_value, new_quality) WHERE resolved_at IS NULL;
CREATE INDEX reading_conflicts_open_idx ON reading_conflicts (received_at) WHERE resolved_at IS NULL;
