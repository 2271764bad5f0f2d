"""Two real nodes on the machine's Redis: one occupancy or presence transition gives one webhook, whichever
node the clients are on (soketi #438/#616 sent one per node). Skipped, with the reason, without Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_helpers import APP, FAST_ENV, Client, Receiver, names, verify_all

from conftest import LISTEN_RE, VaskServer, vask_cli
from conftest import TestApp as Credentials  # not named Test*: pytest would try to collect it

REDIS = ("127.0.0.1", 6379)


def redis_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(REDIS, timeout=1):
        return True
    return False


def start_node(data_dir: Path, env: dict[str, str]) -> VaskServer:
    """One `vask serve` process on an existing data dir (the apps are already there)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vask", "serve", "--port", "0", "--no-default-app",
         "--broker", f"redis://{REDIS[0]}:{REDIS[1]}/0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "VASK_DATA_DIR": str(data_dir), **env})
    assert process.stdout is not None
    output: list[str] = []
    for line in process.stdout:
        output.append(line)
        found = LISTEN_RE.search(line)
        if found:
            break
    else:
        raise RuntimeError("vask serve exited before listening:\n" + "".join(output))
    app = Credentials(APP["id"], APP["key"], APP["secret"])
    node = VaskServer(found.group(2), int(found.group(3)), found.group(1), data_dir, process,
                      {app.id: app}, output)
    stream = process.stdout
    threading.Thread(target=lambda: output.extend(stream), daemon=True).start()
    return node


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Receiver, list[VaskServer]]]:
    if not redis_reachable():
        pytest.skip(f"Redis is not reachable on {REDIS[0]}:{REDIS[1]}")
    receiver = Receiver()
    args = ["apps", "create", "--json"] + [f"--{k}={v}" for k, v in APP.items() if k in ("id", "key", "secret")]
    vask_cli(tmp_path, *args, "--set", "client_events=true")
    vask_cli(tmp_path, "apps", "webhooks", "add", str(APP["id"]), receiver.url())
    env = {**FAST_ENV, "VASK_BROKER_PREFIX": f"wh{uuid.uuid4().hex[:10]}", "VASK_NODE_TIMEOUT": "2"}
    started = [start_node(tmp_path, env), start_node(tmp_path, env)]
    yield receiver, started
    for node in started:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.process.kill()
    receiver.close()


def test_one_webhook_per_cluster_wide_transition(nodes: tuple[Receiver, list[VaskServer]]) -> None:
    receiver, (one, two) = nodes
    a = Client(one)
    a.subscribe("presence-room", "u1")
    a.subscribe("news")
    receiver.wait_events(lambda e: len(e) == 3)
    b = Client(two)  # the same user and channels on the other node: no new transition
    b.subscribe("presence-room", "u1")
    b.subscribe("news")
    c = Client(two)
    c.subscribe("presence-room", "u2")  # a new member, joining on node two
    receiver.wait_events(lambda e: "member_added" in names(e) and len(e) == 4)
    b.close()  # u1 and both channels are still present on node one
    time.sleep(1.0)
    a.close()
    c.close()
    events = receiver.wait_events(lambda e: names(e).count("channel_vacated") == 2, timeout=8)
    time.sleep(0.5)
    events = receiver.events()
    assert sorted((e["name"], e["channel"], e.get("user_id", "")) for e in events) == sorted([
        ("channel_occupied", "presence-room", ""), ("channel_occupied", "news", ""),
        ("member_added", "presence-room", "u1"), ("member_added", "presence-room", "u2"),
        ("member_removed", "presence-room", "u1"), ("member_removed", "presence-room", "u2"),
        ("channel_vacated", "presence-room", ""), ("channel_vacated", "news", "")])
    verify_all(one.app, receiver)


def test_client_events_are_sent_by_the_senders_node_only(nodes: tuple[Receiver, list[VaskServer]]) -> None:
    receiver, (one, two) = nodes
    a, b = Client(one), Client(two)
    a.subscribe("private-chat")
    b.subscribe("private-chat")
    b.send("client-hello", {"n": 1}, "private-chat")
    a.recv("client-hello")
    time.sleep(0.5)
    sent = [e for e in receiver.events() if e["name"] == "client_event"]
    assert sent == [{"name": "client_event", "channel": "private-chat", "event": "client-hello",
                     "data": '{"n":1}', "socket_id": b.socket_id}]
    a.close()
    b.close()
    verify_all(one.app, receiver)


def test_leaving_on_one_node_and_returning_on_another_sends_nothing(
        nodes: tuple[Receiver, list[VaskServer]]) -> None:
    receiver, (one, two) = nodes
    a = Client(one)
    a.subscribe("presence-room", "u1")
    receiver.wait_events(lambda e: len(e) == 2)  # channel_occupied, member_added
    a.close()  # held for the vacate delay in the shared store...
    b = Client(two)
    b.subscribe("presence-room", "u1")  # ...and cancelled by the return on the other node
    time.sleep(float(FAST_ENV["VASK_WEBHOOK_VACATE_DELAY"]) + 1.0)
    assert sorted(names(receiver.events())) == ["channel_occupied", "member_added"]
    b.close()  # a real departure is still reported, once
    events = receiver.wait_events(lambda e: names(e).count("channel_vacated") == 1, timeout=8)
    time.sleep(0.5)
    assert sorted(names(receiver.events())) == sorted(["channel_occupied", "member_added", "member_removed",
                                                       "channel_vacated"])
    assert events
    verify_all(one.app, receiver)
