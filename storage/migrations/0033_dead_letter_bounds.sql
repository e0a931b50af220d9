-- Bounded dead letters (issue 17, security review M3): what a rejected message costs the
-- database is bounded. The writer (ingest.writer.PgWriter, behind MQTT ingest and the API's
-- push) stores at most a prefix of each payload, with its full size and SHA-256, keeps to a
-- quota per plant per minute (what is over it is counted here, never silently dropped), and
-- deletes dead letters older than the retention period.

ALTER TABLE dead_letters ADD COLUMN payload_bytes integer CHECK (payload_bytes >= 0),
    ADD COLUMN payload_sha256 bytea CHECK (length(payload_sha256) = 32);

CREATE TABLE dead_letter_overflow (
    plant_code    text NOT NULL,               -- '' when the message named no plant
    window_start  timestamptz NOT NULL,        -- the minute the quota was exhausted in
    reason_code   text NOT NULL,
    dropped       bigint NOT NULL CHECK (dropped > 0),
    bytes         bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (plant_code, window_start, reason_code)
);
