"""The platform broker's access on a real Mosquitto (security review M4, issue 16): the
dynamic-security plugin with the credentials of ``app.brokerauth``.

Every case is an attack the review made against the ACL-file broker, or the operator's
rotation; each client is a real paho client on loopback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from app.brokerauth import Credential, CredentialStore, apply_to_broker
from app.brokerconf import TlsFiles
from app.devservices.broker import Mosquitto, find_dynsec_plugin, find_mosquitto
from core.mqtt import mqtt_client
from core.settings import MqttEndpoint

pytestmark = pytest.mark.skipif(
    find_mosquitto() is None or find_dynsec_plugin() is None,
    reason="needs mosquitto and its dynamic-security plugin (scripts/ensure-test-deps.sh)")

SHARE = "$share/ingest/plants/+/readings"


class Probe:
    """One paho client: what the broker answered to its connect and subscribes, and what it
    received."""

    def __init__(self, broker: Mosquitto, cred: Credential | None, client_id: str,
                 *, password: str | None = None, ca: str | None = None) -> None:
        self.connected = threading.Event()
        self.rc: str | None = None
        self.granted: list[str] = []
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id, protocol=mqtt.MQTTv5)
        if cred is not None:
            self.client.username_pw_set(cred.username, password or cred.password)
        if ca is not None:
            self.client.tls_set(ca_certs=ca)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.granted.extend(
            str(r) for r in rcs)
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.rc = str(rc)
        self.connected.set()

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnects += 1

    @property
    def ok(self) -> bool:
        return self.rc == "Success" and self.client.is_connected()

    def subscribe(self, topic: str) -> str:
        before = len(self.granted)
        self.client.subscribe([(topic, SubscribeOptions(qos=1))])
        deadline = time.monotonic() + 5
        while len(self.granted) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.granted[-1] if len(self.granted) > before else "no answer"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


def _store(directory: Path) -> CredentialStore:
    store = CredentialStore(directory)
    store.ensure("admin", "admin")
    store.ensure("ingest", "ingest")
    store.ensure("gw-a", "gateway", plant="plant-a", clientid="energymon-gw-a")
    store.ensure("gw-b", "gateway", plant="plant-b", clientid="energymon-gw-b")
    store.save()
    return store


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Mosquitto, CredentialStore]]:
    store = _store(tmp_path / "credentials")
    broker = Mosquitto(tmp_path / "mosquitto", credentials=store, persistence=False)
    broker.start()
    try:
        yield broker, store
    finally:
        broker.stop()


def _cred(store: CredentialStore, base: str) -> Credential:
    c = store.current(base)
    assert c is not None
    return c


def test_anonymous_and_wrong_passwords_are_refused(
        secured: tuple[Mosquitto, CredentialStore]) -> None:
    broker, store = secured
    anonymous = Probe(broker, None, "anyone")
    wrong = Probe(broker, _cred(store, "gw-a"), "energymon-gw-a", password="guess")
    right = Probe(broker, _cred(store, "gw-a"), "energymon-gw-a")
    try:
        assert anonymous.rc == "Not authorized" and not anonymous.ok
        assert wrong.rc == "Not authorized" and not wrong.ok
        assert right.ok
    finally:
        for p in (anonymous, wrong, right):
            p.close()


def test_a_gateway_publishes_only_its_own_plant(
        secured: tuple[Mosquitto, CredentialStore]) -> None:
    broker, store = secured
    ingest = Probe(broker, _cred(store, "ingest"), "ingest-worker-1")
    a = Probe(broker, _cred(store, "gw-a"), "energymon-gw-a")
    try:
        assert ingest.subscribe(SHARE) == "Granted QoS 1"
        a.publish("plants/plant-b/readings", b"forged")       # another plant's topic
        a.publish("plants/plant-a/acks/gw-a", b"forged ack")  # its own acks: ingest's to write
        a.publish("plants/plant-a/readings", b"mine")
        assert _wait(lambda: len(ingest.received) >= 1)
        time.sleep(0.3)
        assert ingest.received == [("plants/plant-a/readings", b"mine")]
    finally:
        ingest.close()
        a.close()


def test_a_gateway_subscribes_to_nothing_but_its_own_acks(
        secured: tuple[Mosquitto, CredentialStore]) -> None:
    broker, store = secured
    ingest = Probe(broker, _cred(store, "ingest"), "ingest-worker-1")
    a = Probe(broker, _cred(store, "gw-a"), "energymon-gw-a")
    try:
        for topic in (SHARE, "$share/other/plants/+/readings", "plants/#", "plants/+/readings",
                      "$SYS/#", "plants/plant-b/acks/gw-b", "plants/plant-a/acks/+", "#"):
            assert a.subscribe(topic) == "Not authorized", topic
        assert a.subscribe("plants/plant-a/acks/gw-a") == "Granted QoS 1"
        ingest.publish("plants/plant-a/acks/gw-a", b'{"seq": 7}', retain=True)
        ingest.publish("plants/plant-b/acks/gw-b", b'{"seq": 9}', retain=True)
        assert _wait(lambda: len(a.received) >= 1)
        time.sleep(0.3)
        assert a.received == [("plants/plant-a/acks/gw-a", b'{"seq": 7}')]
    finally:
        ingest.close()
        a.close()


def test_client_ids_are_bound_to_their_credential(
        secured: tuple[Mosquitto, CredentialStore]) -> None:
    # the review: plant A's credential took the ingest worker's client id and knocked it off
    broker, store = secured
    ingest = Probe(broker, _cred(store, "ingest"), "ingest-worker-1")
    b = Probe(broker, _cred(store, "gw-b"), "energymon-gw-b")
    try:
        assert ingest.ok and b.ok
        for client_id in ("ingest-worker-1", "energymon-gw-b", "anything-else"):
            thief = Probe(broker, _cred(store, "gw-a"), client_id)
            assert thief.rc == "Not authorized", client_id
            thief.close()
        time.sleep(0.3)
        assert ingest.ok and b.ok and ingest.disconnects == 0 and b.disconnects == 0
    finally:
        ingest.close()
        b.close()


def test_rotation_keeps_both_passwords_in_the_window_then_retires_the_old(
        secured: tuple[Mosquitto, CredentialStore]) -> None:
    broker, store = secured
    pid = broker._proc.pid if broker._proc else None
    old = _cred(store, "gw-a")
    now = datetime.now(UTC)
    new = store.rotate("gw-a", timedelta(days=7), now=now)
    store.save()
    assert apply_to_broker(store, "127.0.0.1", broker.port) == {
        "created": [new.username], "deleted": []}
    for cred in (old, new):                       # both work during the window
        p = Probe(broker, cred, "energymon-gw-a")
        assert p.ok, cred.username
        p.close()
    still_old = Probe(broker, old, "energymon-gw-a")
    assert still_old.ok
    assert store.retire(now=now + timedelta(days=6)) == []       # not yet
    gone = store.retire(now=now + timedelta(days=7, seconds=1))
    assert [c.username for c in gone] == [old.username]
    store.save()
    assert apply_to_broker(store, "127.0.0.1", broker.port) == {
        "created": [], "deleted": [old.username]}
    assert _wait(lambda: not still_old.client.is_connected())  # kicked at once
    still_old.close()
    refused = Probe(broker, old, "energymon-gw-a")
    assert refused.rc == "Not authorized"
    refused.close()
    fresh = Probe(broker, new, "energymon-gw-a")
    assert fresh.ok
    fresh.close()
    assert broker._proc is not None and broker._proc.pid == pid   # no restart
    # the broker keeps what it was told across a restart (its own copy of the file)
    saved = json.loads((broker.workdir / "dynamic-security.json").read_text())
    assert {c["username"] for c in saved["clients"]} == {c.username for c in store.credentials}


def test_the_credential_store_is_private_and_holds_no_hash_in_the_clear(tmp_path: Path
                                                                         ) -> None:
    store = _store(tmp_path / "credentials")
    assert (store.directory.stat().st_mode & 0o777) == 0o700
    for name in ("credentials.json", "dynamic-security.json"):
        assert ((store.directory / name).stat().st_mode & 0o777) == 0o600
    broker_file = (store.directory / "dynamic-security.json").read_text()
    for c in store.credentials:
        assert c.password not in broker_file
    again = CredentialStore.load(store.directory)
    assert [(c.username, c.password) for c in again.credentials] == \
        [(c.username, c.password) for c in store.credentials]


# -- TLS ---------------------------------------------------------------------------------------
def _ca_and_server(directory: Path, name: str) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    Path(files.ca).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files.key).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    Path(files.key).chmod(0o644)   # read by mosquitto (which may drop to its own user)
    return files


def test_a_tls_listener_with_the_platform_ca_pinned(tmp_path: Path) -> None:
    store = _store(tmp_path / "credentials")
    tls = _ca_and_server(tmp_path / "pki", "platform")
    other = _ca_and_server(tmp_path / "other-pki", "someone else")
    broker = Mosquitto(tmp_path / "mosquitto", credentials=store, persistence=False, tls=tls)
    broker.start()
    try:
        a = _cred(store, "gw-a")
        endpoint = MqttEndpoint.parse(
            f"mqtts://{a.username}:{a.password}@127.0.0.1:{broker.port}?ca={tls.ca}")
        assert endpoint.tls and endpoint.ca == str(tls.ca)
        client = mqtt_client(endpoint, "energymon-gw-a")
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: connected.set() if str(rc) == "Success" \
            else None
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        try:
            assert connected.wait(5), "the pinned CA did not verify the broker"
        finally:
            client.loop_stop()
            client.disconnect()
        # a client pinning another CA does not get through the handshake
        wrong = mqtt_client(MqttEndpoint.parse(
            f"mqtts://{a.username}:{a.password}@127.0.0.1:{broker.port}?ca={other.ca}"),
            "energymon-gw-a")
        with pytest.raises(OSError):
            wrong.connect("127.0.0.1", broker.port)
        # and a plain-text client is not spoken to
        plain = Probe(broker, a, "energymon-gw-a")
        assert not plain.ok
        plain.close()
    finally:
        broker.stop()


def test_a_ca_without_tls_is_a_configuration_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValueError, match="use mqtts"):
        MqttEndpoint.parse(f"mqtt://127.0.0.1:1883?ca={ca}")
    with pytest.raises(ValueError, match="does not exist"):
        MqttEndpoint.parse(f"mqtts://127.0.0.1:8883?ca={tmp_path / 'missing.pem'}")
