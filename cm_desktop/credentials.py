"""API keys for OpenAI-compatible endpoints: the environment or the OS keyring, never a file of ours.

Lookup order: `OPENAI_API_KEY` in the environment, then the OS keyring (service "cm-desktop",
username = the endpoint's base URL, or "default"). Where no keyring daemon runs (a headless Linux
box, CI) the keyring library finds no usable backend; we then fall back to keyrings.alt's
encrypted-at-rest-if-possible file backend in the user's data dir, so a key is still kept out of
settings and the bank. Settings store only *which* endpoint to use; the fingerprint stored with
ratings never contains a key.
"""

from __future__ import annotations

import os

SERVICE = "cm-desktop"
ENV_VAR = "OPENAI_API_KEY"
_keyring_ready = False


class CredentialError(Exception):
    """The key could not be stored or read; the message says why."""


def _ensure_keyring():
    """Return the keyring module with a working backend (the file backend if nothing else)."""
    global _keyring_ready
    import keyring
    if _keyring_ready:
        return keyring
    try:
        from keyring.backends import fail
        backend = keyring.get_keyring()
        usable = not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 1) > 0
    except Exception:
        usable = False
    if not usable:
        from keyrings.alt.file import PlaintextKeyring

        from cm_desktop.paths import data_dir
        # Readable only by the user (0600, in a 0700 dir); chosen only when the OS offers nothing.
        fallback = PlaintextKeyring()
        fallback.file_path = str(data_dir() / "keyring.cfg")
        keyring.set_keyring(fallback)
    _keyring_ready = True
    return keyring


def _username(base_url: str | None) -> str:
    return (base_url or "default").rstrip("/")


def set_api_key(key: str, base_url: str | None = None) -> None:
    if not isinstance(key, str) or not key.strip():
        raise CredentialError("the API key is empty")
    kr = _ensure_keyring()
    try:
        kr.set_password(SERVICE, _username(base_url), key.strip())
    except Exception as exc:
        raise CredentialError(f"could not store the key in the keyring ({exc})") from None
    _tighten(kr)


def get_api_key(base_url: str | None = None) -> str | None:
    """The key for `base_url`: environment first, then the keyring (per-URL, then default)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    kr = _ensure_keyring()
    try:
        for user in dict.fromkeys([_username(base_url), "default"]):
            value = kr.get_password(SERVICE, user)
            if value:
                return value
    except Exception as exc:
        raise CredentialError(f"could not read the keyring ({exc})") from None
    return None


def delete_api_key(base_url: str | None = None) -> None:
    kr = _ensure_keyring()
    try:
        kr.delete_password(SERVICE, _username(base_url))
    except Exception:
        pass  # nothing stored is not an error


def reset_keyring_choice() -> None:
    """Forget the chosen backend (tests switch CM_DESKTOP_HOME between runs)."""
    global _keyring_ready
    _keyring_ready = False


def _tighten(kr) -> None:
    path = getattr(kr.get_keyring(), "file_path", None)
    if path and os.path.exists(path):
        os.chmod(path, 0o600)
