"""Intensity units of catalogue entries: ``<energy>/<product>`` (e.g. ``kgce/t``, ``kWh/t``).

Only the energy part (numerator) matters for converting to standard coal; the product part
(denominator: t, weight-box, m2, t·energy factor ...) is the unit the output is counted in.
"""

from __future__ import annotations

from decimal import Decimal

#: energy parts an intensity unit may have; how each converts to kgce is in ``evaluate``.
KNOWN_NUMERATORS = frozenset({"kgce", "kgoe", "kWh"})


def split_unit(unit: str) -> tuple[str, str]:
    """``"kgce/t"`` -> ``("kgce", "t")``; raises ``ValueError`` if there is no ``/``."""
    numerator, sep, denominator = unit.partition("/")
    if not sep or not numerator.strip() or not denominator.strip():
        raise ValueError(f"unit {unit!r} is not of the form '<energy>/<product>'")
    return numerator.strip(), denominator.strip()


def as_decimal(value: Decimal | float | int, what: str) -> Decimal:
    """A finite ``Decimal`` from a number; a float goes through its shortest repr
    (``0.1`` -> ``Decimal("0.1")``), not its binary expansion."""
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    if isinstance(value, float):
        value = Decimal(repr(value))
    d = Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return d
