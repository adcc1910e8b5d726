"""The vault: unlock, wrong passphrase, tampered or unsupported vault objects,
re-wrapping (the master key stays), and keys kept out of reprs and the blob."""

from __future__ import annotations

import json
import unicodedata

import pytest
from codec_helpers import CHEAP_KDF, seal, unseal

from b2fs.codec import (
    Argon2idParams,
    CorruptVault,
    ScryptParams,
    UndecodableName,
    UnknownKey,
    UnsupportedVault,
    WrongPassphrase,
    argon2id_available,
    b64,
    create_vault,
    open_vault,
    rewrap_vault,
)

pytestmark = pytest.mark.timeout(60)

PASS = "correct horse battery staple"


@pytest.fixture(scope="module")
def made() -> tuple[bytes, object]:
    return create_vault(PASS, kdf=CHEAP_KDF, chunk_size=64)


def _edit(blob: bytes, change) -> bytes:
    doc = json.loads(blob)
    change(doc)
    return json.dumps(doc).encode()


def _other_char(text: str, at: int) -> str:
    """``text`` with the base64url character at ``at`` (not the last) changed."""
    return text[:at] + ("B" if text[at] == "A" else "A") + text[at + 1 :]


def _same_keys(a, b) -> None:
    """Both vaults read each other's objects, names and staging: same master key."""
    stored, info = seal(a.content_codec(), b"some file contents")
    assert unseal(b.content_codec(), stored, info) == b"some file contents"
    assert b.name_codec().decode("", a.name_codec().encode("", "name").segment) == "name"


def test_a_created_vault_opens_with_its_passphrase(made) -> None:
    blob, vault = made
    opened = open_vault(blob, PASS)
    assert (opened.key_id, opened.chunk_size, opened.kdf) == (vault.key_id, 64, CHEAP_KDF)
    assert len(opened.key_id) == 16
    _same_keys(vault, opened)
    assert opened.content_codec().chunk_size == 64


def test_a_wrong_passphrase_is_refused(made) -> None:
    blob, _ = made
    for wrong in ["", "correct horse battery stapl", PASS + " "]:
        with pytest.raises(WrongPassphrase):
            open_vault(blob, wrong)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["settings"].update(chunk_size=16),
        lambda d: d["settings"].update(content="ChaCha20-Poly1305"),
        lambda d: d["settings"].update(extra=1),
        lambda d: d.update(key_id="00" * 8),
        lambda d: d.update(mac=_other_char(d["mac"], 0)),
    ],
    ids=["chunk_size", "cipher", "extra-setting", "key_id", "mac"],
)
def test_tampered_settings_are_refused(made, change) -> None:
    blob, _ = made
    with pytest.raises(CorruptVault):
        open_vault(_edit(blob, change), PASS)


def test_altered_kdf_parameters_or_wrapped_key_do_not_unwrap(made) -> None:
    blob, _ = made
    for change in [
        lambda d: d["kdf"].update(iterations=2),
        lambda d: d["kdf"].update(salt="AAAAAAAAAAAAAAAAAAAAAA"),
        lambda d: d.update(wrapped_key=_other_char(d["wrapped_key"], 10)),
    ]:
        with pytest.raises(WrongPassphrase):
            open_vault(_edit(blob, change), PASS)


def test_malformed_vault_objects_are_refused(made) -> None:
    blob, _ = made
    bad = [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"b2fs_vault": "1"}',
        _edit(blob, lambda d: d.pop("mac")),
        _edit(blob, lambda d: d.update(wrapped_key="AAAA")),
        _edit(blob, lambda d: d.update(key_id="zz")),
        _edit(blob, lambda d: d["kdf"].pop("lanes")),
        _edit(blob, lambda d: d["kdf"].update(lanes=True)),
    ]
    for item in bad:
        with pytest.raises(CorruptVault):
            open_vault(item, PASS)


def test_vaults_this_version_cannot_use_are_refused(made) -> None:
    blob, _ = made
    for change in [
        lambda d: d.update(b2fs_vault=2),
        lambda d: d["kdf"].update(name="pbkdf2"),
        lambda d: d["kdf"].update(memory_kib=1 << 40),  # refused, not obeyed
        lambda d: d["kdf"].update(lanes=0),
    ]:
        with pytest.raises(UnsupportedVault):
            open_vault(_edit(blob, change), PASS)


def test_rewrap_keeps_the_master_key_and_changes_the_passphrase(made) -> None:
    blob, vault = made
    new_blob = rewrap_vault(blob, PASS, "a new passphrase")
    with pytest.raises(WrongPassphrase):
        open_vault(new_blob, PASS)
    reopened = open_vault(new_blob, "a new passphrase")
    assert reopened.key_id == vault.key_id and reopened.kdf == CHEAP_KDF
    _same_keys(vault, reopened)
    old, new = json.loads(blob), json.loads(new_blob)
    assert old["kdf"]["salt"] != new["kdf"]["salt"] and old["wrapped_key"] != new["wrapped_key"]
    assert old["settings"] == new["settings"] and old["mac"] == new["mac"]
    with pytest.raises(WrongPassphrase):
        rewrap_vault(blob, "not the passphrase", "x")
    stronger = Argon2idParams(memory_kib=16, iterations=2, lanes=1)
    assert open_vault(rewrap_vault(blob, PASS, "p", kdf=stronger), "p").kdf == stronger


def test_scrypt_vaults_work() -> None:
    cheap = ScryptParams(n=16, r=1, p=1)
    blob, vault = create_vault(PASS, kdf=cheap, chunk_size=16)
    assert json.loads(blob)["kdf"]["name"] == "scrypt"
    opened = open_vault(blob, PASS)
    assert opened.kdf == cheap
    _same_keys(vault, opened)
    with pytest.raises(WrongPassphrase):
        open_vault(blob, "wrong")


def test_the_passphrase_is_nfc_normalised() -> None:
    nfc = "pâté sécurisé"
    blob, _ = create_vault(unicodedata.normalize("NFD", nfc), kdf=CHEAP_KDF)
    open_vault(blob, nfc)


@pytest.mark.timeout(30)
def test_the_default_kdf_is_argon2id_at_rfc_9106_strength() -> None:
    assert argon2id_available()
    blob, vault = create_vault(PASS)
    kdf = json.loads(blob)["kdf"]
    assert (kdf["name"], kdf["memory_kib"], kdf["iterations"], kdf["lanes"]) == (
        "argon2id",
        65536,
        3,
        4,
    )
    assert vault.chunk_size == 65536


def test_bad_arguments_are_refused() -> None:
    for size in [0, 15, 100, 1 << 25]:
        with pytest.raises(ValueError):
            create_vault(PASS, kdf=CHEAP_KDF, chunk_size=size)
    with pytest.raises(ValueError):
        create_vault("", kdf=CHEAP_KDF)


def test_two_vaults_do_not_read_each_other(made) -> None:
    _, mine = made
    _, theirs = create_vault(PASS, kdf=CHEAP_KDF, chunk_size=64)
    stored, info = seal(theirs.content_codec(), b"theirs")
    with pytest.raises(UnknownKey):
        unseal(mine.content_codec(), stored, info)
    with pytest.raises(UndecodableName):
        mine.name_codec().decode("", theirs.name_codec().encode("", "theirs").segment)


def test_no_secret_shows_in_reprs_errors_or_the_blob(made) -> None:
    blob, vault = made
    master = vault._master_key  # read here only to look for it
    shown = [repr(vault), str(vault), repr(vault.content_codec()), repr(vault.name_codec())]
    shown.append(repr(vault.staging_codec()))
    for error in (WrongPassphrase, CorruptVault):
        with pytest.raises(error) as err:
            open_vault(blob if error is WrongPassphrase else blob[:-5], "secret guess")
        shown.append(str(err.value))
    for text in shown:
        assert master.hex() not in text and repr(master) not in text
        assert PASS not in text and "secret guess" not in text
    assert (
        PASS.encode() not in blob and master not in blob and b64.encode(master).encode() not in blob
    )
