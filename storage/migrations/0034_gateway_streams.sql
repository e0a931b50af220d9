-- End-to-end acknowledgement and reconciliation (issue 17, reliability review D1-D3).
--
-- Every batch a collector gateway publishes carries (gateway, epoch, seq): epoch names one
-- spool file (a new spool starts a new epoch at seq 0), seq counts its messages. The ingest
-- writer records, in the transaction that stores a batch's readings and dead letters, that
-- the batch is committed, and advances the stream's highest contiguous committed seq
-- (acked_seq). Ingest publishes acked_seq to plants/{plant}/acks/{gateway} after the commit;
-- the collector deletes a batch from its spool only when that acknowledgement covers it. So
-- the acknowledgement is derived from what is in the database, not from what was received.
--
-- A batch also says from which seq its gateway still holds batches (held_from): every seq
-- below it was acknowledged or dropped by the spool's policy, so acked_seq may jump to
-- held_from - 1; committed batches skipped that way are counted in skipped_batches and the
-- readings the spool dropped (its cumulative counter) in dropped_readings. A seq above
-- acked_seq that is still missing is a gap; gap_since says since when one has been open.

CREATE TABLE gateway_streams (
    plant_id          bigint NOT NULL REFERENCES plants (id) ON DELETE CASCADE,
    gateway           text NOT NULL CHECK (gateway ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    epoch             bigint NOT NULL CHECK (epoch >= 0),
    acked_seq         bigint NOT NULL CHECK (acked_seq >= -1),   -- -1: nothing yet
    max_seq           bigint NOT NULL CHECK (max_seq >= acked_seq),
    committed_batches bigint NOT NULL DEFAULT 0 CHECK (committed_batches >= 0),
    redeliveries      bigint NOT NULL DEFAULT 0 CHECK (redeliveries >= 0),
    skipped_batches   bigint NOT NULL DEFAULT 0 CHECK (skipped_batches >= 0),
    dropped_readings  bigint NOT NULL DEFAULT 0 CHECK (dropped_readings >= 0),
    gap_since         timestamptz,                 -- NULL: no seq missing below max_seq
    first_seen        timestamptz NOT NULL DEFAULT now(),
    last_commit_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, gateway, epoch),
    CHECK ((gap_since IS NULL) = (max_seq = acked_seq))
);

-- Batches committed above the stream's acked_seq (after a gap); deleted once acked_seq
-- passes them, so the table holds only what waits for a missing seq.
CREATE TABLE gateway_batches_ahead (
    plant_id     bigint NOT NULL,
    gateway      text NOT NULL,
    epoch        bigint NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 0),
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, gateway, epoch, seq),
    FOREIGN KEY (plant_id, gateway, epoch) REFERENCES gateway_streams ON DELETE CASCADE
);

-- The API reads the streams of the plants in its scope (regulators: gaps, drops, redeliveries).
GRANT SELECT ON gateway_streams TO energymon_api;
ALTER TABLE gateway_streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_read ON gateway_streams FOR SELECT TO energymon_api
    USING ((SELECT energymon_scope_all())
           OR plant_id = ANY ((SELECT energymon_scope_plants())::bigint[]));
