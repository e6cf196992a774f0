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
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once, at import (os.umask can only be read by setting it)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` lets libraries that append an extension (``np.save``) write the
    exact temporary name.  On an exception the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes it 0600)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temp_prefix(name: str) -> str:
    """Prefix of a temporary file or folder made for ``name``: ``.<name>.<host>.<pid>.``; host and pid
    let :func:`remove_stale_temps` tell one a killed process left from one still being written (also
    on a file system shared by several machines: only this host's are judged)."""
    return f".{name}.{_HOST}.{os.getpid()}."


_TEMP = re.compile(r"^\..+\.([A-Za-z0-9-]+)\.(\d+)\.[a-z0-9_]{8}(\.tmp.*)?$")  # temp_prefix + 8 random chars


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike, depth: int = 0) -> int:
    """Delete temporary files and folders (:func:`temp_prefix`) in ``directory`` (and ``depth`` levels
    of sub-folders) whose process is gone: what a ``kill -9`` left behind. Returns how many went."""
    n = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:  # absent or unreadable: nothing of ours to clean
        return 0
    for e in entries:
        m = _TEMP.match(e.name)
        if m and m.group(1) == _HOST and int(m.group(2)) != os.getpid() and not _alive(int(m.group(2))):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
            n += 1
        elif depth > 0 and e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
            n += remove_stale_temps(e.path, depth - 1)
    return n


class WorkdirBusy(RuntimeError):
    """Another process holds the work directory's lock."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``<workdir>/.lock`` (an advisory lock the OS releases when the process dies, even by
    ``kill -9``) for the duration; a second run on the same work directory stops with a clear error
    instead of doing the same work twice."""
    from filelock import FileLock, Timeout
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise WorkdirBusy(f"{root}: another run is using this work directory; wait for it to finish, "
                          "or give this one another workdir") from None
    try:
        yield
    finally:
        lock.release()


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


def save_image(image_bgr: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Write a BGR uint8 image atomically, its format from ``path``'s extension (JPEG at ``quality``)."""
    import cv2
    ext = Path(path).suffix.lower()
    ok, buf = cv2.imencode(ext, image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else [])
    if not ok:
        raise ValueError(f"{path}: could not encode the image as {ext}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


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


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256 prefix


def file_digest(path: str | os.PathLike) -> str:
    """:func:`file_sha256` of a file (16 hex digits), read once per process: memoised on
    ``(path, size, mtime_ns)``, so a rewritten file is read again. Raises ``OSError``."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(p)
    return _DIGESTS[key]


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
