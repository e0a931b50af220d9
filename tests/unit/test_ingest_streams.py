"""The stream arithmetic of the end-to-end acknowledgement (``ingest.streams.plan``): what a
transaction's batches do to a gateway stream, before the database is asked about batches
kept above a gap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.streams import plan
from ingest.validation import BatchMark


def marks(*seqs: int, held_from: int | None = None) -> list[BatchMark]:
    return [BatchMark("gw", 7, s, held_from) for s in seqs]


@pytest.mark.parametrize(("acked", "max_seq", "batch", "fast", "after", "redeliveries"), [
    (-1, -1, marks(0, 1, 2), True, 2, 0),          # a new stream, in order
    (4, 4, marks(5), True, 5, 0),                  # steady state: the next seq
    (4, 4, marks(6, 5), True, 6, 0),               # order inside a transaction does not matter
    (4, 4, marks(3, 4), True, 4, 2),               # redeliveries only
    (4, 4, marks(5, 5), True, 5, 1),               # the same batch twice in one transaction
    (4, 4, marks(6), False, 4, 0),                 # seq 5 missing: a gap opens
    (4, 9, marks(5), False, 4, 0),                 # a gap was open: ask the database
    (4, 4, marks(8, held_from=8), False, 4, 0),    # the gateway dropped 5..7: jump (slow path)
    (4, 4, marks(5, held_from=3), True, 5, 0),     # an old floor changes nothing
])
def test_plan(acked: int, max_seq: int, batch: list[BatchMark], fast: bool, after: int,
              redeliveries: int) -> None:
    update = plan(acked, max_seq, batch)
    assert update.fast is fast
    assert update.acked == after
    assert update.redeliveries == redeliveries
    if fast:
        assert update.max_seq == update.acked and update.committed == after - acked
    else:
        assert update.ahead == sorted({m.seq for m in batch if m.seq > acked})


@given(acked=st.integers(-1, 50), seqs=st.lists(st.integers(0, 80), min_size=1, max_size=20))
def test_the_fast_path_never_acknowledges_a_seq_it_has_not_seen(acked: int,
                                                                  seqs: list[int]) -> None:
    """Whatever arrives, an acknowledgement decided without the database covers only seqs
    that were already acknowledged or are in this transaction, with none missing between."""
    update = plan(acked, acked, marks(*seqs))
    if update.fast:
        assert set(range(acked + 1, update.acked + 1)) <= set(seqs)
        assert update.committed + update.redeliveries == len(seqs)
