"""API keys: environment first, then the keyring; the file fallback is owner-only and outside
the app's own dirs."""

from __future__ import annotations

import os
import stat

import pytest

from cm_desktop import credentials


def test_keyring_roundtrip_per_url_and_default(_isolated_home):
    assert credentials.get_api_key("http://h:1/v1") is None
    credentials.set_api_key("sk-default-123")
    credentials.set_api_key("sk-host-456", "http://h:1/v1/")
    assert credentials.get_api_key("http://h:1/v1") == "sk-host-456"
    assert credentials.get_api_key("http://other:2/v1") == "sk-default-123"
    credentials.delete_api_key("http://h:1/v1")
    assert credentials.get_api_key("http://h:1/v1") == "sk-default-123"


def test_environment_wins(monkeypatch):
    credentials.set_api_key("sk-stored")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert credentials.get_api_key() == "sk-from-env"


def test_empty_key_is_rejected():
    with pytest.raises(credentials.CredentialError, match="empty"):
        credentials.set_api_key("   ")


def test_file_fallback_is_owner_only_and_outside_the_app_dir(_isolated_home):
    import keyring

    credentials.set_api_key("sk-file-789")
    path = getattr(keyring.get_keyring(), "file_path", None)
    if path is None:
        pytest.skip("an OS keyring is in use here; no file to check")
    assert os.path.exists(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.abspath(path).startswith(os.path.abspath(_isolated_home) + os.sep)
    # no file under the app's dir holds the key
    for root, _, files in os.walk(_isolated_home):
        for f in files:
            assert b"sk-file-789" not in open(os.path.join(root, f), "rb").read()
