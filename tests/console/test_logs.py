"""Server logs of a real `vask serve`: one line per console event at debug (JSON with log_format=json), and
at info the refused connections, authentication failures and quota refusals with their reason."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pusher
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import VaskServer
from vask.console.events import ConsoleEvent
from vask.console.feed import ConsoleFeed, log_event
from vask.console.logs import JsonFormatter

APP = {"id": "5151", "key": "logs-key", "secret": "logs-secret", "max_connections": 1}


def socket_id_of(ws: Any) -> str:
    while True:
        message = json.loads(ws.recv(timeout=5))
        if message["event"] == "pusher:connection_established":
            return str(json.loads(message["data"])["socket_id"])


def wait_for(server: VaskServer, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(server.output)):
        assert time.monotonic() < deadline, f"{text!r} not logged; got:\n{''.join(server.output)}"
        time.sleep(0.05)


def traffic(server: VaskServer) -> str:
    """One accepted connection that subscribes twice (once with a bad signature), a second one refused by
    the app's connection limit, one with an unknown key, and an HTTP call with a wrong secret."""
    with connect(f"{server.ws_url}/app/logs-key?protocol=7", additional_headers={"Origin": "https://a.test"}) as ws:
        socket_id = socket_id_of(ws)
        ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}}))
        ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "logs-key:bad"}}))
        for key in ("logs-key", "nope"):  # over the app's limit of 1; unknown
            with connect(f"{server.ws_url}/app/{key}?protocol=7") as refused, pytest.raises(ConnectionClosed):
                while True:
                    refused.recv(timeout=5)
        wrong = pusher.Pusher(app_id="5151", key="logs-key", secret="wrong", host=server.host, port=server.port,
                              ssl=False)
        with pytest.raises(pusher.errors.PusherBadAuth):
            wrong.trigger("news", "e", {})
        time.sleep(0.2)
    return socket_id


def test_info_logs_refusals_with_the_reason(server_factory: Any) -> None:
    server: VaskServer = server_factory([APP], env={"VASK_LOG_LEVEL": "info"})
    traffic(server)
    wait_for(server, "HTTP request refused app=5151 status=401")
    wait_for(server, "connection refused app=5151 code=4004: Application is over connection quota")
    wait_for(server, "connection refused code=4001 key=nope: App key nope does not exist.")
    wait_for(server, "subscription refused app=5151")
    server.stop()
    log = "".join(server.output)
    assert "Invalid signature" in log
    assert "vask.console" not in log  # console events are debug lines


def test_debug_logs_one_json_line_per_console_event(server_factory: Any) -> None:
    server: VaskServer = server_factory([APP], "--log-level", "debug", "--log-format", "json")
    socket_id = traffic(server)
    wait_for(server, '"type":"disconnection"')
    server.stop()
    lines = [json.loads(line) for line in server.output if line.startswith("{")]
    console = [line["event"] for line in lines if line["logger"] == "vask.console"]
    mine = [e for e in console if e.get("socket_id") == socket_id]
    assert [e["type"] for e in mine] == ["connection", "subscribed", "error", "unsubscribed", "disconnection"]
    assert mine[0]["details"] == {"origin": "https://a.test"}
    assert [e["type"] for e in console if e["type"] == "occupied"] == ["occupied"]  # once, not per viewer
    refusals = [line for line in lines if line["logger"] == "vask.refused"]
    assert {(r["kind"], r.get("code"), r.get("status")) for r in refusals} >= {
        ("connection", 4004, None), ("connection", 4001, None), ("HTTP request", None, 401),
        ("subscription", None, None)}
    assert all(r["level"] == "info" and r["reason"] for r in refusals)
    # Every line is JSON (nothing in text format slipped through), apart from the start-up banner (everything up
    # to "listening on") and the last words.
    started = next(i for i, line in enumerate(server.output) if " listening on " in line)
    assert all(line.startswith("{") or line.startswith("Vask stopped") or not line.strip()
               for line in server.output[started + 1:])


def test_json_formatter_and_text_line() -> None:
    event = ConsoleEvent("a1", "api_message", 1.5, "n1", "eu", "orders", None, {"event": "e", "data": "x" * 500})
    logger = logging.getLogger("vask.console")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        log_event(event)
        feed = ConsoleFeed()
        assert feed.log_events and feed.watching("any-app")  # debug logging watches every app
    finally:
        logger.setLevel(old)
        logger.removeHandler(handler)
    (record,) = records
    text = record.getMessage()
    assert text.startswith("api_message app=a1 channel=orders node=n1 event=e data=xxx")
    assert len(text) < 300  # long data is cut in the text line
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["logger"] == "vask.console" and parsed["level"] == "debug" and parsed["message"] == text
    assert parsed["event"] == event.to_dict()
