-- A plant's own electricity emission factor (e.g. a regional or contracted factor required by
-- its reporting programme), by year; overrides the provincial grid factor of the table.

CREATE TABLE plant_grid_factors (
    plant_id        bigint NOT NULL REFERENCES plants (id) ON DELETE CASCADE,
    year            integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    kgco2_per_kwh   double precision NOT NULL CHECK (kgco2_per_kwh >= 0),
    source          text NOT NULL,
    PRIMARY KEY (plant_id, year)
);
