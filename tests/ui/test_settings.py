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
