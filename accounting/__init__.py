"""Energy accounting in the store: counters to interval energy, standard coal and CO2, rollups
on the local calendar, comprehensive energy, intensity and benchmark verdicts.

Imports ``core`` and the pure domain package ``benchmarks``; the pure interval arithmetic is in
:mod:`accounting.intervals`, the pure verdicts in :mod:`accounting.judge` (on the typed rows of
:mod:`accounting.rows`), everything that touches the database in :mod:`accounting.store` and
:mod:`accounting.queries`.
"""
