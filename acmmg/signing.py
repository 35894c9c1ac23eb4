"""Optional signed manifests: a detached Ed25519 signature of manifest.json's exact bytes.

The publisher signs with a private key (``--sign-key key.pem`` or ``$ACMMG_SIGN_KEY``) and
writes ``manifest.json.sig`` (base64) beside the manifest; a reader that pins the public key
(``--public-key pub.pem``, ``public_key=`` or ``$ACMMG_PUBLIC_KEY``) refuses a manifest whose
signature is missing or does not verify. Since the manifest lists every file's sha256 and the
version is their hash, a verified signature covers every byte downloaded. Needs
``cryptography`` (``pip install 'acmmg-data[sign]'``). Keys, e.g. with OpenSSL::

    openssl genpkey -algorithm ed25519 -out key.pem
    openssl pkey -in key.pem -pubout -out pub.pem
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from acmmg.errors import ManifestError, UserError

SIGNATURE = "manifest.json.sig"
PUBLIC_KEY_ENV = "ACMMG_PUBLIC_KEY"
SIGN_KEY_ENV = "ACMMG_SIGN_KEY"
MAX_SIGNATURE_BYTES = 4096


def _pem(spec: str | os.PathLike) -> bytes:
    """PEM bytes from a path to a PEM file or from PEM text itself."""
    text = os.fspath(spec)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read key {text}: {e.strerror or e}") from None


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise UserError("signed manifests need cryptography: pip install 'acmmg-data[sign]'") from e
    return serialization, ed25519


def sign_manifest(raw: bytes, private_key: str | os.PathLike) -> bytes:
    """The ``manifest.json.sig`` bytes for ``raw`` with the Ed25519 key in ``private_key``."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(_pem(private_key), password=None)
    except (ValueError, TypeError) as e:
        raise UserError(f"{private_key}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"{private_key}: not an Ed25519 key")
    return base64.b64encode(key.sign(raw)) + b"\n"


def verify_manifest(raw: bytes, signature: bytes | None, public_key: str | os.PathLike, where: str):
    """``ManifestError`` unless ``signature`` is a valid signature of ``raw`` by the key."""
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        key = serialization.load_pem_public_key(_pem(public_key))
    except (ValueError, TypeError) as e:
        raise UserError(f"{public_key}: not a PEM public key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UserError(f"{public_key}: not an Ed25519 public key")
    if signature is None:
        raise ManifestError(f"{where}: no {SIGNATURE}, but a public key is pinned; refusing")
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), raw)
    except (InvalidSignature, binascii.Error, ValueError):
        raise ManifestError(
            f"{where}: {SIGNATURE} does not verify with the pinned public key; refusing"
        ) from None


def pinned_key(explicit: str | os.PathLike | None) -> str | os.PathLike | None:
    return explicit if explicit is not None else (os.environ.get(PUBLIC_KEY_ENV) or None)


def signing_key(explicit: str | os.PathLike | None) -> str | os.PathLike | None:
    return explicit if explicit is not None else (os.environ.get(SIGN_KEY_ENV) or None)
