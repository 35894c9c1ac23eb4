"""Authenticity beyond the content hash: a detached Ed25519 signature of the manifest checked
against a public key the user pins (acmmg.signing). A mirror that rebuilds a whole consistent
version (new files, new hashes, new version name, LATEST pointed at it) is refused."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from acmmg.errors import ManifestError
from pipeline.cli import main as cli_main
from pipeline.download import download_category
from pipeline.publish.targets import publish_folder
from tests.hubserver import HubServer
from tests.publish_fixtures import build_category_folder, write_manifest

SLUG = "demo"


def keypair(tmp_path, name: str):
    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


@pytest.fixture
def signed(tmp_path):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=31)
    priv, pub = keypair(tmp_path, "publisher")
    target = tmp_path / "target"
    version = publish_folder(folder, SLUG, str(target), sign_key=priv)
    return {"folder": folder, "target": target, "version": version, "priv": priv, "pub": pub}


def test_signed_manifest_verifies_with_the_pinned_key(signed, tmp_path, monkeypatch):
    vdir = signed["target"] / SLUG / "versions" / signed["version"]
    assert (vdir / "manifest.json.sig").is_file()
    out = download_category(SLUG, str(signed["target"]), tmp_path / "a", public_key=signed["pub"])
    assert (out / "manifest.json").is_file()
    monkeypatch.setenv("ACMMG_PUBLIC_KEY", str(signed["pub"]))
    assert download_category(SLUG, str(signed["target"]), tmp_path / "b").is_dir()


def test_a_rebuilt_consistent_version_is_refused_without_the_publishers_key(
    signed, tmp_path, capsys
):
    # The mirror forges new content with a valid content hash and signs it with its own key.
    folder = signed["folder"]
    (folder / "node_categories.json").write_text('{"0": "forged"}\n')
    write_manifest(folder, {"category": SLUG})
    forger, _ = keypair(tmp_path, "forger")
    forged = publish_folder(folder, SLUG, str(signed["target"]), sign_key=forger)
    assert forged != signed["version"]
    with pytest.raises(ManifestError, match="does not verify with the pinned public key"):
        download_category(SLUG, str(signed["target"]), tmp_path / "a", public_key=signed["pub"])
    assert not (tmp_path / "a" / SLUG / "node_categories.json").exists()
    # An unsigned version is refused too when a key is pinned (one line, exit 2).
    vdir = signed["target"] / SLUG / "versions" / forged
    (vdir / "manifest.json.sig").unlink()
    rc = cli_main(
        ["download", SLUG, "--from", str(signed["target"]), "--to", str(tmp_path / "b"),
         "--public-key", str(signed["pub"])]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no manifest.json.sig" in err and "\n" not in err
    # Without a pinned key the content hash alone is checked, as before.
    out = download_category(SLUG, str(signed["target"]), tmp_path / "c")
    assert json.loads((out / "manifest.json").read_text())["version"] == forged


def test_signing_an_already_published_version_adds_its_signature(tmp_path):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=32)
    target = tmp_path / "target"
    version = publish_folder(folder, SLUG, str(target))
    priv, pub = keypair(tmp_path, "k")
    assert publish_folder(folder, SLUG, str(target), sign_key=priv) == version
    assert download_category(SLUG, str(target), tmp_path / "dl", public_key=pub).is_dir()


def test_signed_publish_to_the_hub(tmp_path, monkeypatch):
    folder = tmp_path / "build" / SLUG
    build_category_folder(folder, n=12, seed=33)
    priv, pub = keypair(tmp_path, "k")
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        publish_folder(folder, SLUG, "hf://datasets/me/signed", sign_key=priv)
        assert f"{SLUG}/manifest.json.sig" in hub.tree("me/signed")
        out = download_category(SLUG, "hf://datasets/me/signed", tmp_path / "dl", public_key=pub)
        assert (out / "manifest.json").is_file()
