"""Publisher logic with a fake MQTT client: order, window, acks, refusals, timeouts, pacing,
and the platform's end-to-end acknowledgement."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from collector.config import PublishConfig
from collector.observability import CollectorMetrics
from collector.publisher import Publisher, TokenBucket
from collector.spool import Spool, SpoolReading
from core.payload import AckPayload, BatchPayload
from core.settings import MqttEndpoint

T0 = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


class FakePaho:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, dict[str, Any]]] = []
        self._mid = 0

    def publish(self, topic: str, payload: str, qos: int) -> Any:
        assert qos == 1
        self._mid += 1
        self.sent.append((self._mid, topic, json.loads(payload)))
        return SimpleNamespace(mid=self._mid, rc=0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, batches: int, clock: Clock | None = None,
         **config: Any) -> tuple[Publisher, FakePaho, Spool]:
    spool = Spool(tmp_path / "s.sqlite", capacity=100_000)
    for i in range(batches):
        ts = T0 + timedelta(minutes=15 * i)
        spool.add([SpoolReading("m1", ts, float(i)), SpoolReading("m2", ts, 10.0 + i)],
                  cycle_ts=ts.timestamp())
    pub = Publisher(spool, gateway_id="gw-1", plant="p1",
                    endpoint=MqttEndpoint(host="127.0.0.1", port=1883),
                    config=PublishConfig(**config), metrics=CollectorMetrics(),
                    clock=clock or Clock())
    fake = FakePaho()
    pub._client = fake  # type: ignore[assignment]
    pub._connected_event(True, "Success")
    return pub, fake, spool


def test_publishes_oldest_first_within_the_window(tmp_path: Path) -> None:
    async def go() -> None:
        clock = Clock()
        pub, fake, spool = make(tmp_path, 10, clock, max_inflight=4, drain_rate_msgs_s=1000,
                                acknowledgement="broker")
        pub._loop = asyncio.get_running_loop()
        pub.publish_ready()
        assert [m[2]["seq"] for m in fake.sent] == [0, 1, 2, 3]  # window of 4
        clock.t += 1
        payload = BatchPayload.model_validate(fake.sent[0][2])
        assert fake.sent[0][1] == "plants/p1/readings" and payload.gateway == "gw-1"
        assert [(r.meter, r.value) for r in payload.readings] == [("m1", 0.0), ("m2", 10.0)]
        assert payload.readings[0].ts == T0
        pub._ack_event(2, False, "Success")  # seq 1 acknowledged
        pub.publish_ready()
        assert [m[2]["seq"] for m in fake.sent] == [0, 1, 2, 3, 4]
        pub.flush_acks()
        assert [b.seq for b in spool.pending(100)] == [0, 2, 3, 4, 5, 6, 7, 8, 9]

    asyncio.run(go())


def test_nothing_is_deleted_without_a_successful_puback(tmp_path: Path) -> None:
    async def go() -> None:
        pub, fake, spool = make(tmp_path, 3, max_inflight=10, drain_rate_msgs_s=1000,
                                acknowledgement="broker")
        pub._loop = asyncio.get_running_loop()
        pub.publish_ready()
        pub._ack_event(1, True, "Not authorized")  # refused by the broker
        pub._ack_event(99, False, "Success")  # an unknown mid
        pub.flush_acks()
        assert [b.seq for b in spool.pending(100)] == [0, 1, 2]
        assert pub.metrics.publish_refused._value.get() == 1
        pub.publish_ready()  # the refused batch is tried again
        assert [m[2]["seq"] for m in fake.sent] == [0, 1, 2, 0]

    asyncio.run(go())


def test_disconnected_publisher_sends_nothing(tmp_path: Path) -> None:
    pub, fake, _ = make(tmp_path, 3)
    pub._disconnected_event("Unspecified error")
    pub.publish_ready()
    assert fake.sent == []


def test_unacknowledged_messages_are_sent_again_after_the_ack_timeout(tmp_path: Path) -> None:
    clock = Clock()
    pub, fake, _ = make(tmp_path, 2, clock, ack_timeout_s=10, drain_rate_msgs_s=1000)
    pub.publish_ready()
    assert len(fake.sent) == 2
    clock.t += 5
    pub._expire_inflight()
    pub.publish_ready()
    assert len(fake.sent) == 2 and pub.inflight == 2
    clock.t += 6
    pub._expire_inflight()
    pub.publish_ready()
    assert [m[2]["seq"] for m in fake.sent] == [0, 1, 0, 1]  # duplicates, never loss
    assert pub.metrics.republished._value.get() == 2


def test_backlog_is_paced_by_the_drain_rate(tmp_path: Path) -> None:
    clock = Clock()
    pub, fake, _ = make(tmp_path, 30, clock, drain_rate_msgs_s=2, max_inflight=100)
    wait = pub.publish_ready()
    assert len(fake.sent) == 2 and wait is not None and 0 < wait <= 0.5
    clock.t += 1.0
    pub.publish_ready()
    assert len(fake.sent) == 4
    clock.t += 5.0  # the bucket holds at most `burst` tokens
    pub.publish_ready()
    assert len(fake.sent) == 6
    assert [m[2]["seq"] for m in fake.sent] == list(range(6))


def test_live_first_sends_the_newest_cycle_ahead_of_the_backlog(tmp_path: Path) -> None:
    clock = Clock()
    pub, fake, spool = make(tmp_path, 20, clock, order="live_first", drain_rate_msgs_s=1,
                            max_inflight=100)
    pub.publish_ready()
    # the newest batch was just spooled: it goes at once, then one backlog batch (rate 1)
    assert [m[2]["seq"] for m in fake.sent] == [19, 0]
    spool.add([SpoolReading("m1", T0 + timedelta(days=1), 1.0)])
    pub.publish_ready()
    assert [m[2]["seq"] for m in fake.sent] == [19, 0, 20]


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    assert bucket.take() and bucket.take() and not bucket.take()
    assert abs(bucket.wait_s() - 0.25) < 1e-9
    clock.t += 0.25
    assert bucket.take() and not bucket.take()


def ack(pub: Publisher, acked: int, *, epoch: int | None = None, gateway: str = "gw-1") -> None:
    """The platform's acknowledgement, as ingest publishes it."""
    payload = AckPayload(gateway=gateway, epoch=pub.spool.stats().epoch if epoch is None
                         else epoch, acked=acked)
    pub._platform_ack_event(payload.model_dump_json().encode())


def test_a_puback_alone_deletes_nothing_the_platform_ack_does(tmp_path: Path) -> None:
    clock = Clock()
    pub, fake, spool = make(tmp_path, 5, clock, drain_rate_msgs_s=1000)
    pub.publish_ready()
    for mid in range(1, 6):
        pub._ack_event(mid, False, "Success")     # the broker has all five
    pub.flush_acks()
    assert [b.seq for b in spool.pending(100)] == [0, 1, 2, 3, 4]
    assert pub.metrics.awaiting_platform._value.get() == 5
    ack(pub, 2)
    assert [b.seq for b in spool.pending(100)] == [3, 4]
    assert pub.platform_acked == 2 and pub.metrics.awaiting_platform._value.get() == 2
    assert pub.metrics.platform_confirmed_readings._value.get() == 6
    ack(pub, 1)                                    # a stale (lower) ack changes nothing
    ack(pub, 4, epoch=spool.stats().epoch + 1)     # another spool's stream: not ours
    ack(pub, 4, gateway="gw-2")
    pub._platform_ack_event(b"not json")
    assert [b.seq for b in spool.pending(100)] == [3, 4]
    ack(pub, 4)
    assert spool.pending(100) == [] and spool.stats().depth == 0


def test_unconfirmed_batches_are_resent_with_a_doubling_wait(tmp_path: Path) -> None:
    clock = Clock()
    pub, fake, spool = make(tmp_path, 2, clock, drain_rate_msgs_s=1000,
                            platform_ack_timeout_s=10, platform_ack_max_s=25)
    pub.publish_ready()
    pub._ack_event(1, False, "Success")
    pub._ack_event(2, False, "Success")
    ack(pub, 0)                                    # seq 1 lost after its PUBACK
    clock.t += 9
    pub.publish_ready()
    assert [m[2]["seq"] for m in fake.sent] == [0, 1]
    clock.t += 2                                   # 11 s > 10 s: sent again
    pub.publish_ready()
    assert [m[2]["seq"] for m in fake.sent] == [0, 1, 1]
    assert pub.metrics.resent_unconfirmed._value.get() == 1
    pub._ack_event(3, False, "Success")
    clock.t += 19                                  # second wait is 20 s
    pub.publish_ready()
    assert len(fake.sent) == 3
    clock.t += 2
    pub.publish_ready()
    assert [m[2]["seq"] for m in fake.sent] == [0, 1, 1, 1]
    pub._ack_event(4, False, "Success")
    clock.t += 24                                  # third would be 40 s, capped at 25 s
    pub.publish_ready()
    assert len(fake.sent) == 4
    clock.t += 2
    pub.publish_ready()
    assert len(fake.sent) == 5
    ack(pub, 1)
    assert spool.stats().depth == 0


def test_an_ack_before_the_puback_confirms_too(tmp_path: Path) -> None:
    pub, fake, spool = make(tmp_path, 3, drain_rate_msgs_s=1000)
    pub.publish_ready()
    ack(pub, 1)                                    # ingest was faster than the PUBACK
    assert pub.inflight == 1 and [b.seq for b in spool.pending(100)] == [2]
    pub._ack_event(1, False, "Success")            # late PUBACK of a confirmed batch
    pub._ack_event(3, False, "Success")
    assert pub.metrics.awaiting_platform._value.get() == 1
    assert [b.seq for b in spool.pending(100)] == [2]


def test_every_message_says_what_the_spool_still_holds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=4)
    for i in range(3):   # 3 batches of 2 into room for 4: the oldest batch is dropped
        ts = T0 + timedelta(minutes=15 * i)
        spool.add([SpoolReading("m1", ts, float(i)), SpoolReading("m2", ts, 1.0)])
    pub = Publisher(spool, gateway_id="gw-1", plant="p1",
                    endpoint=MqttEndpoint(host="127.0.0.1", port=1883),
                    config=PublishConfig(drain_rate_msgs_s=1000), metrics=CollectorMetrics())
    fake = FakePaho()
    pub._client = fake  # type: ignore[assignment]
    pub._connected_event(True, "Success")
    pub.publish_ready()
    sent = [BatchPayload.model_validate(m[2]) for m in fake.sent]
    assert [p.seq for p in sent] == [1, 2]
    assert {(p.epoch, p.held_from, p.dropped) for p in sent} == {(spool.stats().epoch, 1, 2)}
    assert 0 < spool.stats().epoch < 1 << 62
    epoch = spool.stats().epoch
    spool.close()
    assert Spool(tmp_path / "s.sqlite", capacity=4).stats().epoch == epoch   # persisted
    assert Spool(tmp_path / "t.sqlite", capacity=4).stats().epoch != epoch   # a new spool
