-- readings on TimescaleDB: a hypertable with 7-day chunks, compressed after 30 days,
-- segmented by meter so a meter's history decompresses on its own.
-- No foreign key to meters: ingest validates every meter against the registry before COPY,
-- and a per-row FK check would cost throughput on the hot path.

CREATE TABLE readings (
    meter_id  bigint           NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    quality   smallint         NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 3), -- good/estimated/suspect/missing
    PRIMARY KEY (meter_id, ts)
);

SELECT create_hypertable('readings', by_range('ts', INTERVAL '7 days'));

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'meter_id',
    timescaledb.compress_orderby = 'ts'
);
SELECT add_compression_policy('readings', INTERVAL '30 days');
