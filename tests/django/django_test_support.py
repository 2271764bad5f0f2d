"""Constants shared by tests/django (a uniquely named module: every conftest is imported as ``conftest``)."""

from __future__ import annotations

TEST_VASK = {"APP_ID": "123456", "KEY": "test-key", "SECRET": "test-secret", "HOST": "127.0.0.1", "PORT": 6001}
