"""The settings file never holds a credential: one carried in the server URL goes to the
keyring, the URL is saved without it."""

from __future__ import annotations

import pytest

from cm_desktop import credentials
from cm_desktop.settings import Settings, settings_path


@pytest.mark.parametrize("url, clean, secret", [
    ("http://alice:s3cret-pw@127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1", "s3cret-pw"),
    ("http://127.0.0.1:8000/v1?api_key=sk-query-123&x=1", "http://127.0.0.1:8000/v1?x=1",
     "sk-query-123"),
    ("https://bob:pw-2@[::1]:9000/v1?token=tk-9", "https://[::1]:9000/v1", "tk-9"),
])
def test_credentials_in_the_server_url_go_to_the_keyring(url, clean, secret):
    settings = Settings(backend_kind="openai", openai_base_url=url)
    path = settings.save()
    text = settings_path().read_text(encoding="utf-8")
    assert path == settings_path()
    for piece in (secret, "alice", "bob", "api_key", "token="):
        assert piece not in text, piece
    assert Settings.load().openai_base_url == clean
    assert credentials.get_api_key(clean) == secret


def test_a_url_without_credentials_is_saved_as_it_is():
    Settings(openai_base_url="http://127.0.0.1:8000/v1?model=x").save()
    assert Settings.load().openai_base_url == "http://127.0.0.1:8000/v1?model=x"
    assert credentials.get_api_key("http://127.0.0.1:8000/v1?model=x") is None


def test_a_settings_file_that_is_not_a_small_regular_file_is_set_aside():
    import os

    path = settings_path()
    os.mkfifo(path)  # before: reading it waited forever for a writer
    loaded = Settings.load()
    assert "not a regular file" in loaded.load_problem and loaded == Settings()
    path.with_name(path.name + ".bad").unlink()
    with open(path, "wb") as f:
        f.truncate(2 * 1024 * 1024)
    loaded = Settings.load()
    assert "limit" in loaded.load_problem and loaded == Settings()
