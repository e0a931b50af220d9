import threading

import paho.mqtt.client as mqtt
import pytest

from app.devservices.broker import Mosquitto


def _client(broker: Mosquitto, user: str | None = None, password: str | None = None
            ) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        client.username_pw_set(user, password)
    return client


def test_broker_round_trip(mosquitto: Mosquitto) -> None:
    got = threading.Event()
    sub = _client(mosquitto)
    sub.on_message = lambda c, u, m: got.set()
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("plants/+/readings", qos=1)
    sub.loop_start()
    pub = _client(mosquitto)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        import time
        time.sleep(0.2)
        pub.publish("plants/p1/readings", b"{}", qos=1).wait_for_publish(5)
        assert got.wait(5)
    finally:
        pub.loop_stop()
        sub.loop_stop()


def test_plant_user_can_only_publish_its_own_topic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broker = Mosquitto(tmp_path / "b", users={"ingest": "i", "p1": "one", "p2": "two"})
    broker.start()
    received: list[str] = []
    try:
        sub = _client(broker, "ingest", "i")
        sub.on_message = lambda c, u, m: received.append(m.topic)
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("plants/#", qos=1)
        sub.loop_start()
        pub = _client(broker, "p1", "one")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        import time
        time.sleep(0.3)
        pub.publish("plants/p2/readings", b"forged", qos=1).wait_for_publish(5)
        pub.publish("plants/p1/readings", b"own", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while "plants/p1/readings" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert received == ["plants/p1/readings"]
        bad = _client(broker, "p1", "wrong")
        with pytest.raises(Exception):  # noqa: B017 - refused with a CONNACK error
            bad.connect("127.0.0.1", broker.port)
            bad.loop_start()
            time.sleep(0.5)
            if not bad.is_connected():
                raise ConnectionRefusedError
        pub.loop_stop()
        sub.loop_stop()
    finally:
        broker.stop()


def test_python_broker_fallback_carries_qos1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.devservices.broker import PythonBroker, local_broker

    broker = local_broker(tmp_path / "py", prefer="python")
    assert isinstance(broker, PythonBroker) and broker.mqtt_protocol == "3.1.1"
    broker.start()
    try:
        got = threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        sub.on_message = lambda c, u, m: got.set()
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("plants/+/readings", qos=1)
        sub.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        import time
        time.sleep(0.3)
        pub.publish("plants/p1/readings", b"{}", qos=1).wait_for_publish(5)
        assert got.wait(5)
        pub.loop_stop()
        sub.loop_stop()
    finally:
        broker.stop()


def test_ingest_and_collector_clients_speak_mqtt_311_to_the_python_broker(
        tmp_path, migrated_db: str, example_fleet_path) -> None:  # type: ignore[no-untyped-def]
    """The demo's fallback broker is MQTT 3.1.1 only: ingest subscribes without a shared
    subscription and stores what a 3.1.1 publisher sends."""
    import json
    import time

    import psycopg

    from app.devservices.broker import PythonBroker
    from core.settings import MqttEndpoint
    from fleet import load_fleet
    from fleet.registry import load_registry
    from ingest.service import IngestOptions, IngestService

    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, load_fleet(example_fleet_path))
    broker = PythonBroker(tmp_path / "py")
    broker.start()
    endpoint = MqttEndpoint.parse(broker.url + "?protocol=3.1.1")
    assert not endpoint.mqtt5
    service = IngestService(migrated_db, endpoint, IngestOptions(client_id="t-311")).start()
    try:
        assert service.worker.wait_subscribed(10)
        assert service.worker.filters == ["plants/+/readings"]
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        body = {"gateway": "gw-1", "seq": 1, "readings": [
            {"meter": "k1-elec", "ts": "2026-11-20T10:15:00+08:00", "value": 12.5}]}
        pub.publish("plants/jx-yujiang-cement/readings", json.dumps(body), qos=1
                    ).wait_for_publish(5)
        deadline = time.monotonic() + 10
        count = 0
        while time.monotonic() < deadline and count == 0:
            with psycopg.connect(migrated_db) as conn:
                count = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
            time.sleep(0.2)
        assert count == 1
        pub.loop_stop()
    finally:
        service.stop()
        broker.stop()
