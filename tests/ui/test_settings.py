"""Settings on disk (cm_desktop/settings.py) and the Settings view."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cm_desktop.settings import Settings, settings_path


def test_round_trip_and_owner_only_file():
    s = Settings(variant="marginal", strategy="cot", max_tokens=99, temperature=0.3, last_profile="p")
    path = s.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = Settings.load()
    assert loaded == s and loaded.load_problem == ""


def test_damaged_file_is_moved_aside_and_defaults_used():
    settings_path().write_text("{not json")
    loaded = Settings.load()
    assert loaded == Settings()
    assert "could not be read" in loaded.load_problem
    assert settings_path().with_name("settings.json.bad").exists() and not settings_path().exists()


def test_wrong_types_and_values_are_reset_with_a_reason():
    settings_path().write_text(json.dumps({"max_tokens": "many", "variant": "magic", "last_profile": "kept",
                                           "unknown": 1, "temperature": 1}))
    loaded = Settings.load()
    assert loaded.max_tokens == Settings().max_tokens and loaded.variant == Settings().variant
    assert loaded.last_profile == "kept" and loaded.temperature == 1.0
    assert "max_tokens" in loaded.load_problem and "variant" in loaded.load_problem


def test_invalid_values_are_refused_on_save():
    with pytest.raises(ValueError, match="temperature"):
        Settings(temperature=5.0).save()
    with pytest.raises(ValueError, match="backend_kind"):
        Settings(backend_kind="gpt").save()


def test_backend_config_follows_the_chosen_backend():
    from cm_desktop.backends import OpenAIBackend

    cfg = Settings(backend_kind="openai", openai_base_url="http://127.0.0.1:9/v1", openai_model="m").backend_config()
    assert isinstance(cfg, OpenAIBackend.Options) and (cfg.kind, cfg.base_url, cfg.model) == ("openai", "http://127.0.0.1:9/v1", "m")
    cfg = Settings(model_path="").backend_config()
    assert cfg.kind == "llama_cpp" and cfg.model_path is None


def test_settings_view_rejects_a_bad_model_file(app_window, qtbot, tmp_path):
    ctx, window = app_window("Test")
    view = window.settings_view
    bad = tmp_path / "fake.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model")
    view.model_edit.setText(str(bad))
    view.validate_model(str(bad))
    qtbot.waitUntil(lambda: bool(ctx.open_error_boxes()), timeout=5000)
    assert "GGUF" in ctx.open_error_boxes()[-1].text()
    assert not view.model_ok and view.model_status.text().startswith("Not usable")
    view.apply()
    assert "usable model" in view.status_label.text()
    assert Settings.load().model_path == ""         # nothing saved


@pytest.mark.slow
def test_settings_view_accepts_the_real_model_and_applies(app_window, qtbot, gemma_path):
    ctx, window = app_window("Test")
    view = window.settings_view
    view.model_edit.setText(str(gemma_path))
    op = view.validate_model(str(gemma_path))
    qtbot.waitUntil(lambda: op.done, timeout=30000)
    assert view.model_ok and view.model_status.text().startswith("OK")
    view.variant_combo.setCurrentIndex(view.variant_combo.findData("paper"))
    view.max_tokens_spin.setValue(32)
    loaded = []
    ctx.inference.backend_loaded.connect(lambda kind, fp: loaded.append(fp))
    view.apply()
    saved = Settings.load()
    assert (saved.model_path, saved.variant, saved.max_tokens) == (str(gemma_path), "paper", 32)
    qtbot.waitUntil(lambda: bool(loaded), timeout=120000)
    assert loaded[0].startswith("llama_cpp:") and "Model:" in window.model_label.text()


def test_api_key_goes_to_the_keyring_not_the_settings(app_window, qtbot):
    from cm_desktop import credentials

    ctx, window = app_window("Test")
    view = window.settings_view
    view.backend_combo.setCurrentIndex(view.backend_combo.findData("openai"))
    view.url_edit.setText("http://127.0.0.1:9/v1")
    secret = "sk-test-" + "q" * 24
    view.key_edit.setText(secret)
    view.save_key()
    qtbot.waitUntil(lambda: "saved" in view.key_status.text(), timeout=10000)
    assert view.key_edit.text() == ""
    assert credentials.get_api_key("http://127.0.0.1:9/v1") == secret
    view.apply()
    assert secret not in settings_path().read_text()


def _closed_port() -> int:
    """A port nothing listens on: bound to learn a free number, then closed."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_test_connection_to_a_closed_port_shows_one_line_and_apply_does_not_load(app_window, qtbot):
    ctx, window = app_window("Test")
    view = window.settings_view
    view.backend_combo.setCurrentIndex(view.backend_combo.findData("openai"))
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    view.url_edit.setText(url)
    view.openai_model_edit.setText("some-model")
    row = view.server_check
    op = row.test_connection()
    qtbot.waitUntil(lambda: op.done and row.button.isEnabled(), timeout=60000)
    shown = row.result_label.text()
    assert shown.startswith("Not reached:") and "127.0.0.1" in shown and "\n" not in shown
    assert row.models_combo.count() == 0 and row.exact_scoring is None
    failed = []
    ctx.inference.backend_failed.connect(failed.append)
    view.apply()
    assert Settings.load().openai_base_url == url
    qtbot.waitUntil(lambda: bool(failed), timeout=60000)
    status = view.status_label.text()
    assert status.startswith("Saved, but the model did not load.") and "127.0.0.1" in status
    assert "Model loaded" not in status and not ctx.inference.session.has_backend


@pytest.mark.slow
def test_test_connection_lists_the_served_model_and_says_scoring_is_exact(app_window, qtbot, llama_server):
    ctx, window = app_window("Test")
    view = window.settings_view
    view.backend_combo.setCurrentIndex(view.backend_combo.findData("openai"))
    view.url_edit.setText(llama_server)
    view.openai_model_edit.clear()
    row = view.server_check
    op = row.test_connection()
    qtbot.waitUntil(lambda: op.done and row.button.isEnabled(), timeout=300000)
    served = [row.models_combo.itemText(i) for i in range(row.models_combo.count())]
    assert served == ["gemma-3-270m"], row.result_label.text()
    assert view.openai_model_edit.text() == "gemma-3-270m"   # an empty field takes the served one
    assert row.exact_scoring is True and "exact log-prob scoring available" in row.result_label.text()
    loaded = []
    ctx.inference.backend_loaded.connect(lambda kind, fp: loaded.append(kind))
    view.apply()
    qtbot.waitUntil(lambda: bool(loaded), timeout=300000)
    assert loaded == ["openai"] and view.status_label.text() == "Saved. Model loaded."
