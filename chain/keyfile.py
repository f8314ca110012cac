"""Passphrase-encrypted key files [KEY-FILE.1].

Format: JSON with scrypt parameters (N=2**15, r=8, p=1), a random salt, and the
32-byte secret sealed with AES-256-GCM; the address is stored in clear and
authenticated as associated data, so a tampered address fails like a wrong
passphrase. Written with mode 0600 via O_EXCL so it is never world-readable,
even for an instant. Every failure is one ``KeyFileError`` line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.crypto import PrivateKey, address_to_text
from chain.errors import KeyFileError
from chain.local_file import MAX_SECRET_FILE_BYTES, LocalFileError, read_local_file

KEYFILE_VERSION = 1
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def seal_key(key: PrivateKey, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> dict[str, object]:
    salt, nonce = os.urandom(16), os.urandom(12)
    address = address_to_text(key.address)
    sealed = AESGCM(_derive(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)).encrypt(
        nonce, key.secret, address.encode()
    )
    return {
        "version": KEYFILE_VERSION,
        "address": address,
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()},
        "cipher": {"name": "aes-256-gcm", "nonce": nonce.hex(), "ciphertext": sealed.hex()},
    }


def open_key(doc: object, passphrase: str) -> PrivateKey:
    try:
        if not isinstance(doc, dict) or doc.get("version") != KEYFILE_VERSION:
            raise KeyFileError("unsupported or corrupt key file (bad version)")
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
            raise KeyFileError("unsupported key file algorithms")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if not (2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
            raise KeyFileError("key file has out-of-range scrypt parameters")
        secret = AESGCM(_derive(passphrase, bytes.fromhex(kdf["salt"]), n, r, p)).decrypt(
            bytes.fromhex(cipher["nonce"]),
            bytes.fromhex(cipher["ciphertext"]),
            str(doc["address"]).encode(),
        )
        return PrivateKey(secret)
    except KeyFileError:
        raise
    except InvalidTag as e:
        raise KeyFileError("wrong passphrase or corrupt key file") from e
    except (KeyError, TypeError, ValueError) as e:
        raise KeyFileError(f"corrupt key file ({type(e).__name__})") from e


def write_key_file(path: Path, key: PrivateKey, passphrase: str, *, overwrite: bool = False,
                   scrypt_n: int = SCRYPT_N) -> None:
    """Writes the sealed key with mode 0600; refuses to clobber unless asked."""
    data = json.dumps(seal_key(key, passphrase, scrypt_n=scrypt_n), indent=2).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as e:
        raise KeyFileError(f"key file already exists: {path}") from e
    except OSError as e:
        raise KeyFileError(f"cannot write key file {path}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)


def read_key_file(path: Path, passphrase: str) -> PrivateKey:
    """The key sealed in the file at ``path``; the file is read as [NODE-READ.1] says (a
    regular file of at most ``MAX_SECRET_FILE_BYTES``)."""
    try:
        raw = read_local_file(path, MAX_SECRET_FILE_BYTES, what="key file")
    except LocalFileError as e:
        raise KeyFileError(f"no key file at {path}" if e.code == "no_file"
                           else f"cannot read key file {e}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyFileError(f"corrupt key file {path} (not JSON)") from e
    return open_key(doc, passphrase)
