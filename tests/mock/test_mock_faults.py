"""Fault injection: scenarios as data, latency, stalls, 5xx, GOAWAY, idle close, PING, chains."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import ssl

import pytest
import yaml
from mock_support import DEVICE, UNKNOWN_DEVICE, WAIT, push_headers

from apns_exporter.mock import (
    BUILTIN_SCENARIOS,
    DeviceScript,
    ErrorFault,
    GoAwayFault,
    IdleClose,
    Latency,
    MockAPNs,
    PingFault,
    Scenario,
    generate_ca,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from apns_exporter.mock.mapping import MappingError

# -- scenarios as data -----------------------------------------------------------------------


def test_latency_distributions_are_seeded_and_bounded():
    """Fixed, uniform and normal latencies are reproducible with a seed and never negative."""
    assert Latency(value=0.25).sample(random.Random(1)) == 0.25
    uniform = [Latency("uniform", low=0.1, high=0.2).sample(random.Random(7)) for _ in range(20)]
    assert all(0.1 <= x <= 0.2 for x in uniform)
    normal = Latency("normal", mean=0.0, stddev=1.0)
    first = [normal.sample(r) for r in [random.Random(3)] * 50]
    again = [normal.sample(r) for r in [random.Random(3)] * 50]
    assert first == again
    assert min(first) == 0.0  # negative draws are clamped


@pytest.mark.parametrize("name", sorted(BUILTIN_SCENARIOS))
def test_builtin_scenarios_round_trip_through_json(name):
    """Every built-in scenario survives to_dict -> JSON -> from_dict unchanged."""
    scenario = BUILTIN_SCENARIOS[name]
    data = json.loads(json.dumps(scenario_to_dict(scenario)))
    assert scenario_from_dict(data) == scenario


def test_scenario_loads_from_yaml_file(tmp_path):
    """A YAML file describes a scenario with nested faults."""
    path = tmp_path / "drill.yml"
    path.write_text(
        "name: drill\n"
        "latency: {distribution: uniform, low: 0.01, high: 0.02}\n"
        "errors: [{reason: ServiceUnavailable, probability: 0.5}]\n"
        "goaway: {after_requests: 10, debug: text, graceful: false}\n"
        "ping: {ack: false}\n"
    )
    scenario = load_scenario(path)
    assert scenario.errors == (ErrorFault("ServiceUnavailable", 0.5),)
    assert scenario.goaway == GoAwayFault(after_requests=10, debug="text", graceful=False)
    assert scenario.ping == PingFault(ack=False)


def test_scenario_errors_name_the_key(tmp_path):
    """Unknown keys and wrong types are reported with their location."""
    with pytest.raises(MappingError, match=r"scenario\.goaway: unknown key\(s\) afterwards"):
        scenario_from_dict({"goaway": {"afterwards": 1}})
    with pytest.raises(MappingError, match=r"scenario\.stall: expected a number"):
        scenario_from_dict({"stall": "often"})
    with pytest.raises(ValueError, match="Nope"):
        scenario_from_dict({"errors": [{"reason": "Nope"}]})


def test_unknown_scenario_name_lists_builtins():
    """A name that is neither built in nor a file lists the built-in names."""
    with pytest.raises(ValueError, match="healthy"):
        load_scenario("no-such-scenario")


# -- per-request faults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("ServiceUnavailable", 503),
        ("Shutdown", 503),
        ("InternalServerError", 500),
        ("IdleTimeout", 400),
    ],
)
async def test_error_fault_answers_with_reason(mock, connect, token, reason, status):
    """An ErrorFault answers valid pushes with its reason and status."""
    mock.scenario = Scenario(errors=(ErrorFault(reason),))
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert (response.status, response.reason) == (status, reason)
    assert mock.devices.received(DEVICE) == []


async def test_error_fault_count_and_runtime_change(mock, connect, token):
    """count limits how many requests a fault hits; assigning a new scenario applies at once."""
    mock.scenario = Scenario(errors=(ErrorFault("ServiceUnavailable", count=1),))
    client = await connect(mock)
    statuses = [(await client.request(headers=push_headers(token))).status for _ in range(2)]
    assert statuses == [503, 200]
    mock.scenario = Scenario(errors=(ErrorFault("InternalServerError"),))
    assert (await client.request(headers=push_headers(token))).status == 500
    mock.scenario = Scenario()
    assert (await client.request(headers=push_headers(token))).status == 200


async def test_stalled_stream_is_never_answered(mock, connect, token):
    """With stall=1 the stream gets no response while the connection still answers PINGs."""
    mock.scenario = Scenario(stall=1.0)
    client = await connect(mock)
    stream_id = client.send(headers=push_headers(token))
    await asyncio.wait_for(client.ping(), WAIT)
    assert mock.stats.stalled_streams == 1  # the PING was answered after the request was read
    assert not client._futures[stream_id].done()


async def test_clock_skew_makes_fresh_tokens_expired(mock, connect, token):
    """The expired-token scenario shifts the mock clock so a fresh token is ExpiredProviderToken."""
    mock.scenario = BUILTIN_SCENARIOS["expired-token"]
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.reason == "ExpiredProviderToken"


async def test_scenario_device_scripts_apply(mock, connect, token):
    """A scenario's device scripts queue failures for that device."""
    mock.scenario = Scenario(device_scripts=(DeviceScript(DEVICE, "ExpiredToken", 1),))
    client = await connect(mock)
    assert (await client.request(headers=push_headers(token))).reason == "ExpiredToken"
    assert (await client.request(headers=push_headers(token))).status == 200


# -- GOAWAY ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "debug"),
    [
        (GoAwayFault(debug="json", reason="Shutdown"), b'{"reason":"Shutdown"}'),
        (
            GoAwayFault(debug="text", text="Maximum active streams violated for this endpoint."),
            b"Maximum active streams violated for this endpoint.",
        ),
        (GoAwayFault(debug="empty"), b""),
    ],
)
async def test_goaway_forms_on_connect(mock, connect, fault, debug):
    """GOAWAY at connect carries JSON, plain-text or empty debug data, and the server closes."""
    mock.scenario = Scenario(goaway=fault)
    client = await connect(mock)
    await client.wait_closed()
    [goaway] = client.goaways
    data = goaway.additional_data or b""  # h2 reports empty debug data as None
    assert (goaway.error_code, goaway.last_stream_id, data) == (0, 0, debug)


async def test_goaway_followed_by_empty_one(mock, connect):
    """followed_by_empty sends a second GOAWAY without debug data, as Apple has done."""
    mock.scenario = Scenario(goaway=GoAwayFault(followed_by_empty=True))
    client = await connect(mock)
    await client.wait_closed()
    assert [g.additional_data or b"" for g in client.goaways] == [b'{"reason":"Shutdown"}', b""]
    assert mock.stats.goaways == 2


async def test_goaway_after_n_responses(mock, connect, token):
    """goaway-storm style: GOAWAY with last_stream_id of the Nth answered stream, then close."""
    mock.scenario = Scenario(goaway=GoAwayFault(after_requests=2))
    client = await connect(mock)
    first = await client.request(headers=push_headers(token))
    second = await client.request(headers=push_headers(token))
    await client.wait_closed()
    assert (first.status, second.status) == (200, 200)
    assert [g.last_stream_id for g in client.goaways] == [3]


async def test_graceful_goaway_finishes_in_flight_streams(mock, connect, token):
    """A graceful GOAWAY still answers streams up to last_stream_id before closing."""
    client = await connect(mock)
    mock.latency = 0.3
    stream_id = client.send(headers=push_headers(token))
    await asyncio.wait_for(client.ping(), WAIT)  # the request has been processed
    assert await mock.goaway(GoAwayFault(graceful=True)) == 1
    assert (await client.response(stream_id)).status == 200
    await client.wait_closed()
    assert client.goaways[0].last_stream_id == stream_id


async def test_immediate_goaway_drops_in_flight_streams(mock, connect, token):
    """An immediate GOAWAY closes the connection without answering in-flight streams."""
    client = await connect(mock)
    mock.latency = 30.0
    stream_id = client.send(headers=push_headers(token))
    await asyncio.wait_for(client.ping(), WAIT)
    await mock.goaway(GoAwayFault(graceful=False, error_code=2))
    with pytest.raises(ConnectionError):
        await client.response(stream_id)
    assert client.goaways[0].error_code == 2


async def test_streams_after_goaway_are_refused(mock, connect, token):
    """Streams opened after a graceful GOAWAY's last_stream_id get REFUSED_STREAM."""
    client = await connect(mock)
    mock.latency = 30.0
    client.send(headers=push_headers(token))  # keeps the connection draining
    await asyncio.wait_for(client.ping(), WAIT)
    await mock.goaway(GoAwayFault(graceful=True))
    await client.wait_for(lambda: bool(client.goaways))
    late = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    assert late.reset == 7


# -- idle close and PING ---------------------------------------------------------------------


@pytest.mark.parametrize("with_goaway", [True, False])
async def test_idle_connection_is_closed(mock, connect, with_goaway):
    """An idle connection is closed after the scenario's idle time, with or without GOAWAY."""
    mock.scenario = Scenario(idle_close=IdleClose(after=0.05, goaway=with_goaway))
    client = await connect(mock)
    await client.wait_closed()
    assert len(client.goaways) == (1 if with_goaway else 0)


async def test_ping_never_acked(mock, connect, token):
    """With ping.ack False the PING is counted but never ACKed; requests still work."""
    mock.scenario = Scenario(ping=PingFault(ack=False))
    client = await connect(mock)
    ack = client.ping()
    assert (await client.request(headers=push_headers(token))).status == 200
    assert not ack.done()
    assert (mock.stats.pings, mock.stats.ping_acks_withheld) == (1, 1)


async def test_ping_ack_delayed(mock, connect, token):
    """With ping.delay the ACK arrives after a response to a request sent later."""
    mock.scenario = Scenario(ping=PingFault(delay=0.3))
    client = await connect(mock)
    ack = client.ping()
    assert (await client.request(headers=push_headers(token))).status == 200
    assert not ack.done()
    await asyncio.wait_for(ack, WAIT)


# -- server certificate chains ---------------------------------------------------------------


async def test_server_chain_switch_applies_to_new_connections(mock, connect, credentials, token):
    """After set_keypair, new connections get the new chain; open ones keep working."""
    old_client = await connect(mock)
    new_ca = generate_ca("rotated root")
    mock.set_keypair(new_ca.issue_server())
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(mock)
    new_client = await connect(mock, cadata=new_ca.cert_pem)
    assert (await new_client.request(headers=push_headers(token))).status == 200
    assert (await old_client.request(headers=push_headers(token))).status == 200


async def test_scenario_selects_named_chain(mock, connect):
    """A scenario's certificate name picks one of the registered server chains."""
    other = generate_ca("chain B")
    mock.add_keypair("b", other.issue_server())
    mock.scenario = Scenario(certificate="b")
    assert (await connect(mock, cadata=other.cert_pem)).settings_frames
    with pytest.raises(ValueError, match="unknown server keypair"):
        mock.scenario = Scenario(certificate="c")


@pytest.mark.parametrize(
    ("window", "message"),
    [((-10, -1), "certificate has expired"), ((1, 10), "certificate is not yet valid")],
)
async def test_expired_or_not_yet_valid_server_certificate(credentials, connect, window, message):
    """A mock serving an expired or not-yet-valid chain fails client verification."""
    now = dt.datetime.now(dt.UTC)
    keypair = credentials.ca.issue_server(
        valid_from=now + dt.timedelta(days=window[0]),
        valid_until=now + dt.timedelta(days=window[1]),
    )
    async with MockAPNs(keypair).serving() as mock:
        with pytest.raises(ssl.SSLCertVerificationError, match=message):
            await connect(mock)


def test_yaml_dump_of_scenario_is_loadable(tmp_path):
    """scenario_to_dict output written as YAML loads back to the same scenario."""
    scenario = BUILTIN_SCENARIOS["flaky"]
    path = tmp_path / "flaky.yml"
    path.write_text(yaml.safe_dump(scenario_to_dict(scenario)))
    assert load_scenario(path) == scenario


async def test_ca_rotation_alternates_chains_over_time(mock, connect):
    """rotate_certificates alternates new connections between the named chains by elapsed time."""
    other = generate_ca("chain next")
    mock.add_keypair("next", other.issue_server())
    mock.scenario = Scenario(rotate_certificates=1000.0)
    assert mock.current_keypair_name() == "default"
    mock._started_at -= 1500.0  # as if the mock had run for 25 minutes
    assert mock.current_keypair_name() == "next"
    assert (await connect(mock, cadata=other.cert_pem)).settings_frames
    assert mock.stats.tls_handshakes == 1
