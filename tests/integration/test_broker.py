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


def test_acknowledgements_reach_only_their_plant_and_only_ingest_writes_them(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The generated ACL: ingest publishes plants/<p>/acks/<gw>; plant p1 reads its own,
    cannot read p2's, and cannot forge one (it would delete its own unconfirmed data)."""
    import time

    broker = Mosquitto(tmp_path / "b", users={"ingest": "i", "p1": "one", "p2": "two"})
    broker.start()
    got: dict[str, list[bytes]] = {"p1": [], "p2": []}
    clients = []
    try:
        for plant, password in (("p1", "one"), ("p2", "two")):
            c = _client(broker, plant, password)
            c.on_message = lambda cl, u, m, plant=plant: got[plant].append(m.payload)
            c.connect("127.0.0.1", broker.port)
            c.subscribe("plants/+/acks/#", qos=1)   # asks for everyone's: gets its own only
            c.loop_start()
            clients.append(c)
        ingest = _client(broker, "ingest", "i")
        ingest.connect("127.0.0.1", broker.port)
        ingest.loop_start()
        clients.append(ingest)
        time.sleep(0.3)
        clients[1].publish("plants/p1/acks/gw", b"forged by p2", qos=1).wait_for_publish(5)
        clients[0].publish("plants/p1/acks/gw", b"forged by p1", qos=1).wait_for_publish(5)
        ingest.publish("plants/p1/acks/gw", b"from ingest", qos=1, retain=True
                       ).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got["p1"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert got == {"p1": [b"from ingest"], "p2": []}
    finally:
        for c in clients:
            c.loop_stop()
        broker.stop()


def test_the_province_configuration_runs_on_mosquitto(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """deploy/mosquitto/mosquitto.conf's settings (with local paths and port) are accepted."""
    import os
    import subprocess

    from app.brokerconf import PROVINCE, config_lines
    from app.devservices.broker import _wait_listening, find_mosquitto
    from core.ports import free_port

    exe = find_mosquitto()
    if exe is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "ingest", "i"], check=True,
                   capture_output=True)
    conf = tmp_path / "mosquitto.conf"
    extra = ("user root",) if os.geteuid() == 0 else ()
    conf.write_text("\n".join(config_lines(
        PROVINCE, listener=f"{port} 127.0.0.1", persistence_dir=tmp_path,
        password_file=passwd, log_file=tmp_path / "log", extra=extra)) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        _wait_listening(proc, port, 10, "mosquitto")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.username_pw_set("ingest", "i")
        client.connect("127.0.0.1", port)
        client.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
