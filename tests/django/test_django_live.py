"""vask.contrib.django against a real ``vask serve``: what the views sign the server accepts, and what the
helpers publish arrives (after commit, never after a rollback, not back to the sender)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client, RequestFactory
from django_test_support import alice_fixture, bob_fixture  # noqa: F401  (fixtures; configures Django)
from django_ws import PusherSocket

from vask.contrib.django import authorizers, same_user, trigger, trigger_on_commit, vask_client

DJANGO_APP = {"id": "1000001", "key": "django-key", "secret": "django-secret"}  # hosted Pusher's defaults


@pytest.fixture
def live(server_factory: Any, settings: Any) -> Iterator[Any]:
    """A real server, settings pointing at it, the order rule, and cleanup."""
    server = server_factory([DJANGO_APP])
    app = server.app
    settings.VASK = {"URL": f"http://{app.key}:{app.secret}@{server.host}:{server.port}/apps/{app.id}"}
    added = "private-orders.{user_id}" not in authorizers.patterns
    if added:
        authorizers.register("private-orders.{user_id}", same_user())
    sockets: list[PusherSocket] = []
    server.sockets = sockets
    yield server
    for socket in sockets:
        socket.close()
    if added:
        authorizers.unregister("private-orders.{user_id}")


def connect(server: Any) -> PusherSocket:
    socket = PusherSocket(server)
    server.sockets.append(socket)
    return socket


def logged_in(user: Any) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/page")
    return client, client.cookies["csrftoken"].value


def assert_next_event(socket: PusherSocket, channel: str, event: str) -> Any:
    frame = socket.next_frame()
    assert (frame.get("channel"), frame.get("event")) == (channel, event), frame
    return json.loads(frame["data"])


@pytest.mark.django_db
def test_views_sign_what_the_server_accepts(live: Any, alice: Any, bob: Any) -> None:
    client, token = logged_in(alice)
    socket = connect(live)

    answer = client.post("/pusher/auth", {"socket_id": socket.socket_id, "channel_name": f"private-orders.{alice.pk}"},
                         HTTP_X_CSRFTOKEN=token).json()
    assert socket.subscribe(f"private-orders.{alice.pk}", answer)["event"] == "pusher_internal:subscription_succeeded"

    authorizers.register("presence-doc.{doc_id}", lambda user, doc_id: True)
    try:
        answer = client.post("/pusher/auth", {"socket_id": socket.socket_id, "channel_name": "presence-doc.1"},
                             HTTP_X_CSRFTOKEN=token).json()
    finally:
        authorizers.unregister("presence-doc.{doc_id}")
    joined = socket.subscribe("presence-doc.1", answer)
    assert joined["event"] == "pusher_internal:subscription_succeeded"
    assert json.loads(joined["data"])["presence"]["hash"] == {str(alice.pk): {"name": "Alice Liddell"}}

    answer = client.post("/pusher/user-auth", {"socket_id": socket.socket_id}, HTTP_X_CSRFTOKEN=token).json()
    socket.send("pusher:signin", answer)
    signed_in = socket.next_frame("pusher:signin_success")
    assert json.loads(json.loads(signed_in["data"])["user_data"])["id"] == str(alice.pk)

    # bob's browser asking for alice's channel gets a 403 from the view, so it has nothing to subscribe with
    bob_client, bob_token = logged_in(bob)
    refused = bob_client.post("/pusher/auth", {"socket_id": socket.socket_id,
                                               "channel_name": f"private-orders.{alice.pk}"},
                              HTTP_X_CSRFTOKEN=bob_token)
    assert refused.status_code == 403
    # and a signature for one socket is worthless on another
    other = connect(live)
    stolen = other.subscribe(f"private-orders.{alice.pk}", answer_for_private(client, token, socket, alice))
    assert stolen["event"] in ("pusher:error", "pusher:subscription_error"), stolen


def answer_for_private(client: Client, token: str, socket: PusherSocket, user: Any) -> dict[str, Any]:
    return client.post("/pusher/auth", {"socket_id": socket.socket_id, "channel_name": f"private-orders.{user.pk}"},
                       HTTP_X_CSRFTOKEN=token).json()  # type: ignore[no-any-return]


def test_trigger_reaches_subscribers_but_not_the_sender(live: Any) -> None:
    sender, watcher = connect(live), connect(live)
    for socket in (sender, watcher):
        assert socket.subscribe("feed")["event"] == "pusher_internal:subscription_succeeded"

    vask_client.trigger("feed", "feed.item", {"text": "via the singleton"})
    for socket in (sender, watcher):
        assert assert_next_event(socket, "feed", "feed.item") == {"text": "via the singleton"}

    request = RequestFactory().post("/feed", HTTP_X_SOCKET_ID=sender.socket_id)
    trigger("feed", "feed.item", {"text": "only to others"}, request=request)
    assert assert_next_event(watcher, "feed", "feed.item") == {"text": "only to others"}
    trigger(["feed"], "marker", {})
    # the sender's next event is the marker: the excluded event was never sent to it
    assert_next_event(sender, "feed", "marker")


@pytest.mark.django_db(transaction=True)
def test_trigger_on_commit_publishes_after_commit_and_never_after_rollback(live: Any, alice: Any) -> None:
    from django.contrib.auth.models import User

    socket = connect(live)
    socket.subscribe("orders")
    with transaction.atomic():
        User.objects.filter(pk=alice.pk).update(first_name="Alicia")
        trigger_on_commit("orders", "order.shipped", {"id": 42, "who": "Alicia"})
        with pytest.raises(TimeoutError):
            socket.next_frame(timeout=0.3)  # nothing before the commit
    assert assert_next_event(socket, "orders", "order.shipped") == {"id": 42, "who": "Alicia"}

    with pytest.raises(RuntimeError), transaction.atomic():
        trigger_on_commit("orders", "order.shipped", {"id": 43})
        raise RuntimeError("rolled back")
    trigger_on_commit("orders", "marker", {})  # outside a transaction: at once
    assert_next_event(socket, "orders", "marker")


@pytest.mark.django_db(transaction=True)
def test_failed_publish_after_commit_is_logged_not_raised(live: Any, caplog: Any) -> None:
    live.stop()  # the server is gone: the publish fails
    with transaction.atomic():
        trigger_on_commit("orders", "order.shipped", {"id": 1})
    assert "publishing 'order.shipped' to 'orders' after commit failed" in caplog.text
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 (any pusher/requests error)
        trigger_on_commit("orders", "order.shipped", {"id": 1}, robust=False)
