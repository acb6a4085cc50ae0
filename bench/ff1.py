"""Field protection throughput, one process (``python -m bench.ff1 [--rows N]``), on N random
17-digit strings (default 1,000,000; the first 17 digits of a resident ID):

- FF1 (AES-256), pure Python: the reference ``ff1_encrypt`` called per value, string to
  numerals and back included, on a subset (20,000 rows) and scaled to rows/s;
- FF1 vectorized: ``FF1.encrypt`` / ``decrypt`` on numpy strings and ``encrypt_arrow`` on a
  pyarrow array, the fastest of three runs, checked against the reference on the subset;
- pseudonyms: ``pseudonymize`` with HMAC-SHA256 and HMAC-SM3;
- reversible encryption: ``encrypt_values`` / ``decrypt_values`` with AES-256-GCM and SM4-GCM.

Goal: vectorized FF1 at least 3x the pure-Python rows/s on one core.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from govops.security import ciphers
from govops.security.ff1 import FF1, ff1_encrypt

DIGITS = "0123456789"
GOAL = 3.0


def make_values(n: int, seed: int = 0) -> np.ndarray:
    """N random 17-digit strings as a numpy 'U17' array, built without per-row Python."""
    codes = np.random.default_rng(seed).integers(0, 10, size=(n, 17), dtype=np.uint32)
    return (codes + ord("0")).view("U17").reshape(-1)


def best_of(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def pure_python_ff1(key: bytes, values: list[str]) -> list[str]:
    return ["".join(DIGITS[d] for d in ff1_encrypt(key, b"", 10, [int(c) for c in v])) for v in values]


def line(what: str, rows: int, seconds: float, note: str = "") -> float:
    rate = rows / seconds
    print(f"  {what:<44} {rate:>13,.0f} rows/s  ({rows:,} rows in {seconds:.3f}s){note}")
    return rate


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=20_000, help="rows for the pure-Python FF1 loop")
    args = parser.parse_args(argv)
    n = args.rows
    values = make_values(n)
    subset = values[: min(args.subset, n)].tolist()
    key = os.urandom(32)
    figures: dict[str, float] = {}
    print(f"field protection, one process, {n:,} random 17-digit strings")

    print("FF1 (NIST SP 800-38G), radix 10:")
    seconds, reference = best_of(lambda: pure_python_ff1(key, subset), runs=1)
    figures["ff1_pure_python"] = line("pure Python, ff1_encrypt per value (AES-256)", len(subset), seconds, " scaled")
    f = FF1(key)
    seconds, encrypted = best_of(lambda: f.encrypt(values))
    if encrypted[: len(subset)].tolist() != reference:
        raise SystemExit("FF1.encrypt disagrees with the reference ff1_encrypt")
    figures["ff1_vectorized"] = line("FF1.encrypt, numpy strings (AES-256)", n, seconds)
    seconds, decrypted = best_of(lambda: f.decrypt(encrypted))
    if not (decrypted == values).all():
        raise SystemExit("FF1.decrypt did not give the values back")
    figures["ff1_vectorized_decrypt"] = line("FF1.decrypt, numpy strings (AES-256)", n, seconds)
    seconds, _ = best_of(lambda: FF1(key[:16]).encrypt(values))
    figures["ff1_vectorized_aes128"] = line("FF1.encrypt, numpy strings (AES-128)", n, seconds)
    import pyarrow as pa

    column = pa.array(values)
    seconds, arrow_out = best_of(lambda: f.encrypt_arrow(column))
    if arrow_out.to_numpy(zero_copy_only=False)[:1000].tolist() != encrypted[:1000].tolist():
        raise SystemExit("FF1.encrypt_arrow disagrees with FF1.encrypt")
    figures["ff1_arrow"] = line("FF1.encrypt_arrow, pyarrow string array", n, seconds)
    ratio = figures["ff1_vectorized"] / figures["ff1_pure_python"]
    figures["ff1_ratio"] = ratio
    verdict = "meets" if ratio >= GOAL else "MISSES"
    print(f"  vectorized / pure Python: {ratio:,.1f}x ({verdict} the goal of {GOAL:.0f}x)")

    print("pseudonyms (64 hex characters):")
    mac_key = os.urandom(32)
    for algorithm in ciphers.PSEUDONYM_ALGORITHMS:
        seconds, _ = best_of(lambda algorithm=algorithm: ciphers.pseudonymize(values, mac_key, algorithm), runs=2)
        figures[f"pseudonymize_{algorithm}"] = line(f"pseudonymize {algorithm}", n, seconds)

    print("reversible encryption (random nonce per value, v<version>:base64url):")
    for algorithm in ciphers.AEAD_ALGORITHMS:
        keys = {1: os.urandom(ciphers.AEAD_KEY_SIZES[algorithm])}
        seconds, sealed = best_of(lambda k=keys, a=algorithm: ciphers.encrypt_values(values, k[1], a, 1), runs=1)
        figures[f"encrypt_values_{algorithm}"] = line(f"encrypt_values {algorithm}", n, seconds)
        seconds, opened = best_of(lambda k=keys, a=algorithm, s=sealed: ciphers.decrypt_values(s, k, a), runs=1)
        if opened[:1000].tolist() != values[:1000].tolist():
            raise SystemExit(f"decrypt_values {algorithm} did not give the values back")
        figures[f"decrypt_values_{algorithm}"] = line(f"decrypt_values {algorithm}", n, seconds)
    return figures


if __name__ == "__main__":
    main()
