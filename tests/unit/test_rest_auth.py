"""Signed HTTP API requests (pusher-protocol.md §2.3-2.4): vectors, every rejection and its text."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vask.apps.base import App
from vask.protocol.rest_auth import (
    AppPathMismatch,
    RestAuthError,
    parse_query,
    sign_request,
    string_to_sign,
    verify_request,
)

# The worked example of Pusher's REST API docs.
DOC_APP = App(id="3", key="278d425bdf160c739803", secret="7ad3773142a6692b25b8")
DOC_TS = 1353088179
DOC_BODY = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
DOC_MD5 = "ec365a775a4cd0599faeb73354201b6f"
DOC_SIGNATURE = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
DOC_STRING = ("POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
              "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f")
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
OTHER_APP = App(id="4", key="otherkey", secret="othersecret")
APPS = {app.key: app for app in (DOC_APP, OTHER_APP)}


def lookup(key: str) -> App | None:
    return APPS.get(key)


def client_sign(secret: str, method: str, path: str, params: dict[str, str]) -> str:
    """What a Pusher SDK computes, written independently of the code under test."""
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    message = "\n".join([method, path, query])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_query(method: str, path: str, body: bytes = b"", ts: int = DOC_TS, app: App = DOC_APP,
                 extra: dict[str, str] | None = None, md5: bool = True, encode: bool = False) -> str:
    params = {"auth_key": app.key, "auth_timestamp": str(ts), "auth_version": "1.0", **(extra or {})}
    if md5:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = client_sign(app.secret, method, path, params)
    if encode:
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in params.items())


def doc_query(signature: str = DOC_SIGNATURE, **changes: str) -> str:
    params = {"auth_key": DOC_APP.key, "auth_timestamp": str(DOC_TS), "auth_version": "1.0",
              "body_md5": DOC_MD5, "auth_signature": signature, **changes}
    return "&".join(f"{k}={v}" for k, v in params.items())


def reject(query: str, body: bytes = b"", now: float = DOC_TS, method: str = "POST",
           path: str = "/apps/3/events", path_app_id: str | None = None) -> RestAuthError:
    with pytest.raises(RestAuthError) as caught:
        verify_request(method, path, query, body, now, lookup, path_app_id)
    assert caught.value.status == 401
    return caught.value


# --- the documented vector -------------------------------------------------------------------------------

def test_documented_body_md5() -> None:
    assert hashlib.md5(DOC_BODY).hexdigest() == DOC_MD5


def test_documented_string_to_sign_and_signature() -> None:
    params = parse_query(doc_query())
    assert string_to_sign("POST", "/apps/3/events", params) == DOC_STRING
    assert sign_request(DOC_APP.secret, "post", "/apps/3/events", params) == DOC_SIGNATURE


def test_documented_request_verifies() -> None:
    signed = verify_request("POST", "/apps/3/events", doc_query(), DOC_BODY, DOC_TS, lookup, "3")
    assert signed.app == DOC_APP
    assert signed.get("body_md5") == DOC_MD5
    assert signed.get("auth_signature") is None  # never handed on
    assert signed.get("missing") is None


def test_auth_signature_position_does_not_matter() -> None:
    # pusher-http-python puts auth_signature in sorted position, other clients last.
    query = (f"auth_key={DOC_APP.key}&auth_signature={DOC_SIGNATURE}&auth_timestamp={DOC_TS}"
             f"&auth_version=1.0&body_md5={DOC_MD5}")
    verify_request("POST", "/apps/3/events", query, DOC_BODY, DOC_TS, lookup)


# --- query parsing --------------------------------------------------------------------------------------

def test_parse_query_decodes_lowercases_and_keeps_duplicates() -> None:
    assert parse_query("A=1&channels[]=b&channels%5B%5D=a&info=user_count%2Csubscription_count&&flag") == (
        ("a", "1"), ("channels[]", "b"), ("channels[]", "a"),
        ("info", "user_count,subscription_count"), ("flag", ""))


def test_string_to_sign_keeps_sent_order_of_repeated_keys_and_does_not_escape() -> None:
    params = parse_query("name=Something%20else&channels[]=z&channels[]=a&auth_key=foo&auth_signature=x")
    assert string_to_sign("get", "/p", params) == (
        "GET\n/p\nauth_key=foo&channels[]=z&channels[]=a&name=Something else")


def test_percent_encoded_query_verifies() -> None:
    path = "/apps/3/channels"
    extra = {"filter_by_prefix": "presence-", "info": "user_count,subscription_count"}
    query = signed_query("GET", path, extra=extra, encode=True)
    assert "%2C" in query
    signed = verify_request("GET", path, query, b"", DOC_TS, lookup, "3")
    assert signed.get("info") == "user_count,subscription_count"


def test_uppercase_keys_are_lowercased_before_signing() -> None:
    query = signed_query("GET", "/apps/3/channels", extra={"filter_by_prefix": "presence-"})
    query = query.replace("filter_by_prefix", "FILTER_BY_PREFIX").replace("auth_key", "Auth_Key")
    signed = verify_request("GET", "/apps/3/channels", query, b"", DOC_TS, lookup)
    assert signed.get("filter_by_prefix") == "presence-"


# --- body_md5 -------------------------------------------------------------------------------------------

def test_get_with_empty_body_md5_is_accepted_and_signed() -> None:
    query = signed_query("GET", "/apps/3/channels")
    assert f"body_md5={EMPTY_MD5}" in query
    verify_request("GET", "/apps/3/channels", query, b"", DOC_TS, lookup)


def test_get_without_body_md5_is_accepted() -> None:
    verify_request("GET", "/apps/3/channels", signed_query("GET", "/apps/3/channels", md5=False), b"",
                   DOC_TS, lookup)


def test_empty_body_with_another_md5_is_rejected() -> None:
    query = signed_query("GET", "/apps/3/channels", extra={"body_md5": DOC_MD5}, md5=False)
    error = reject(query, method="GET", path="/apps/3/channels")
    assert error.message == (f"Invalid body_md5 '{DOC_MD5}': the request has no body, whose MD5 is "
                             f"{EMPTY_MD5}")


def test_body_without_body_md5_is_rejected() -> None:
    query = signed_query("POST", "/apps/3/events", DOC_BODY, md5=False)
    assert reject(query, DOC_BODY).message == "body_md5 required: send the hex MD5 of the request body"


def test_body_md5_mismatch_is_rejected() -> None:
    # Correctly signed, but over the MD5 of another body: the body was changed on the way.
    other = b'{"other": 1}'
    query = signed_query("POST", "/apps/3/events", other)
    error = reject(query, DOC_BODY)
    assert error.message == (f"Invalid body_md5: you sent '{hashlib.md5(other).hexdigest()}' "
                             f"but the MD5 of the body received is {DOC_MD5}")


# --- timestamp ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("skew", [-599, -1, 0, 1, 599, 599.9, -599.9])
def test_timestamp_within_window_is_accepted(skew: float) -> None:
    verify_request("POST", "/apps/3/events", doc_query(), DOC_BODY, DOC_TS + skew, lookup)


@pytest.mark.parametrize("skew", [-600, 600, 601, -86400])
def test_timestamp_outside_window_is_rejected(skew: int) -> None:
    error = reject(doc_query(), DOC_BODY, now=DOC_TS + skew)
    given_iso = "2012-11-16T17:49:39Z"
    assert error.message.startswith(f"Timestamp expired: Given timestamp ({given_iso}) not within 600s "
                                    "of server time (")


def test_timestamp_expired_text() -> None:
    error = reject(doc_query(), DOC_BODY, now=DOC_TS + 3600)
    assert error.message == ("Timestamp expired: Given timestamp (2012-11-16T17:49:39Z) not within 600s "
                             "of server time (2012-11-16T18:49:39Z)")


def test_timestamp_required() -> None:
    query = "&".join(p for p in doc_query().split("&") if not p.startswith("auth_timestamp"))
    assert reject(query, DOC_BODY).message == "Timestamp required"
    assert reject(doc_query(auth_timestamp=""), DOC_BODY).message == "Timestamp required"


@pytest.mark.parametrize("value", ["abc", "1e9", "0x10", "12 3", "9" * 40])
def test_malformed_timestamp_is_rejected(value: str) -> None:
    error = reject(doc_query(auth_timestamp=value), DOC_BODY)
    assert error.message.startswith("Invalid auth_timestamp")


def test_huge_timestamp_is_reported_not_crashing() -> None:
    error = reject(doc_query(auth_timestamp="999999999999999"), DOC_BODY)
    assert error.message.startswith("Timestamp expired: Given timestamp (999999999999999)")


# --- version, key, signature ----------------------------------------------------------------------------

def test_version_required() -> None:
    query = "&".join(p for p in doc_query().split("&") if not p.startswith("auth_version"))
    assert reject(query, DOC_BODY).message == "Version required"


def test_version_not_supported() -> None:
    assert reject(doc_query(auth_version="2.0"), DOC_BODY).message == "Version not supported"


def test_unknown_auth_key() -> None:
    assert reject(doc_query(auth_key="nope"), DOC_BODY).message == "Unknown auth_key"


def test_missing_auth_key() -> None:
    query = "&".join(p for p in doc_query().split("&") if not p.startswith("auth_key"))
    assert reject(query, DOC_BODY).message.startswith("auth_key required")


def test_duplicate_auth_parameter_is_rejected() -> None:
    error = reject(doc_query() + f"&auth_key={DOC_APP.key}", DOC_BODY)
    assert error.message == "Duplicate query parameter auth_key: send it once"


def test_invalid_signature_text() -> None:
    bad = "5688f4c2" + "0" * 56
    error = reject(doc_query(signature=bad), DOC_BODY)
    assert error.message == (
        'Invalid signature: you should have sent HmacSHA256Hex("POST\\n/apps/3/events\\nauth_key='
        '278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5='
        'ec365a775a4cd0599faeb73354201b6f", your_secret_key), but you sent "' + bad + '"')


def test_missing_signature_is_an_invalid_signature() -> None:
    query = "&".join(p for p in doc_query().split("&") if not p.startswith("auth_signature"))
    assert reject(query, DOC_BODY).message.endswith('your_secret_key), but you sent ""')


def test_signature_covers_method_path_and_parameters() -> None:
    reject(doc_query(), DOC_BODY, method="PUT")
    reject(doc_query(), DOC_BODY, path="/apps/3/batch_events")
    reject(doc_query() + "&info=user_count", DOC_BODY)


def test_signature_from_another_secret_is_rejected() -> None:
    query = signed_query("POST", "/apps/3/events", DOC_BODY,
                         app=App(id="3", key=DOC_APP.key, secret="wrong"))
    assert reject(query, DOC_BODY).message.startswith("Invalid signature:")


def test_key_of_another_app_than_the_path_names() -> None:
    query = signed_query("POST", "/apps/3/events", DOC_BODY, app=OTHER_APP)
    verify_request("POST", "/apps/3/events", query, DOC_BODY, DOC_TS, lookup)  # no path id: fine
    with pytest.raises(AppPathMismatch) as caught:
        verify_request("POST", "/apps/3/events", query, DOC_BODY, DOC_TS, lookup, "3")
    assert caught.value.status == 401
    assert caught.value.signed_app == OTHER_APP
    assert caught.value.path_app_id == "3"
    assert caught.value.message.startswith("auth_key otherkey is not a key of app '3'")


def test_path_is_checked_only_after_the_signature() -> None:
    # Without a valid signature nobody learns which app ids exist.
    query = signed_query("POST", "/apps/3/events", DOC_BODY, app=App(id="4", key="otherkey", secret="x"))
    error = reject(query, DOC_BODY, path_app_id="3")
    assert not isinstance(error, AppPathMismatch)


# --- properties -----------------------------------------------------------------------------------------

_RESERVED = {"auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"}
param_keys = st.from_regex(r"\A[a-z_\[\]]{1,12}\Z").filter(lambda k: k not in _RESERVED)
param_values = st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=300),
    extra=st.dictionaries(param_keys, param_values, max_size=4),
    method=st.sampled_from(["GET", "POST"]),
    path=st.from_regex(r"\A(/[-a-zA-Z0-9_=@,.;]{1,10}){1,4}\Z"),
    skew=st.integers(min_value=-599, max_value=599),
    encode=st.booleans(),
    data=st.data(),
)
def test_signed_requests_verify_and_any_body_byte_change_is_rejected(
        body: bytes, extra: dict[str, str], method: str, path: str, skew: int, encode: bool,
        data: st.DataObject) -> None:
    if not encode:
        # Sent unescaped, values must not contain the separators.
        extra = {k: v for k, v in extra.items() if not set(v) & set("&=%#")}
    query = signed_query(method, path, body, extra=extra, encode=encode)
    signed = verify_request(method, path, query, body, DOC_TS + skew, lookup)
    assert signed.app == DOC_APP
    for key, value in extra.items():
        assert signed.get(key) == value

    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="index")
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != body[index]), label="byte")
    changed = body[:index] + bytes([byte]) + body[index + 1:]
    with pytest.raises(RestAuthError):
        verify_request(method, path, query, changed, DOC_TS + skew, lookup)
