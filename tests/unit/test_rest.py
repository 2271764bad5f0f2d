"""HTTP API routing and handlers (pusher-protocol.md §2.2), driven by pusher-http-python's own client.

The SDK runs unchanged; only its HTTP backend is replaced by one that hands the request, as the `requests`
backend would put it on the wire, to ``vask.protocol.rest.handle``. No sockets, no event loop.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pusher
import pusher.http
import pytest
import requests
from rest_fakes import (
    APP,
    APPS,
    DISABLED,
    NOW,
    OTHER,
    FakeHub,
    assert_error,
    assert_json,
    call,
    post_event,
    sample_hub,
    sign,
)

from vask.apps.base import App
from vask.protocol.rest import (
    Operation,
    RestCall,
    RestResponse,
    execute,
    handle,
    prepare,
)


@pytest.fixture
def hub() -> FakeHub:
    return sample_hub()


class InProcessBackend:
    """A pusher-http-python backend that answers with ``handle`` instead of the network."""

    def __init__(self, client: Any, hub: FakeHub, log: list[RestResponse]) -> None:
        self.client = client
        self.hub = hub
        self.log = log

    def send_request(self, request: Any) -> Any:
        # Let `requests` build the URL exactly as the default backend would send it.
        prepared = requests.Request(request.method, request.url, data=request.body).prepare()
        assert prepared.path_url is not None
        path, _, query = prepared.path_url.partition("?")
        body = prepared.body or b""
        assert isinstance(body, bytes)
        response = handle(request.method, path, query, body, NOW, APPS, self.hub)
        self.log.append(response)
        return pusher.http.process_response(response.status, response.text)


@pytest.fixture
def log() -> list[RestResponse]:
    return []


@pytest.fixture
def sdk(hub: FakeHub, log: list[RestResponse], monkeypatch: pytest.MonkeyPatch) -> Any:
    # The SDK stamps auth_timestamp from time.time(); pin it to the `now` the handler gets.
    monkeypatch.setattr(pusher.http.time, "time", lambda: NOW)
    return pusher.Pusher(APP.id, APP.key, APP.secret, host="127.0.0.1", port=6001, ssl=False,
                         backend=InProcessBackend, hub=hub, log=log)


# --- pusher-http-python, unchanged ---------------------------------------------------------------------

def test_sdk_trigger(sdk: Any, hub: FakeHub, log: list[RestResponse]) -> None:
    assert sdk.trigger(["project-3", "public"], "foo", {"some": "data"}) == {}
    assert hub.published == [("3", "project-3", "foo", '{"some": "data"}', None),
                             ("3", "public", "foo", '{"some": "data"}', None)]
    assert log[-1].broadcasts == 2
    assert log[-1].app == APP


def test_sdk_trigger_single_channel_with_socket_id(sdk: Any, hub: FakeHub) -> None:
    assert sdk.trigger("my-channel", "my-event", "plain string", socket_id="123.456") == {}
    assert hub.published == [("3", "my-channel", "my-event", "plain string", "123.456")]


def test_sdk_trigger_batch(sdk: Any, hub: FakeHub, log: list[RestResponse]) -> None:
    batch = [{"channel": "a", "name": "e", "data": {"x": 1}},
             {"channel": "presence-foo", "name": "f", "data": "s", "socket_id": "1.2"}]
    assert sdk.trigger_batch(batch) == {}
    assert hub.published == [("3", "a", "e", '{"x": 1}', None), ("3", "presence-foo", "f", "s", "1.2")]
    assert log[-1].broadcasts == 2


def test_sdk_send_to_user(sdk: Any, hub: FakeHub) -> None:
    assert sdk.send_to_user("42", "ev", {"a": 1}) == {}
    assert hub.published == [("3", "#server-to-user-42", "ev", '{"a": 1}', None)]


def test_sdk_channels_info(sdk: Any) -> None:
    assert sdk.channels_info(prefix_filter="presence-", attributes=["user_count"]) == {
        "channels": {"presence-foo": {"user_count": 2}, "presence-bar": {"user_count": 1}}}
    assert sdk.channels_info() == {"channels": {"presence-foo": {}, "presence-bar": {}, "public": {},
                                                "cache-news": {}}}


def test_sdk_channel_info(sdk: Any) -> None:
    assert sdk.channel_info("presence-foo", attributes=["user_count"]) == {"occupied": True, "user_count": 2}
    assert sdk.channel_info("public", attributes=["subscription_count"]) == {
        "occupied": True, "subscription_count": 5}
    assert sdk.channel_info("nobody-here") == {"occupied": False}


def test_sdk_users_info(sdk: Any) -> None:
    assert sdk.users_info("presence-foo") == {"users": [{"id": "1"}, {"id": "2"}]}


def test_sdk_terminate_user_connections(sdk: Any, hub: FakeHub, log: list[RestResponse]) -> None:
    assert sdk.terminate_user_connections("123") == {}
    assert hub.terminated == [("3", "123")]
    assert log[-1].app == APP


def test_sdk_errors_surface_as_sdk_exceptions(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pusher.errors.PusherBadRequest, match="user_count is only available"):
        sdk.channel_info("public", attributes=["user_count"])
    monkeypatch.setattr(pusher.http.time, "time", lambda: NOW - 600)
    with pytest.raises(pusher.errors.PusherBadAuth, match=r"^Timestamp expired"):
        sdk.trigger("public", "e", "d")


def test_sdk_request_matches_the_reference_capture(monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> None:
    # pusher-protocol.md §2.4 ran this same builder with time pinned to 1353088179.
    monkeypatch.setattr(pusher.http.time, "time", lambda: 1353088179)
    client = pusher.Pusher(APP.id, APP.key, APP.secret, host="127.0.0.1", port=6001, ssl=False)
    request = client._pusher_client.trigger.make_request(["project-3"], "foo", {"some": "data"})
    assert request.body == b'{"name": "foo", "channels": ["project-3"], "data": "{\\"some\\": \\"data\\"}"}'
    assert request.query_params["body_md5"] == "e99c7bd443c2257b30f72ae568153d4f"
    assert request.query_params["auth_signature"].startswith("d550b5c3")
    response = handle("POST", request.path, request.query_string, request.body, 1353088179, APPS, hub)
    assert assert_json(response) == {}


def test_sdk_get_requests_sign_the_empty_body_md5(monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> None:
    monkeypatch.setattr(pusher.http.time, "time", lambda: NOW)
    client = pusher.Pusher(APP.id, APP.key, APP.secret, host="127.0.0.1", port=6001, ssl=False)
    request = client._pusher_client.channels_info.make_request("presence-", ["user_count"])
    assert "body_md5=d41d8cd98f00b204e9800998ecf8427e" in request.query_string
    assert handle("GET", request.path, request.query_string, b"", NOW, APPS, hub).status == 200


def test_percent_encoded_query(hub: FakeHub) -> None:
    path = "/apps/3/channels"
    raw = sign(APP, "GET", path, params={"filter_by_prefix": "presence-", "info": "user_count"})
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in (p.split("=", 1) for p in raw.split("&")))
    encoded = encoded.replace("filter_by_prefix", "filter%5Fby%5Fprefix")
    assert assert_json(handle("GET", path, encoded, b"", NOW, APPS, hub)) == {
        "channels": {"presence-foo": {"user_count": 2}, "presence-bar": {"user_count": 1}}}


# --- routing, authentication, app state ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/apps", "/apps/3", "/apps/3/events/", "/apps/3/nope",
                                  "/apps//events", "/users/1", "/users/1/terminate", "apps/3/events",
                                  "/apps/3/channels/a/b", "/apps/3/channels/presence-foo/users/x",
                                  "/apps/3/channels/x/events"])
def test_unknown_path_is_404(hub: FakeHub, path: str) -> None:
    assert_error(call(hub, "POST", path, {}), 404, f"Not found: {path}")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/apps/3/events", "POST"), ("PUT", "/apps/3/batch_events", "POST"),
    ("POST", "/apps/3/channels", "GET"), ("DELETE", "/apps/3/channels/x", "GET"),
    ("POST", "/apps/3/channels/presence-foo/users", "GET"), ("GET", "/users/1/terminate_connections", "POST"),
    ("HEAD", "/apps/3/users/1/terminate_connections", "POST"),
])
def test_wrong_method_is_405(hub: FakeHub, method: str, path: str, allowed: str) -> None:
    response = call(hub, method, path)
    assert_error(response, 405, f"Method {method} not allowed on {path}: use {allowed}")
    assert ("Allow", allowed) in response.headers


def test_unknown_app_id_is_404_once_signed(hub: FakeHub) -> None:
    path = "/apps/999/events"
    body = b'{"name":"e","channels":["a"],"data":""}'
    response = handle("POST", path, sign(APP, "POST", path, body), body, NOW, APPS, hub)
    assert_error(response, 404, "Unknown app id '999'")
    assert hub.published == []


def test_unsigned_request_to_unknown_app_is_401(hub: FakeHub) -> None:
    assert_error(handle("POST", "/apps/999/events", "", b"{}", NOW, APPS, hub), 401,
                 "auth_key required: sign the request with your app key and secret")
    assert_error(call(hub, "POST", "/apps/999/events", {}, app=App(id="999", key="k", secret="s")), 401,
                 "Unknown auth_key")


def test_key_of_another_existing_app_is_401(hub: FakeHub) -> None:
    path = "/apps/3/events"
    body = b'{"name":"e","channels":["a"],"data":""}'
    response = handle("POST", path, sign(OTHER, "POST", path, body), body, NOW, APPS, hub)
    assert_error(response, 401, "auth_key other-key is not a key of app '3': check the app id and key "
                                "your client is configured with")
    assert hub.published == []


def test_bad_signature_is_401(hub: FakeHub) -> None:
    path = "/apps/3/channels"
    query = sign(APP, "GET", path).replace("auth_signature=", "auth_signature=0")
    response = handle("GET", path, query, b"", NOW, APPS, hub)
    assert response.status == 401
    assert response.text.startswith('Invalid signature: you should have sent HmacSHA256Hex("GET\\n/apps/3/')


def test_bad_body_md5_is_401(hub: FakeHub) -> None:
    path = "/apps/3/events"
    body = b'{"name":"e","channels":["a"],"data":""}'
    query = sign(APP, "POST", path, body)
    response = handle("POST", path, query, body.replace(b'""', b'"x"'), NOW, APPS, hub)
    assert response.status == 401
    assert response.text.startswith("Invalid body_md5")
    assert hub.published == []


def test_disabled_app_is_403(hub: FakeHub) -> None:
    response = post_event(hub, app=DISABLED)
    assert_error(response, 403, "App 5 is disabled: an operator must enable it before it can be used")
    assert response.app == DISABLED
    assert hub.published == []


def test_unprefixed_terminate_resolves_the_app_from_the_key(hub: FakeHub) -> None:
    assert assert_json(call(hub, "POST", "/users/u-1/terminate_connections", {}, app=OTHER)) == {}
    assert assert_json(call(hub, "POST", "/apps/3/users/u%402/terminate_connections", b"")) == {}
    assert hub.terminated == [("4", "u-1"), ("3", "u@2")]


@pytest.mark.parametrize("user", ["a%23b", "a%20b", "x" * 201])
def test_terminate_invalid_user_id_is_400(hub: FakeHub, user: str) -> None:
    response = call(hub, "POST", f"/users/{user}/terminate_connections", {})
    assert response.status == 400
    assert response.text.startswith("Invalid user id")
    assert hub.terminated == []


# --- GET channels ----------------------------------------------------------------------------------------

def test_channels_listing(hub: FakeHub) -> None:
    assert assert_json(call(hub, "GET", "/apps/3/channels", params={"filter_by_prefix": "cache-"})) == {
        "channels": {"cache-news": {}}}  # only occupied channels
    assert assert_json(call(hub, "GET", "/apps/3/channels", params={"info": "subscription_count"})) == {
        "channels": {"presence-foo": {"subscription_count": 3}, "presence-bar": {"subscription_count": 1},
                     "public": {"subscription_count": 5}, "cache-news": {"subscription_count": 1}}}
    assert assert_json(call(hub, "GET", "/apps/3/channels", params={"filter_by_prefix": "nothing"})) == {
        "channels": {}}


def test_channels_listing_user_count_needs_presence_prefix(hub: FakeHub) -> None:
    message = "info=user_count is only available for presence channels: add filter_by_prefix=presence-"
    assert_error(call(hub, "GET", "/apps/3/channels", params={"info": "user_count"}), 400, message)
    assert_error(call(hub, "GET", "/apps/3/channels", params={"info": "user_count", "filter_by_prefix": "p"}),
                 400, message)
    assert_error(call(hub, "GET", "/apps/3/channels", params={"info": "cache"}), 400,
                 "Unknown info attribute 'cache': use one of subscription_count, user_count")


# --- GET channel -----------------------------------------------------------------------------------------

def test_channel_info_attributes(hub: FakeHub) -> None:
    assert assert_json(call(hub, "GET", "/apps/3/channels/cache-news", params={
        "info": "subscription_count,cache"})) == {
        "occupied": True, "subscription_count": 1, "cache": {"data": '{"x":1}', "ttl": 120}}
    assert assert_json(call(hub, "GET", "/apps/3/channels/cache-empty", params={"info": "cache"})) == {
        "occupied": False, "cache": None}
    assert assert_json(call(hub, "GET", "/apps/3/channels/presence-cache-x", params={
        "info": "user_count,cache"})) == {"occupied": False, "user_count": 0, "cache": None}
    assert assert_json(call(hub, "GET", "/apps/3/channels/presence-foo")) == {"occupied": True}


@pytest.mark.parametrize(("channel", "info", "message"), [
    ("public", "user_count", "info=user_count is only available for presence channels, not 'public'"),
    ("presence-foo", "subscription_count",
     "info=subscription_count is not available for presence channels ('presence-foo'): use user_count"),
    ("public", "cache", "info=cache is only available for cache channels, not 'public'"),
    ("private-x", "cache", "info=cache is only available for cache channels, not 'private-x'"),
    ("public", "members",
     "Unknown info attribute 'members': use one of cache, subscription_count, user_count"),
    ("bad%20name", "", "Invalid channel name 'bad name': only letters, digits and _ - = @ , . ; are allowed "
                       "('#' is reserved)"),
])
def test_channel_info_wrong_attribute_is_400(hub: FakeHub, channel: str, info: str, message: str) -> None:
    params = {"info": info} if info else None
    assert_error(call(hub, "GET", f"/apps/3/channels/{channel}", params=params), 400, message)


# --- GET users -------------------------------------------------------------------------------------------

def test_users(hub: FakeHub) -> None:
    assert assert_json(call(hub, "GET", "/apps/3/channels/presence-foo/users")) == {
        "users": [{"id": "1"}, {"id": "2"}]}
    assert assert_json(call(hub, "GET", "/apps/3/channels/presence-cache-nobody/users")) == {"users": []}


@pytest.mark.parametrize("channel", ["public", "private-x", "cache-news", "private-encrypted-x"])
def test_users_of_a_non_presence_channel_is_400(hub: FakeHub, channel: str) -> None:
    assert_error(call(hub, "GET", f"/apps/3/channels/{channel}/users"), 400,
                 f"Users can only be listed for presence channels, not '{channel}'")


# --- the two-step API ------------------------------------------------------------------------------------

def test_prepare_reports_what_will_happen_before_anything_runs(hub: FakeHub) -> None:
    body = json.dumps({"name": "e", "channels": ["a", "b"], "data": "d"}).encode()
    path = "/apps/3/events"
    prepared = prepare("POST", path, sign(APP, "POST", path, body), body, NOW, APPS)
    assert isinstance(prepared, RestCall)
    assert prepared.operation is Operation.TRIGGER
    assert prepared.broadcasts == 2
    assert not prepared.is_read
    assert prepared.app == APP
    assert hub.published == []
    assert execute(prepared, hub).broadcasts == 2
    assert len(hub.published) == 2

    path = "/apps/3/channels/presence-foo/users"
    read = prepare("GET", path, sign(APP, "GET", path), b"", NOW, APPS)
    assert isinstance(read, RestCall)
    assert read.is_read
    assert read.broadcasts == 0


def test_prepare_returns_errors_as_responses() -> None:
    response = prepare("GET", "/nope", "", b"", NOW, APPS)
    assert isinstance(response, RestResponse)
    assert response.status == 404
    assert response.app is None
