"""API keys for OpenAI-compatible endpoints: the environment or the OS keyring, never a file of ours.

Lookup order: `OPENAI_API_KEY` in the environment, then the OS keyring (service "cm-desktop",
username = the endpoint's base URL, or "default"). Where no keyring daemon runs (a headless Linux
box, CI) keyring falls back to keyrings.alt's file backend: a separate owner-only file (0600 in a
0700 dir), base64-encoded, not encrypted; it keeps the key out of the settings, the bank and
every export. Settings store only *which* endpoint to use; the fingerprint stored with
ratings never contains a key.
"""

from __future__ import annotations

import os

SERVICE = "cm-desktop"
ENV_VAR = "OPENAI_API_KEY"


class CredentialError(Exception):
    """The key could not be stored or read; the message says why."""


def _is_file_backend(backend) -> bool:
    return type(backend).__module__.startswith(("keyrings.alt.file", "keyring.backends.fail"))


def _ensure_keyring():
    """Return the keyring module with a working backend.

    An OS keyring (Secret Service, macOS Keychain, Windows Credential Locker) is used as is.
    Where there is none, keyring picks keyrings.alt's file backend (or fails); we then use that
    file backend explicitly, owner-only, and when CM_DESKTOP_HOME relocates the app's files we
    put it beside that dir (never inside it, so sharing the app dir never shares the key).
    A backend set explicitly with keyring.set_keyring (tests, embedders) is respected.
    """
    import keyring
    backend = keyring.get_keyring()
    if getattr(backend, "_cm_explicit", False) or not _is_file_backend(backend):
        return keyring
    from keyrings.alt.file import PlaintextKeyring
    fallback = PlaintextKeyring()
    home = os.environ.get("CM_DESKTOP_HOME")
    if home:
        home = os.path.abspath(os.path.expanduser(home))
        fallback.file_path = os.path.join(home + "-keyring", "keyring_pass.cfg")
    if getattr(backend, "file_path", None) != fallback.file_path:
        keyring.set_keyring(fallback)
    return keyring


def _username(base_url: str | None) -> str:
    """The keyring entry's name: the endpoint URL without credentials, query or trailing '/'."""
    if not base_url:
        return "default"
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")) or "default"


_SECRET_WORDS = ("key", "token", "secret", "password", "auth")


def split_url_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without credentials, the credential it carried or None).

    A credential is a query parameter whose name holds key/token/secret/password/auth (such as
    `?api_key=`), else the `user:password@` password, else a lone `user@` name. All of them are
    removed from the URL, whichever is returned."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    found: list[str] = []
    kept = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if any(word in name.lower() for word in _SECRET_WORDS):
            if value:
                found.append(value)
        else:
            kept.append((name, value))
    if parts.password:
        found.append(parts.password)
    elif parts.username:
        found.append(parts.username)
    if not found and parts.username is None and len(kept) == len(parse_qsl(parts.query)):
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, urlencode(kept), parts.fragment))
    return clean, (found[0] if found else None)


def store_url_credentials(url: str) -> str:
    """The URL without credentials; a credential it carried goes to the keyring as the API key
    of that (clean) URL, so it never reaches a settings file."""
    clean, secret = split_url_credentials(url)
    if secret:
        set_api_key(secret, clean)
    return clean


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


def _tighten(kr) -> None:
    path = getattr(kr.get_keyring(), "file_path", None)
    if path and os.path.exists(path):
        os.chmod(path, 0o600)
        os.chmod(os.path.dirname(path), 0o700)


# ---- the Hugging Face token (gated model repos) ---------------------------------------------
HF_TOKEN_ENV = "HF_TOKEN"
_HF_USER = "huggingface.co"


def get_hf_token() -> str | None:
    """HF_TOKEN from the environment, else the token stored in the keyring, else None."""
    env = os.environ.get(HF_TOKEN_ENV)
    if env:
        return env
    kr = _ensure_keyring()
    try:
        return kr.get_password(SERVICE, _HF_USER) or None
    except Exception as exc:
        raise CredentialError(f"could not read the keyring ({exc})") from None


def set_hf_token(token: str) -> None:
    if not isinstance(token, str) or not token.strip():
        raise CredentialError("the token is empty")
    kr = _ensure_keyring()
    try:
        kr.set_password(SERVICE, _HF_USER, token.strip())
    except Exception as exc:
        raise CredentialError(f"could not store the token in the keyring ({exc})") from None
    _tighten(kr)
