"""Crypto costs of b2fs's encryption, one thread, printed as Markdown tables.

What it measures: the AEAD choice (AES-256-GCM vs ChaCha20-Poly1305, and
AES-GCM by chunk size), the content codec's throughput as the uploader and the
reader use it, staging-file writes and reads (plain vs encrypted, in a temp
dir), name encryption, per-object setup, and the passphrase KDF at the default
and alternative parameters (what a mount pays once). Figures are in
docs/benchmarks.md. Usage: ``python bench/crypto.py [--mib N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from b2fs.codec import (
    Argon2idParams,
    EncryptedContentCodec,
    EncryptedNameCodec,
    EncryptedStagingCodec,
    PlainContentCodec,
    PlainStagingCodec,
    ScryptParams,
    StagingFile,
    create_vault,
    open_vault,
)

MIB = 1 << 20


def best_rate(fn: Callable[[], object], nbytes: int, repeat: int = 5) -> float:
    """MB/s (10^6 bytes) of the fastest of ``repeat`` runs of ``fn``."""
    best = min(_timed(fn) for _ in range(repeat))
    return nbytes / best / 1e6


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    def loop() -> None:
        for _ in range(calls):
            fn()

    return min(_timed(loop) for _ in range(5)) / calls * 1e6


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def aead_rows(total: int) -> list[list[str]]:
    rows = []
    for name, cls in [("AES-256-GCM", AESGCM), ("ChaCha20-Poly1305", ChaCha20Poly1305)]:
        for chunk in [16 * 1024, 64 * 1024, MIB]:
            aead = cls(os.urandom(32))
            data = os.urandom(chunk)
            count = max(1, total // chunk)
            sealed = aead.encrypt(bytes(12), data, b"h")

            def enc(aead=aead, data=data, count=count) -> None:
                for i in range(count):
                    aead.encrypt(i.to_bytes(12, "big"), data, b"h")

            def dec(aead=aead, sealed=sealed, count=count) -> None:
                for _ in range(count):
                    aead.decrypt(bytes(12), sealed, b"h")

            rows.append(
                [
                    name,
                    f"{chunk // 1024} KiB",
                    f"{best_rate(enc, count * chunk):,.0f}",
                    f"{best_rate(dec, count * chunk):,.0f}",
                ]
            )
    return rows


def codec_rows(total: int) -> list[list[str]]:
    """The uploader's and the reader's calls, plain vs encrypted codec."""
    plain = os.urandom(total)
    size = len(plain)
    part, block = 8 * MIB, MIB  # an upload part; a reader's block (16 chunks)

    def read_plain(offset: int, length: int) -> bytes:
        return plain[offset : offset + length]

    rows: list[list[str]] = [["upload: read_stored, 8 MiB parts"], ["read: decode, 1 MiB blocks"]]
    for codec in (PlainContentCodec(), EncryptedContentCodec(os.urandom(32), os.urandom(8), 65536)):
        stored_size = codec.stored_size(size)

        def upload(codec=codec, stored_size=stored_size) -> list[bytes]:
            enc = codec.encryptor()  # a new object each run: a new salt
            return [
                enc.read_stored(read_plain, size, s, min(s + part, stored_size))
                for s in range(0, stored_size, part)
            ]

        stored = b"".join(upload())
        header = stored[: codec.header_size()]

        def read(codec=codec, stored=stored, header=header) -> None:
            dec = codec.decryptor(header)
            for start in range(0, size, block):
                s, e = codec.stored_range(start, start + block, size)
                dec.decode(start, stored[s:e], size)

        rows[0].append(f"{best_rate(upload, size):,.0f}")
        rows[1].append(f"{best_rate(read, size):,.0f}")
    return rows


def staging_rows(total: int) -> list[list[str]]:
    rows = []
    data = os.urandom(total)
    with tempfile.TemporaryDirectory(prefix="b2fs-bench-") as tmp:
        for name, codec in [
            ("plain", PlainStagingCodec()),
            ("encrypted", EncryptedStagingCodec(os.urandom(32), 65536)),
        ]:
            fd = os.open(os.path.join(tmp, name), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                staged = codec.create(fd)
                rates = _staging_rates(staged, data, 128 * 1024) + _staging_rates(
                    staged, data, 4096
                )
                rows.append([name] + [f"{r:,.0f}" for r in rates])
            finally:
                os.close(fd)
    return rows


def _staging_rates(staged: StagingFile, data: bytes, io: int) -> list[float]:
    """Sequential write (from empty) then read, ``io`` bytes per call: MB/s."""

    def write() -> None:
        staged.truncate(0)
        for off in range(0, len(data), io):
            staged.pwrite(off, data[off : off + io])

    def read() -> None:
        for off in range(0, len(data), io):
            staged.pread(off, io)

    return [best_rate(write, len(data), 3), best_rate(read, len(data), 3)]


def name_rows() -> list[list[str]]:
    codec = EncryptedNameCodec(os.urandom(64))
    rows = []
    for label, name in [
        ("20-byte name", "quarterly-report.pdf"),
        ("200-byte name (stub)", "n" * 200),
    ]:
        encoded = codec.encode("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", name)
        rows.append(
            [
                label,
                f"{per_call_us(lambda name=name: codec.encode('QUJDREVGR0hJSktMTU5PUFFSU1RVVldY', name), 20000):.1f}",
                f"{per_call_us(lambda e=encoded: codec.decode('QUJDREVGR0hJSktMTU5PUFFSU1RVVldY', e.segment, e.long_info), 20000):.1f}",
            ]
        )
    return rows


def object_rows() -> list[list[str]]:
    codec = EncryptedContentCodec(os.urandom(32), os.urandom(8), 65536)
    header = codec.encryptor().header
    return [
        [
            "encryptor() (salt, HKDF, AES key schedule)",
            f"{per_call_us(codec.encryptor, 20000):.1f}",
        ],
        ["decryptor(header)", f"{per_call_us(lambda: codec.decryptor(header), 20000):.1f}"],
    ]


def kdf_rows() -> list[list[str]]:
    rows = []
    for label, kdf in [
        ("Argon2id 64 MiB, t=3, p=4 (default)", Argon2idParams()),
        ("Argon2id 256 MiB, t=3, p=4", Argon2idParams(memory_kib=256 * 1024)),
        ("scrypt N=2^17, r=8, p=1 (fallback)", ScryptParams()),
    ]:
        blob, _ = create_vault("a passphrase", kdf=kdf)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            open_vault(blob, "a passphrase")
            times.append(time.perf_counter() - t)
        rows.append([label, f"{statistics.median(times) * 1000:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB of data per measurement")
    args = parser.parse_args()
    total = args.mib * MIB
    print(f"b2fs crypto benchmark: {args.mib} MiB per measurement, best of runs, one thread")
    table("AEAD, raw (MB/s)", ["cipher", "chunk", "encrypt", "decrypt"], aead_rows(total))
    table("Content codec, 64 KiB chunks (MB/s)", ["path", "plain", "encrypted"], codec_rows(total))
    table(
        "Staging file, sequential (MB/s)",
        ["staging", "write 128 KiB", "read 128 KiB", "write 4 KiB", "read 4 KiB"],
        staging_rows(min(total, 32 * MIB)),
    )
    table("Names (µs per call)", ["name", "encode", "decode"], name_rows())
    table("Per object (µs per call)", ["call", "µs"], object_rows())
    table("Passphrase KDF: open_vault (ms, median of 3)", ["KDF", "ms"], kdf_rows())


if __name__ == "__main__":
    main()
