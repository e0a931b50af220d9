"""The one paho-mqtt client factory of every energymon process (collectors, ingest, simulators).

:func:`mqtt_client` builds a ``paho.mqtt.client.Client`` from a :class:`~core.settings.
MqttEndpoint`: callback API ``VERSION2``, MQTT 5 or 3.1.1 as the endpoint says (or as the
caller insists), credentials and TLS (server certificate verified) from the endpoint, and an
explicit capped reconnect backoff. Callbacks, connect options (keepalive, clean start, session
expiry, receive maximum) and in-flight windows stay with each caller.
"""

from __future__ import annotations

import ssl
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import MqttEndpoint

__all__ = ["mqtt_client"]


def mqtt_client(
    endpoint: MqttEndpoint,
    client_id: str,
    *,
    protocol: Literal["5", "3.1.1"] | None = None,
    persistent_session: bool = True,
    manual_ack: bool = False,
    reconnect_min: int = 1,
    reconnect_max: int = 30,
) -> mqtt.Client:
    """A paho client for ``endpoint`` (not connected).

    ``protocol`` overrides the endpoint's protocol. With MQTT 3.1.1, ``persistent_session``
    asks for a persistent session (``clean_session=False``; False: paho's clean session);
    with MQTT 5 the session is chosen when connecting (``clean_start`` and the
    ``SessionExpiryInterval`` property of ``connect``/``connect_async``). ``manual_ack``:
    QoS > 0 messages are acknowledged by ``client.ack`` only. The reconnect delay doubles from
    ``reconnect_min`` to ``reconnect_max`` seconds.
    """
    mqtt5 = (protocol or endpoint.protocol) == "5"
    if mqtt5:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    else:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=not persistent_session, manual_ack=manual_ack)
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=reconnect_min, max_delay=reconnect_max)
    return client
