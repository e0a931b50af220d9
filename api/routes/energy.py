"""Energy by period and energy type: native units, standard coal (kgce, tce) and CO2.

Sums of the same rollup rows the accounting module reads (``energy_by_meter_day`` for a day,
``energy_by_meter_month`` otherwise), so a unit's comprehensive energy and CO2 here equal its
``energy_kgce`` and ``co2_kg`` in the intensity endpoints.
"""

from __future__ import annotations

from fastapi import APIRouter

from api import queries, schemas
from api.deps import Db, db_route, plant_in_scope, unit_in_scope
from api.problems import READ, responses
from api.routes._common import PeriodQuery, period_of
from api.routes.registry import PlantCode, UnitCode

router = APIRouter(tags=["energy"])


def _summary(db: Db, plant: queries.PlantRow, unit: queries.UnitRow | None, period_spec: str
             ) -> schemas.EnergySummary:
    period = period_of(period_spec, db.state.tz)
    rows = queries.energy_totals(db.conn, plant.pk, unit_pk=unit.pk if unit else None,
                                 start=period.start, end=period.end,
                                 granularity=period.granularity)
    out = []
    consumed = exported = co2 = 0.0
    for r in rows:
        flow = "production" if r.kind == "production" else r.direction
        if flow == "consumed":
            consumed += r.kgce or 0.0
            co2 += r.co2_kg or 0.0
        elif flow == "exported":
            exported += r.kgce or 0.0
            co2 -= r.co2_kg or 0.0
        out.append(schemas.EnergyRow(
            energy_type=r.energy_type, flow=flow, quantity=r.quantity,
            quantity_unit=r.eng_unit,
            kgce=None if flow == "production" else (r.kgce or 0.0),
            tce=None if flow == "production" else (r.kgce or 0.0) / 1000.0,
            co2_kg=None if flow == "production" else (r.co2_kg or 0.0),
            estimated_quantity=r.estimated, meters=r.meters))
    net = consumed - exported
    return schemas.EnergySummary(
        plant=plant.id, unit=unit.id if unit else None, period=period.label,
        from_=period.start, to=period.end, consumed_kgce=consumed, exported_kgce=exported,
        comprehensive_kgce=net, comprehensive_tce=net / 1000.0, co2_kg=co2, co2_t=co2 / 1000.0,
        rows=out)


@router.get("/plants/{plant}/energy", response_model=schemas.EnergySummary,
            responses=responses(*READ),
            summary="Energy of a plant by energy type over a period (native units, tce, CO2)")
@db_route
def plant_energy(db: Db, plant: PlantCode, period: PeriodQuery) -> schemas.EnergySummary:
    return _summary(db, plant_in_scope(db, plant), None, period)


@router.get("/plants/{plant}/units/{unit}/energy", response_model=schemas.EnergySummary,
            responses=responses(*READ),
            summary="Energy of a production unit by energy type over a period")
@db_route
def unit_energy(db: Db, plant: PlantCode, unit: UnitCode, period: PeriodQuery
                ) -> schemas.EnergySummary:
    p = plant_in_scope(db, plant)
    return _summary(db, p, unit_in_scope(db, p, unit), period)
