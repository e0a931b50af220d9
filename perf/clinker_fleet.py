"""The synthetic fleet of the accounting and API harnesses: ``plants`` plants, each with one
clinker line and three meters (electricity counter, coal counter, clinker counter)."""

from __future__ import annotations

from collections.abc import Sequence

from fleet import uscc_check_char

PROVINCE = {"code": "360000", "name": "江西省", "level": "province"}


def clinker_fleet(plants: int, *, name: str, id_prefix: str, uscc_tag: str,
                  prefectures: Sequence[str] = ()) -> dict:
    """Fleet data (to give to ``fleet.parse_fleet``). Plants are spread round-robin over
    ``prefectures`` (codes under Jiangxi), or all sit at province level when none are given;
    ``uscc_tag`` (5 characters) keeps the credit codes of different harnesses apart."""
    regions = [PROVINCE] + [{"code": code, "name": f"prefecture {code}", "level": "prefecture",
                             "parent": PROVINCE["code"]} for code in prefectures]
    items = []
    for i in range(plants):
        first17 = f"91360000{i:04d}{uscc_tag}"
        items.append({
            "id": f"{id_prefix}-{i:03d}", "uscc": first17 + uscc_check_char(first17),
            "name": f"{name} plant {i}",
            "region": prefectures[i % len(prefectures)] if prefectures else PROVINCE["code"],
            "industry": "cement", "energy_class": "ge_10000_tce", "key_unit": True,
            "units": [{"id": "kiln", "name": "kiln", "catalogue": "cement/clinker",
                       "product": "clinker", "product_unit": "t", "design_capacity": 5000,
                       "capacity_unit": "t/d"}],
            "meters": [
                {"id": "elec", "name": "e", "unit": "kiln", "energy_type": "electricity",
                 "kind": "counter", "eng_unit": "kWh"},
                {"id": "coal", "name": "c", "unit": "kiln", "energy_type": "raw_coal",
                 "kind": "counter", "eng_unit": "t"},
                {"id": "clinker", "name": "k", "unit": "kiln", "energy_type": "product",
                 "kind": "production", "eng_unit": "t"},
            ],
        })
    return {"fleet": name, "regions": regions, "plants": items}
