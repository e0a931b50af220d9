"""Counter-based pseudo-random numbers: the same (key, stream, index) always gives the same value.

The plant model must be a pure function of (fleet, seed, time), so randomness is a hash of the
interval index rather than the state of a generator: any interval can be computed on its own, in
any order, by any process (Modbus server, MQTT publisher, backfill, ground truth).
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_TO_UNIT = 1.0 / float(1 << 53)


def key64(*parts: object) -> int:
    """A stable 64-bit key for a tuple of names and numbers (not Python's salted hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _splitmix(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def uniform(key: int, stream: int, index: np.ndarray | int) -> np.ndarray:
    """Uniform numbers in [0, 1) for each index (int64 array or int)."""
    idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = np.uint64(key) ^ (np.uint64(stream) * _M2)
        bits = _splitmix(_splitmix(idx + base) ^ base)
    return (bits >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def normal(key: int, stream: int, index: np.ndarray | int) -> np.ndarray:
    """Approximately standard-normal numbers (Irwin-Hall of four uniforms, bounded by ±3.46)."""
    total = uniform(key, stream * 4, index)
    for j in range(1, 4):
        total = total + uniform(key, stream * 4 + j, index)
    return (total - 2.0) * 1.7320508075688772


def uniform1(key: int, stream: int, index: int) -> float:
    """One uniform number (scalar convenience)."""
    return float(uniform(key, stream, np.array([index]))[0])
