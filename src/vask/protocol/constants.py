"""Pusher protocol numbers: close/error codes and default limits (reference: pusher-protocol.md §1.5, §1.10)."""

from __future__ import annotations

from typing import Final

# Close codes and pusher:error codes.
SSL_ONLY: Final = 4000
APP_NOT_FOUND: Final = 4001
APP_DISABLED: Final = 4003
APP_OVER_QUOTA: Final = 4004
PATH_NOT_FOUND: Final = 4005
INVALID_VERSION: Final = 4006
UNSUPPORTED_PROTOCOL: Final = 4007
NO_PROTOCOL: Final = 4008
UNAUTHORIZED: Final = 4009
OVER_CAPACITY: Final = 4100
RECONNECT: Final = 4200
PONG_NOT_RECEIVED: Final = 4201
INACTIVE: Final = 4202
CLIENT_EVENT_RATE_LIMIT: Final = 4301
WATCHLIST_LIMIT: Final = 4302

MIN_PROTOCOL: Final = 5
MAX_PROTOCOL: Final = 7

# Defaults; every one of these can be overridden per app.
ACTIVITY_TIMEOUT: Final = 120  # seconds, announced in connection_established
PONG_TIMEOUT: Final = 30  # seconds to wait for a pong after our ping
MAX_EVENT_DATA_BYTES: Final = 10 * 1024
MAX_CHANNELS_PER_TRIGGER: Final = 100
MAX_BATCH_SIZE: Final = 10
MAX_EVENT_NAME_LENGTH: Final = 200
MAX_CHANNEL_NAME_LENGTH: Final = 200
MAX_PRESENCE_MEMBERS: Final = 100
MAX_PRESENCE_USER_INFO_BYTES: Final = 1024
MAX_PRESENCE_USER_ID_LENGTH: Final = 128
MAX_USER_ID_LENGTH: Final = 200
MAX_WATCHLIST: Final = 100
CLIENT_EVENTS_PER_SECOND: Final = 10
CACHE_TTL: Final = 30 * 60  # seconds a cache channel keeps its last event
SUBSCRIPTION_COUNT_THROTTLE_ABOVE: Final = 100  # subscribers
SUBSCRIPTION_COUNT_INTERVAL: Final = 5.0  # seconds between counts on busy channels
USER_AUTH_TIMEOUT: Final = 30  # seconds for authorized connections

# Transport bounds.
MAX_WS_FRAME_BYTES: Final = 64 * 1024
MAX_HTTP_BODY_BYTES: Final = 1024 * 1024
MAX_HTTP_HEADER_BYTES: Final = 16 * 1024
MAX_OUTBOX_BYTES: Final = 1024 * 1024

TIMESTAMP_WINDOW: Final = 600  # seconds for signed HTTP API requests
EMPTY_BODY_MD5: Final = "d41d8cd98f00b204e9800998ecf8427e"
