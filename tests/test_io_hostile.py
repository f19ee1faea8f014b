"""Hostile export files (issue 22, item 6): every malformed file is an ExportError in bounded time, never a crash
of the interpreter, and a failed or killed write keeps the previous file.

The damage that crashed the loader before: libhdf5 keeps every variable-length string h5py writes (the binary
format's attributes up to version 2, NIR's strings) in a global heap, and a damaged size field of one of its
objects makes ``H5HG__cache_heap_deserialize`` loop for ever (HDF5 2.0.0; other versions read past the
collection). Readers therefore run in a child process (:mod:`spikelfp.io.isolated`), and version 3 of the
binary format writes no variable-length data at all.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import spikelfp as sl

h5py = pytest.importorskip("h5py", reason="h5py (extra 'export') is not installed")
nir = pytest.importorskip("nir", reason="nir (extra 'export') is not installed")
from spikelfp import export  # noqa: E402
from spikelfp.io import AtomicWriteError, isolated, weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def spiking_conv() -> nn.Module:
    torch.manual_seed(0)
    return sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2)),
        sl.LIF(0.5),
        nn.Flatten(2),
        nn.Linear(64, 10),
        sl.LIF(0.9),
        input_shape=(2, 8, 8),
    )


def dense() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(30, 20), sl.LIF(0.5), nn.Linear(20, 8), sl.LIF(0.75, 0.5, "zero"))


def write_version_2(model: nn.Module, path: Path) -> Path:
    """The file the version-2 writer wrote: variable-length string attributes (in libhdf5's global heap), the
    architecture as an attribute, a LIF as its beta, threshold and reset."""
    export.save_binary(model, path)

    def legacy(desc):
        if desc.get("type") == "LIF" and "spec" in desc:
            spec = desc["spec"]
            return {"type": "LIF", "beta": spec["beta"], "threshold": spec["threshold"], "reset": spec["reset"]}
        if "children" in desc:
            return {**desc, "children": [legacy(c) for c in desc["children"]]}
        return desc

    with h5py.File(path, "a") as f:
        arch = legacy(json.loads(f["architecture"][()].tobytes()))
        del f["architecture"]
        for key in list(f.attrs):
            del f.attrs[key]
        f.attrs["format"] = "spikelfp-binary"
        f.attrs["version"] = 2
        f.attrs["scale"] = "row-mean-abs"
        f.attrs["architecture"] = json.dumps(arch)
        for g in f["layers"].values():
            g.attrs["mode"] = bytes(g.attrs["mode"]).decode()
            del g.attrs["sha256"]
    return path


# --------------------------------------------------------------------------------------------------
# fuzzing: random byte flips never crash the interpreter
# --------------------------------------------------------------------------------------------------
FUZZ = r"""
import json, random, sys, time
from spikelfp import export
import spikelfp.io.isolated as isolated

isolated.READ_SECONDS, isolated.READ_SECONDS_PER_MB = 2.0, 0.0  # a hang costs 2 s, not 30
report = {}
for kind, path, seed, tries, budget in json.loads(sys.argv[1]):
    load = export.from_nir if kind == "nir" else export.load_binary
    good = open(path, "rb").read()
    rng = random.Random(seed)
    outcomes, start = {}, time.monotonic()
    while sum(outcomes.values()) < tries and time.monotonic() - start < budget:
        data = bytearray(good)
        for _ in range(15):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        with open(path + ".bad", "wb") as f:
            f.write(data)
        try:
            load(path + ".bad")
            key = "loaded"
        except export.ExportError:
            key = "ExportError"
        except BaseException as exc:
            key = f"{type(exc).__name__}: {str(exc)[:200]}"
        outcomes[key] = outcomes.get(key, 0) + 1
    report[kind] = outcomes
print(json.dumps(report))
"""


def test_random_byte_flips_give_export_error_or_a_model_never_a_crash(tmp_path):
    """15 flipped bits per file, a deterministic sequence of files per format, within a time budget: the loader
    runs in a separate interpreter, where a crash of libhdf5 would end that interpreter and not pytest; every
    file must load or raise ExportError, and the interpreter must exit cleanly."""
    files = {
        "binary": export.save_binary(spiking_conv(), tmp_path / "v3.h5"),
        "binary-v2": write_version_2(spiking_conv(), tmp_path / "v2.h5"),
        "nir": tmp_path / "m.nir",
    }
    export.to_nir(dense(), files["nir"])
    plan = [[kind, str(path), seed, 300, 3.0] for seed, (kind, path) in enumerate(files.items())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", FUZZ, json.dumps(plan)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, f"the loading interpreter died (status {done.returncode}): {done.stderr[-2000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(report)
    for kind, outcomes in report.items():
        assert set(outcomes) <= {"loaded", "ExportError"}, (kind, outcomes)
        assert outcomes.get("ExportError", 0) >= 10, (kind, outcomes)  # the flips did damage, and it was seen


def _heap_objects(data: bytes) -> list[tuple[int, int, int]]:
    """``(index, offset, size)`` of the objects of the file's first global-heap collection (HDF5's format:
    "GCOL", version, 3 reserved bytes, the collection's size; then 16-byte object headers)."""
    base = data.find(b"GCOL")
    assert base >= 0, "the file has no global heap"
    (size,) = struct.unpack_from("<Q", data, base + 8)
    objects, at = [], base + 16
    while at + 16 <= base + size:
        index, _, _, n = struct.unpack_from("<HHIQ", data, at)
        objects.append((index, at, n))
        if index == 0:
            break
        at += 16 + (n + 7) // 8 * 8
    return objects


def test_a_damaged_global_heap_is_refused_in_bounded_time(tmp_path, monkeypatch):
    """The damage the fuzzing found: one global-heap object's size grown by 1024 (a single flipped bit). libhdf5
    2.0.0 loops for ever on it; the loader refuses the file within its time limit."""
    monkeypatch.setattr(isolated, "READ_SECONDS", 2.0)
    monkeypatch.setattr(isolated, "READ_SECONDS_PER_MB", 0.0)
    path = write_version_2(dense(), tmp_path / "v2.h5")
    assert isinstance(export.load_binary(path)[1], sl.LIF)  # the undamaged version-2 file loads
    data = bytearray(path.read_bytes())
    _, at, size = next(o for o in _heap_objects(bytes(data)) if o[0] != 0 and o[2] < 64)  # a short string
    struct.pack_into("<Q", data, at + 8, size + 1024)
    path.write_bytes(bytes(data))
    start = time.monotonic()
    with pytest.raises(export.ExportError, match=str(path)):
        export.load_binary(path)
    assert time.monotonic() - start < 60  # not a timing benchmark: a hang would never get here


def _segfault(path: Path) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang(path: Path) -> None:
    time.sleep(600)


def _plain(path: Path) -> dict:
    return {"a": np.arange(3, dtype=np.int16), "b": [np.float32(1.5), "x", b"y", None], "c": np.array(["u", "v"])}


@pytest.mark.skipif(not isolated.FORK, reason="the forked reader runs on Linux")
def test_a_reader_that_crashes_or_hangs_is_an_export_error(tmp_path, monkeypatch):
    path = tmp_path / "any.h5"
    path.write_bytes(b"x")
    with pytest.raises(export.ExportError, match=r"crashed libhdf5 in the reading process \(SIGSEGV\)"):
        isolated.run_isolated(_segfault, path)
    monkeypatch.setattr(isolated, "READ_SECONDS", 1.0)
    with pytest.raises(export.ExportError, match=r"did not finish within 1 s"):
        isolated.run_isolated(_hang, path)
    got = isolated.run_isolated(_plain, path)  # plain values travel without pickle
    assert got["a"].dtype == np.int16 and got["a"].tolist() == [0, 1, 2]
    assert got["b"] == [np.float32(1.5), "x", b"y", None] and isinstance(got["b"][0], np.float32)
    assert got["c"].tolist() == ["u", "v"]


def test_readers_also_run_in_a_new_interpreter(tmp_path, monkeypatch):
    """Where fork is not used (not Linux), the reader runs in a new interpreter; same results."""
    monkeypatch.setattr(isolated, "FORK", False)
    model = spiking_conv()
    path = export.save_binary(model, tmp_path / "m.h5", float_layers="keep")
    x = (torch.rand(4, 3, 2, 8, 8) < 0.5).float()
    assert torch.equal(export.load_binary(path)(x), model(x))


# --------------------------------------------------------------------------------------------------
# structure: sizes that disagree, filters, counts, long chains
# --------------------------------------------------------------------------------------------------
def test_nir_conv_with_changed_groups_is_refused_before_building(tmp_path):
    model = sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)), sl.LIF(0.5), input_shape=(2, 8, 8)
    )
    path = tmp_path / "conv.nir"
    export.to_nir(model, path)
    with h5py.File(path, "a") as f:
        key = next(k for k in f["node/nodes"] if f[f"node/nodes/{k}/type"][()] == b"Conv2d")
        del f[f"node/nodes/{key}/groups"]
        f[f"node/nodes/{key}/groups"] = np.int64(2)  # the weight (4, 2, 3, 3) now means 4 input channels
    with pytest.raises(export.ExportError, match=r"cannot take a sample of shape \(2, 8, 8\): in_channels .* is 4"):
        export.from_nir(path)


def test_binary_model_whose_layers_do_not_fit_is_refused(tmp_path):
    path = export.save_binary(nn.Sequential(nn.Linear(20, 6), nn.ReLU(), nn.Linear(7, 3)), tmp_path / "m.h5")
    with pytest.raises(export.ExportError, match=r"layer '2' \(Linear\) cannot take a sample of shape \(6,\)"):
        export.load_binary(path)


def test_filters_that_need_plugins_and_too_many_objects_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "m.nir"
    export.to_nir(dense(), path)
    with h5py.File(path, "a") as f:
        data = f["node/nodes/0/weight"][()]
        del f["node/nodes/0/weight"]
        f.create_dataset("node/nodes/0/weight", data=data, compression="lzf")  # h5py's own filter, id 32000
    with pytest.raises(export.ExportError, match=r"names filter\(s\) 32000, which need plugins"):
        export.from_nir(path)
    export.to_nir(dense(), path)
    monkeypatch.setattr(sl.io.hdf5, "HDF5_MAX_OBJECTS", 20)
    with pytest.raises(export.ExportError, match="holds more than 20 groups and datasets"):
        export.from_nir(path)


def test_binary_datasets_must_be_contiguous_and_unfiltered(tmp_path):
    path = export.save_binary(dense(), tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        data = f["layers/0/scale"][()]
        del f["layers/0/scale"]
        f.create_dataset("layers/0/scale", data=data, chunks=True, compression="gzip")
    with pytest.raises(export.ExportError, match="'scale' of layer '0' is chunked or filtered"):
        export.load_binary(path)


def test_a_flipped_byte_in_the_weights_is_caught_by_the_checksum(tmp_path):
    path = export.save_binary(dense(), tmp_path / "m.h5", float_layers="keep")
    with h5py.File(path, "a") as f:
        w = f["layers/2/weight"][()]
        w.view(np.uint8)[5] ^= 0x10
        f["layers/2/weight"][...] = w
    with pytest.raises(export.ExportError, match="the weights of layer '2' do not match their checksum"):
        export.load_binary(path)


def test_a_long_chain_is_refused_at_its_first_unknown_node_without_building_it():
    """20 000 nodes ending in a node spikelfp cannot run: refused by name after one pass over the graph (before
    the change: the recurrence search was quadratic and every layer was built first)."""
    nodes = {"input": nir.Input(input_type=np.array([2]))}
    edges, previous = [], "input"
    for i in range(10_000):
        nodes[f"a{i}"] = nir.Linear(weight=np.eye(2, dtype=np.float32))
        nodes[f"l{i}"] = nir.LIF(
            tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2)
        )
        edges += [(previous, f"a{i}"), (f"a{i}", f"l{i}")]
        previous = f"l{i}"
    nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    nodes["output"] = nir.Output(output_type=np.array([2]))
    edges += [(previous, "pool"), ("pool", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    with pytest.raises(export.ExportError, match="NIR node 'pool' of type SumPool2d cannot run in spikelfp"):
        export.from_nir(graph)


# --------------------------------------------------------------------------------------------------
# atomic writes: a failed or killed write keeps the previous file
# --------------------------------------------------------------------------------------------------
def test_a_binary_write_that_fails_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    old = dense()
    path = export.save_binary(old, tmp_path / "m.h5")
    before = path.read_bytes()
    calls = []
    real = weights._write_layer

    def full_disk(g, layer, scale, float_layers):
        calls.append(1)
        if len(calls) == 2:  # the first layer is written, then the disk is full
            raise OSError(errno.EFBIG, "File too large")
        real(g, layer, scale, float_layers)

    monkeypatch.setattr(weights, "_write_layer", full_disk)
    with pytest.raises(AtomicWriteError, match=r"\(the previous one is kept\): File too large"):
        export.save_binary(spiking_conv(), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]
    x = (torch.rand(4, 3, 30) < 0.5).float()
    assert torch.equal(export.load_binary(path)(x), export.binarize(old)(x))


def test_a_nir_write_that_fails_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.nir"
    export.to_nir(dense(), path)
    before = path.read_bytes()

    def partial(filename, graph, **kw):
        Path(filename).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a torn file
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(nir, "write", partial)
    with pytest.raises(AtomicWriteError, match="File too large"):
        export.to_nir(spiking_conv(), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]
    assert isinstance(export.from_nir(path)[3], sl.LIF) and export.from_nir(path)[3].reset == "zero"


KILLED = r"""
import sys, time
import torch
from torch import nn
import spikelfp as sl
from spikelfp import export
from spikelfp.io import weights

real = weights._write_layer

def slow(g, *args):
    real(g, *args)
    print("WRITING", flush=True)
    time.sleep(600)

weights._write_layer = slow
export.save_binary(nn.Sequential(nn.Linear(5, 4), sl.LIF(0.5)), sys.argv[1])
"""


def test_a_killed_write_keeps_the_previous_file(tmp_path):
    old = dense()
    path = export.save_binary(old, tmp_path / "m.h5")
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert writer.stdout.readline().strip() == b"WRITING", writer.stderr.read().decode()[-2000:]
        assert any(p.name.startswith("m.h5.tmp") for p in tmp_path.iterdir())  # midway through the new file
    finally:
        writer.kill()
        writer.wait()
    assert path.read_bytes() == before
    x = (torch.rand(4, 3, 30) < 0.5).float()
    assert torch.equal(export.load_binary(path)(x), export.binarize(old)(x))


def test_version_3_files_hold_no_variable_length_data(tmp_path):
    """What keeps the global heap out of reach: every attribute and dataset of a version-3 file has a fixed size."""
    path = export.save_binary(dense(), tmp_path / "m.h5")
    kinds = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: kinds.extend([obj.dtype] if isinstance(obj, h5py.Dataset) else []))
        f.visititems(lambda name, obj: kinds.extend(h5py.h5a.open(obj.id, k.encode()).dtype for k in obj.attrs))
        kinds.extend(h5py.h5a.open(f.id, k.encode()).dtype for k in f.attrs)
        assert f.attrs["version"] == 3
        assert (
            bytes(f.attrs["architecture_sha256"]).decode()
            == hashlib.sha256(f["architecture"][()].tobytes()).hexdigest()
        )
    assert kinds and all(h5py.check_vlen_dtype(d) is None and d.kind != "O" for d in kinds)
    assert b"GCOL" not in path.read_bytes()


def test_a_learnable_decay_trained_past_one_exports_as_the_forward_uses_it(tmp_path):
    """The forward clamps a learnable β to [0, 1]; the spec (and so both writers) describe that clamped value,
    so the file computes what the trained model computes."""
    model = sl.nn.SpikingSequential(nn.Linear(3, 2), sl.LIF(0.9, learn_beta=True), input_shape=(3,))
    with torch.no_grad():
        model[1].beta.fill_(1.05)
        model[0].weight.mul_(4.0)
    assert model[1].spec.beta.item() == 1.0
    x = (torch.rand(12, 4, 3, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with torch.no_grad():
        want = model(x)
    assert want.sum() > 0
    assert torch.equal(export.from_nir(export.to_nir(model))(x), want)
    assert torch.equal(export.load_binary(export.save_binary(model, tmp_path / "m.h5"))(x), export.binarize(model)(x))
