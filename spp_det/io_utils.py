"""Atomic file writes and stable hashing of config values.

Every stage writes through these helpers: data goes to a temporary file in the
destination directory, is flushed, then ``os.replace``-d over the final name, so
a killed run never leaves a half-written output under the final name.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` lets libraries that append an extension (``np.save``) write the
    exact temporary name.  On an exception the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Strict JSON, written atomically: NaN and infinities become ``null`` (e.g. the AP of a class with
    no test object), which every JSON reader accepts."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default,
                                  allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):  # np.float64 too
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return _finite(obj.tolist())
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    import torch  # lazily: proposal worker processes import this module and need no torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hex digest of a JSON-serialisable value, independent of dict key order."""
    data = json.dumps(obj, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def state_digest(state: Mapping[str, Any], length: int = 16) -> str:
    """sha256 prefix of a state dict's names, dtypes, shapes and values (a model's weights, by content)."""
    h = hashlib.sha256()
    for name in sorted(state):
        v = state[name]
        if hasattr(v, "detach"):  # a tensor, of any dtype (bf16 has no numpy twin): hash its raw bytes
            import torch
            flat = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"{name}\0{v.dtype}\0{tuple(v.shape)}\n".encode())
            h.update(flat.view(torch.uint8).numpy().tobytes())
        else:
            a = np.ascontiguousarray(v)
            h.update(f"{name}\0{a.dtype}\0{a.shape}\n".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:length]
