"""Reading untrusted files in a child process: a crash or a hang of a native library is an error, not the end.

libhdf5 parses a file's structure in C. A corrupted file can make it loop for ever (a damaged global-heap
collection, which holds every variable-length string h5py writes, spins ``H5HG__cache_heap_deserialize``) or
read out of bounds, and no check written in Python before the read can rule that out, because the checks
themselves go through the same parser. :func:`run_isolated` therefore runs a reader (a function of this package
that opens the file and returns plain values) in a child process within a time limit that grows with the file's
size: a refusal comes back as :class:`~spikelfp.io.errors.ExportError` with the reader's message, a crash (a
signal) or a hang (past the limit) as an ``ExportError`` that says so, and the interpreter that asked is never
touched.

On Linux the child is a fork (a few milliseconds; it runs only h5py and numpy, never torch). Elsewhere it is a
new interpreter that imports the reader (slower: it imports spikelfp). The result travels as JSON plus the raw
bytes of numeric arrays; nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError, optional

__all__ = ["ISOLATE", "READ_SECONDS", "READ_SECONDS_PER_MB", "run_isolated"]

#: the time a reader may take: this many seconds plus READ_SECONDS_PER_MB for every MiB of the file
READ_SECONDS = 30.0
READ_SECONDS_PER_MB = 2.0
#: fork where it is safe and fast (Linux); elsewhere start a new interpreter
FORK = sys.platform.startswith("linux") and hasattr(os, "fork")
#: False runs readers in this process (a debugger, a memory trace); a file that crashes libhdf5 then crashes it
ISOLATE = True


def run_isolated(reader: Callable[..., Any], path: Path, *args: Any) -> Any:
    """``reader(path, *args)`` in a child process; its value (plain data: dicts, lists, strings, numbers and
    numeric numpy arrays), or an :class:`ExportError`.

    The reader must be a module-level function of this package that raises :class:`ExportError` for a file it
    refuses; any other exception is reported as a malformed file.

    Parameters
    ----------
    reader
        The function that reads the file (in the child).
    path
        The file; its size sets the time limit (``READ_SECONDS + READ_SECONDS_PER_MB × MiB``).
    *args
        Further arguments of ``reader`` (plain values).
    """
    budget = READ_SECONDS + READ_SECONDS_PER_MB * path.stat().st_size / 2**20
    if not ISOLATE:
        return _decode(_result(reader, path, args), path)
    payload = _forked(reader, path, args, budget) if FORK else _spawned(reader, path, args, budget)
    return _decode(payload, path)


# --------------------------------------------------------------------------------------------------
# the two ways to run the child
# --------------------------------------------------------------------------------------------------
def _forked(reader: Callable[..., Any], path: Path, args: tuple, budget: float) -> bytes:
    optional("h5py")  # imported here once, not in every child
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python ≥ 3.12 warns about fork in a threaded process; the child runs no threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (its coverage is not collected)
        try:
            os.close(r)
            faulthandler.disable()  # a crash here is reported by the parent, not by a traceback on a shared stderr
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a hang past the budget ends the child, not a handler
            signal.alarm(int(budget) + 2)
            _write_all(w, _result(reader, path, args))
        finally:
            os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + budget
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise _hang(path, budget)
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:  # past the limit, or interrupted: the child goes too
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise _crash(path, os.WTERMSIG(status))
    return b"".join(chunks)


def _spawned(reader: Callable[..., Any], path: Path, args: tuple, budget: float) -> bytes:
    call = json.dumps([sys.path, reader.__module__, reader.__qualname__, str(path), list(args)])
    code = "import sys, json; sys.path[:0] = json.loads(sys.argv[1])[0]; import spikelfp.io.isolated as m; m._main()"
    try:
        done = subprocess.run([sys.executable, "-c", code, call], capture_output=True, timeout=budget, check=False)
    except subprocess.TimeoutExpired:
        raise _hang(path, budget) from None
    if done.returncode < 0:
        raise _crash(path, -done.returncode)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ExportError(f"{path}: the reading process failed ({reason[0]})")
    return done.stdout


def _main() -> None:  # pragma: no cover - runs in the spawned child
    _, module, name, path, args = json.loads(sys.argv[1])
    reader = getattr(importlib.import_module(module), name)
    sys.stdout.buffer.write(_result(reader, Path(path), tuple(args)))
    sys.stdout.flush()


def _hang(path: Path, budget: float) -> ExportError:
    return ExportError(
        f"{path}: reading it did not finish within {budget:.0f} s (a damaged HDF5 structure can make libhdf5 loop); "
        "refused"
    )


def _crash(path: Path, signum: int) -> ExportError:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return ExportError(f"{path}: reading it crashed libhdf5 in the reading process ({name}); refused as malformed")


def _write_all(fd: int, data: bytes) -> None:  # pragma: no cover - runs in the child
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _result(reader: Callable[..., Any], path: Path, args: tuple) -> bytes:
    try:
        value = reader(path, *args)
        return _encode({"ok": True, "value": value})
    except ExportError as exc:
        return _encode({"ok": False, "error": str(exc)})
    except BaseException as exc:  # a reader's unexpected failure is a malformed file, by its message
        first = str(exc).splitlines()[0] if str(exc) else ""
        return _encode({"ok": False, "error": f"{path}: malformed file ({type(exc).__name__}: {first})"})


# --------------------------------------------------------------------------------------------------
# the result: JSON, with numeric arrays as raw bytes after it
# --------------------------------------------------------------------------------------------------
_NUMERIC = "biuf"


def _encode(value: Any) -> bytes:
    blobs: list[bytes] = []

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {"__dict__": [[str(k), plain(x)] for k, x in v.items()]}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (np.ndarray, np.generic)):
            a, scalar = np.asarray(v), isinstance(v, np.generic)
            if a.dtype.kind in _NUMERIC:
                blobs.append(np.ascontiguousarray(a).tobytes())
                return {"__array__": len(blobs) - 1, "dtype": a.dtype.str, "shape": list(a.shape), "scalar": scalar}
            if a.dtype.kind in "OSU":
                flat = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a.reshape(-1).tolist()]
                return {"__strings__": flat, "shape": list(a.shape)}
            raise TypeError(f"arrays of dtype {a.dtype} are not read")
        if isinstance(v, bytes):
            return {"__bytes__": v.decode("latin-1")}
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
        raise TypeError(f"a value of type {type(v).__name__} is not read")

    header = json.dumps({"value": plain(value)}).encode()
    sizes = json.dumps([len(b) for b in blobs]).encode()
    return struct.pack("<QQ", len(header), len(sizes)) + header + sizes + b"".join(blobs)


def _decode(payload: bytes, path: Path) -> Any:
    try:
        head, nsizes = struct.unpack_from("<QQ", payload)
        header = json.loads(payload[16 : 16 + head])
        sizes = json.loads(payload[16 + head : 16 + head + nsizes])
    except (struct.error, ValueError) as exc:
        raise ExportError(f"{path}: the reading process returned no readable result ({exc})") from None
    offsets = np.cumsum([16 + head + nsizes, *sizes]).tolist()

    def back(v: Any) -> Any:
        if isinstance(v, list):
            return [back(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "__dict__" in v:
            return {k: back(x) for k, x in v["__dict__"]}
        if "__array__" in v:
            dtype = np.dtype(v["dtype"])
            if dtype.kind not in _NUMERIC:
                raise ExportError(f"{path}: the reading process returned an array of dtype {dtype}")
            i = int(v["__array__"])
            a = np.frombuffer(payload, dtype=dtype, count=sizes[i] // max(dtype.itemsize, 1), offset=offsets[i])
            a = a.reshape(v["shape"]).copy()
            return a[()] if v["scalar"] else a
        if "__strings__" in v:
            return np.array(v["__strings__"], dtype=object).reshape(v["shape"])
        if "__bytes__" in v:
            return v["__bytes__"].encode("latin-1")
        raise ExportError(f"{path}: the reading process returned an unknown value")

    result = back(header["value"])
    if not isinstance(result, dict) or "ok" not in result:
        raise ExportError(f"{path}: the reading process returned no result")
    if not result["ok"]:
        raise ExportError(str(result["error"]))
    return result["value"]
