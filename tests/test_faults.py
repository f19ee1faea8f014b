"""Fault injection (issue 14): nothing lost, nothing silently wrong.

Each test injects one real fault — a SIGTERM to a running ``spikelfp train``, a failing save, one
rank of two failing, a flipped byte in ``checkpoint.pt``, a hostile ``.nir`` (external link, external
storage, virtual dataset, huge declared shape), a gzip bomb, damaged run folders — and checks the
documented outcome: a checkpoint or the previous one kept, a one-line error, a group that goes down
in seconds, a refusal before anything is allocated or read from elsewhere.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import spikelfp as sl
from spikelfp import cli
from spikelfp.cli import main
from spikelfp.data import DataError
from spikelfp.train import CheckpointError, Config, Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "lenet", "--limit-train", "64", "--limit-test", "32", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def mnist():
    return sl.data.mnist(train=True, download=False), sl.data.mnist(train=False, download=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished one-epoch CLI run; tests damage copies of it."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def small(**kw) -> Config:
    base = dict(model="lenet", method="lfp-epsilon", epochs=2, batch_size=32, limit_train=128, limit_test=32)
    base.update(kw)
    return Config(**base)


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def one_error_line(err: str) -> str:
    """The single ``error:`` line of a CLI failure (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1, err
    return lines[0]


# ---- 1: no run overwritten; unique default folders -------------------------------------------------
def test_out_into_an_existing_run_is_refused_unless_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "model.pt", "metrics.jsonl")}
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "1", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "already holds a run" in line and "--resume" in line and "--force" in line
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing touched
    assert main(["train", *TINY, "--seed", "1", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # a fresh log, not appended


def test_default_run_folders_differ_within_one_second(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")  # the same second
    args = argparse.Namespace(out=None, force=False)
    first = cli._fresh_out(args, Config(), 0, 1)
    second = cli._fresh_out(args, Config(), 0, 1)
    assert first != second and first.parent == second.parent == Path("runs")


# ---- 2: SIGTERM is Ctrl-C ----------------------------------------------------------------------------
def test_sigterm_checkpoints_and_exits_nonzero(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spikelfp.cli", "train", "--model", "lenet", "--limit-train", "20000"]
    cmd += ["--limit-test", "32", "--batch-size", "8", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.json").exists():  # written after the handlers are in place
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "SIGTERM: checkpoint saved" in stdout
    assert (out / "checkpoint.pt").is_file() and not (out / "model.pt").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and 1 <= state["step_in_epoch"] < 2500  # stopped mid-epoch, after a step


# ---- 3: a failed save keeps the previous checkpoint ---------------------------------------------------
@pytest.mark.parametrize("fault", ["enospc", "erofs"])
def test_failed_save_cleans_up_and_keeps_the_previous_checkpoint(mnist, tmp_path, monkeypatch, fault):
    trainer = Trainer(small(epochs=1), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    trainer.fit()
    good = (tmp_path / "checkpoint.pt").read_bytes()
    if fault == "enospc":
        real_save = torch.save

        def save(obj, f, *a, **k):  # the disk fills half-way through the file
            real_save(obj, f, *a, **k)
            Path(f).write_bytes(Path(f).read_bytes()[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(torch, "save", save)
    else:

        def replace(src, dst):  # the folder turned read-only before the rename
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(os, "replace", replace)
    trainer.global_step += 1  # something new to save
    with pytest.raises(CheckpointError, match="could not save .*checkpoint.pt \\(the previous one is kept\\)") as e:
        trainer.save_checkpoint()
    assert "\n" not in str(e.value)
    assert os.strerror(errno.ENOSPC if fault == "enospc" else errno.EROFS) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl", "model.pt"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == good


def test_failed_save_is_one_cli_line(tmp_path, monkeypatch, capsys):
    def save(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "could not save" in line and "No space left on device" in line
    assert not list((tmp_path / "run").glob("*.tmp*"))


# ---- 4: one failing rank brings the group down -------------------------------------------------------
def test_one_failing_rank_brings_the_group_down_in_seconds(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        rank_env = dict(env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
        rank_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SPIKELFP_DIST_TIMEOUT="60")
        args = [*TINY, "--out", str(tmp_path / "run")]
        if rank == 1:
            args += ["--data-root", str(tmp_path / "missing")]  # this rank alone cannot start
        cmd = [sys.executable, "-m", "spikelfp.cli", "train", *args]
        procs.append(subprocess.Popen(cmd, env=rank_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    began = time.monotonic()
    results = []
    try:
        for p in procs:
            results.append(p.communicate(timeout=50))  # the gloo default would hang for 30 minutes
    finally:
        for p in procs:
            p.kill()
    assert time.monotonic() - began < 50
    assert procs[1].returncode == 2 and procs[0].returncode != 0
    line = one_error_line(results[1][1])
    assert "missing" in line and "rank 1" in line
    assert "rank 0" in one_error_line(results[0][1])


# ---- 8: --resume with conflicting flags; hand-edited config.json ---------------------------------------
def test_resume_refuses_conflicting_flags_and_logs_safe_overrides(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--lr", "0.5", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--lr 0.5" in line and "conflict" in line and "--epochs" in line
    assert main(["train", "--resume", str(out), "--model", "lenet", "--epochs", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out  # the same value as the run's is no conflict; the epoch count is logged
    assert "override: epochs = 2 (the run had 1)" in text
    assert json.loads((out / "config.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"limit_train": -5}, "limit_train must be >= 1"),
        ({"epochs": "3"}, "epochs = '3' has the wrong type"),
        ({"lr_gamma": 0}, "lr_gamma must be a finite number > 0"),
        ({"optimizer": "lbfgs"}, "cannot train here"),
        ({"learning_rate": 0.1}, "unknown key"),
    ],
)
def test_hand_edited_config_is_validated(tiny_run, tmp_path, capsys, edit, message):
    out = shutil.copytree(tiny_run, tmp_path / "run")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, **edit}))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "config.json" in line and message in line


# ---- 9: world size and every rank's tally -----------------------------------------------------------
WORLD = 2


def _ddp_worker(rank, init_file, root):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        sets = sl.data.mnist(train=True, download=False), sl.data.mnist(train=False, download=False)
        config = Config(model="lenet", epochs=1, batch_size=16, limit_train=128, limit_test=32)

        def make(folder):
            return Trainer(config, folder, train_set=sets[0], test_set=sets[1], progress=False, rank=rank, world_size=2)

        full = make(os.path.join(root, "full"))
        full.fit()
        cut = make(os.path.join(root, "cut"))
        original = cut.train_step

        def train_step(x, y):
            out = original(x, y)
            if cut.global_step == 2 and rank == 1:  # one rank is interrupted; all stop after step 3
                cut._stop_requested = True
            return out

        cut.train_step = train_step
        cut.fit()
        dist.barrier()
        again = make(os.path.join(root, "cut"))
        again.load_checkpoint(os.path.join(root, "cut", "checkpoint.pt"))
        again.fit()
        torch.save({"full": full.history, "again": again.history}, os.path.join(root, f"history{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_checkpoint_holds_world_size_and_every_ranks_tally(tmp_path, mnist):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["tallies"]) == 2
    h = torch.load(tmp_path / "history0.pt", weights_only=True)
    # the interrupted epoch's train accuracy counts both ranks' own samples, as the uninterrupted run
    assert h["again"][0]["train_accuracy"] == h["full"][0]["train_accuracy"]
    assert h["again"][0]["train_loss"] == h["full"][0]["train_loss"]
    # resuming it in one process is refused: the data order and the summed updates differ
    one = Trainer(small(batch_size=16, limit_train=128, epochs=1), tmp_path / "one", train_set=mnist[0],
                  test_set=mnist[1], progress=False)  # fmt: skip
    with pytest.raises(CheckpointError, match="written by 2 process\\(es\\); resume it with the same number"):
        one.load_checkpoint(tmp_path / "cut")


# ---- 10: a kill between the metrics line and the checkpoint -------------------------------------------
class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_kill_between_metrics_and_checkpoint_does_not_duplicate_an_epoch(mnist, tmp_path):
    run = Trainer(small(epochs=2), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    original = run.save_checkpoint

    def save_checkpoint():
        if run.epoch == 2:  # epoch 2's line is in metrics.jsonl, its checkpoint never gets written
            raise Killed
        return original()

    run.save_checkpoint = save_checkpoint
    with pytest.raises(Killed):
        run.fit()
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    again = Trainer(small(epochs=2), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    again.load_checkpoint(tmp_path)
    assert again.epoch == 1
    again.fit()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert lines == again.history


# ---- 12: a flipped byte in a tensor of checkpoint.pt ------------------------------------------------
def test_flipped_byte_in_a_checkpoint_tensor_is_refused(mnist, tmp_path):
    trainer = Trainer(small(epochs=1), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    trainer.fit()
    path = tmp_path / "checkpoint.pt"
    with zipfile.ZipFile(path) as z:  # the largest tensor payload: a weight matrix
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(bytes(raw[info.header_offset + 26 : info.header_offset + 30]), "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    raw[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    fresh = Trainer(small(epochs=1), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    with pytest.raises(CheckpointError, match="is corrupt: the SHA-256 of its contents"):
        fresh.load_checkpoint(path)


def test_payload_digest_is_sha256_over_typed_contents():
    import hashlib

    state = {"b": torch.tensor([1.0, 2.0]), "a": [1, "x", None]}
    h = hashlib.sha256()  # the documented layout, restated
    h.update(b"D2:")
    h.update(b"str:'a';L3:int:1;str:'x';NoneType:None;")
    h.update(b"str:'b';Ttorch.float32(2,):" + np.array([1.0, 2.0], "<f4").tobytes())
    assert sl.train.payload_digest(state) == h.hexdigest()
    assert sl.train.payload_digest({**state, "sha256": "anything"}) == h.hexdigest()
    wider = {"b": torch.tensor([1.0, 2.0], dtype=torch.float64), "a": [1, "x", None]}
    assert sl.train.payload_digest(wider) != h.hexdigest()


# ---- 13: gzip bomb, hostile N-MNIST .npz ------------------------------------------------------------
def test_gzip_bomb_is_refused_without_expanding_it(tmp_path):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    chunk = bytes(1 << 20)
    bomb = b"".join(packer.compress(chunk) for _ in range(256)) + packer.flush()  # 256 MiB of zeros
    assert len(bomb) < 1 << 20
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="decompresses to more than 7840016 bytes"):
            sl.data.mnist(train=False, root=tmp_path, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # never more than the real file's 7.8 MB (and the bomb), not 256 MiB


def test_load_idx_bounds_unknown_gzip_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sl.data.idx, "MAX_DECOMPRESSED_BYTES", 1000)
    path = tmp_path / "other.idx.gz"
    path.write_bytes(gzip.compress(bytes(5000)))
    with pytest.raises(DataError, match="decompresses to more than 1000 bytes"):
        sl.data.load_idx(path)


def _npz(path, **changes):
    x = np.array([0, 5, 33, 1, 2], np.int16)
    arrays = dict(x=x, y=x.copy(), t=np.array([0, 10, 20, 0, 5], np.int64), p=np.array([0, 1, 1, 0, 1], np.int8))
    arrays.update(offsets=np.array([0, 3, 5], np.int64), labels=np.array([3, 7], np.uint8))
    arrays.update(changes)
    splits = {f"{s}_{k}": v for s in ("train", "test") for k, v in arrays.items()}
    np.savez(path, **splits)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": np.array([0, -5, 33, 1, 2], np.int16)}, "train_x holds values outside \\[0, 34\\)"),
        ({"y": np.array([0, 5, 34, 1, 2], np.int16)}, "train_y holds values outside"),
        ({"p": np.array([0, 2, 1, 0, 1], np.int8)}, "train_p holds values outside"),
        ({"t": np.array([0, -1, 20, 0, 5], np.int64)}, "train_t holds values outside"),
        ({"labels": np.array([3.0, 7.5])}, "train_labels must be a 1-D integer array"),
        ({"labels": np.array([3, 12], np.int64)}, "train_labels holds values outside \\[0, 10\\)"),
        ({"offsets": np.array([0, 10**12, 5], np.int64)}, "train_offsets decrease"),
        ({"offsets": np.array([0, 3, 10**12], np.int64)}, "do not fit together"),
    ],
)
def test_hostile_nmnist_npz_is_refused(tmp_path, change, message):
    pytest.importorskip("tonic")
    good = sl.data.nmnist(train=True, root=_npz(tmp_path / "good.npz"), steps=2)
    assert len(good) == 2 and good.labels.tolist() == [3, 7]  # the valid file loads
    assert good.events(1)["x"].tolist() == [1, 2] and good.frames(0).shape == (2, 2, 34, 34)
    with pytest.raises(DataError, match=message):
        sl.data.nmnist(train=True, root=_npz(tmp_path / "bad.npz", **change), steps=2)


# ---- 14: CLI values ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--limit-train", "-5", "-5 must be >= 1"),
        ("--limit-train", "0", "0 must be >= 1"),
        ("--limit-test", "0", "0 must be >= 1"),
        ("--checkpoint-every", "-1", "-1 must be >= 0"),
        ("--lr-gamma", "-1", "-1 must be > 0"),
        ("--threads", "-1", "-1 must be >= 1"),
        ("--optimizer", "lbfgs", "it needs a closure"),
        ("--optimizer", "sparseadam", "it needs sparse gradients"),
        ("--optimizer", "sgdx", "unknown optimizer"),
        ("--lr", "nan", "not a finite number"),
        ("--batch-size", "0", "0 must be >= 1"),
        ("--beta", "1.5", "1.5 must be <= 1"),
        ("--steps", "two", "'two' is not an integer"),
    ],
)
def test_bad_cli_values_are_one_line_errors(tmp_path, capsys, flag, value, message):
    assert main(["train", *TINY, "--epochs", "0", "--out", str(tmp_path), flag, value]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert flag in line and message in line
    assert not list(tmp_path.iterdir())  # nothing was started


def test_config_refuses_the_same_values():
    for bad in (dict(limit_train=0), dict(limit_test=-1), dict(checkpoint_every=-1), dict(lr_gamma=-1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Config(**bad).resolved()
    for name in ("lbfgs", "SparseAdam"):
        with pytest.raises(ValueError, match="cannot train here"):
            Config(optimizer=name).resolved()
    with pytest.raises(ValueError, match="n >= 1"):
        sl.data.mnist(train=False, download=False).subset(-5)


def test_resume_of_a_missing_folder_names_it(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["train", "--resume", str(missing), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--resume {missing}: no such folder or file" in line


# ---- 15: fit() after a Ctrl-C trains again -----------------------------------------------------------
def test_fit_after_an_interrupt_trains_again(mnist, tmp_path):
    run = Trainer(small(epochs=1), tmp_path, train_set=mnist[0], test_set=mnist[1], progress=False)
    original = run.train_step

    def train_step(x, y):
        out = original(x, y)
        if run.global_step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, through the handler fit() installs
        return out

    run.train_step = train_step
    run.fit()
    assert run._stop_requested and run.global_step == 2 and not (tmp_path / "model.pt").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    run.fit()
    assert not run._stop_requested and run.global_step == 4 and run.epoch == 1
    assert (tmp_path / "model.pt").is_file()
    assert run.stop_signal is None  # and the first fit() recorded signal.SIGINT (see the SIGTERM test)


# ---- 18: damaged run folders: one line naming the file -----------------------------------------------
def _damage_checkpoint(path: Path, change, rehash: bool = True) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    if rehash and hasattr(sl.train, "payload_digest"):  # a consistent file: the structure itself is damaged
        state["sha256"] = sl.train.payload_digest(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda out: (out / "config.json").write_text("{not json"), "config.json is not readable JSON"),
        (lambda out: (out / "config.json").write_text("[1, 2]"), "config.json: expected a JSON object"),
        (lambda out: (out / "config.json").write_bytes(b"\xff\xfe"), "config.json is not readable JSON"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.pop("rng")), "lacks rng"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.update(step_in_epoch=-1)), "= -1"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.update(rng=torch.zeros(3))), "RNG"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.update(history="[")), "history"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.update(tallies=[])), "tally"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.update(epoch=True)), "epoch = True"),
        (lambda out: _damage_checkpoint(out / "checkpoint.pt", lambda s: s.pop("sha256"), False), "lacks sha256"),
        (lambda out: (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 torn"), "not a readable"),
        (lambda out: (out / "checkpoint.pt").unlink(), "no checkpoint at"),
    ],
)
def test_damaged_run_folder_is_one_line_naming_the_file(tiny_run, tmp_path, capsys, damage, message):
    out = shutil.copytree(tiny_run, tmp_path / "run")
    damage(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert message in line and ("config.json" in line or "checkpoint.pt" in line)


# ---- 11: hostile and malformed NIR files ------------------------------------------------------------
def _nir_file(tmp_path: Path) -> tuple[Path, str]:
    pytest.importorskip("nir")
    pytest.importorskip("h5py")
    model = sl.nn.SpikingSequential(nn.Linear(4, 3), sl.LIF(0.9), input_shape=(4,))
    path = tmp_path / "model.nir"
    sl.export.to_nir(model, path)
    return path, "node/nodes/0/weight"


def _replace(path: Path, key: str, make) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        del f[key]
        make(f, key)


def test_nir_with_an_external_link_is_refused(tmp_path):
    import h5py

    path, key = _nir_file(tmp_path)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["data"] = np.arange(12, dtype=np.float32).reshape(3, 4)
    _replace(path, key, lambda f, k: f.__setitem__(k, h5py.ExternalLink(str(tmp_path / "secret.h5"), "/data")))
    with pytest.raises(sl.export.ExportError, match="external link"):
        sl.export.from_nir(path)


def test_nir_with_external_storage_is_refused(tmp_path):
    path, key = _nir_file(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(12, dtype=np.float32).tobytes())  # any readable local file
    _replace(path, key, lambda f, k: f.create_dataset(k, shape=(3, 4), dtype="<f4", external=[(str(secret), 0, 48)]))
    with pytest.raises(sl.export.ExportError, match="external file"):
        sl.export.from_nir(path)


def test_nir_with_a_virtual_dataset_is_refused(tmp_path):
    import h5py

    path, key = _nir_file(tmp_path)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["data"] = np.arange(12, dtype=np.float32).reshape(3, 4)

    def virtual(f, k):
        layout = h5py.VirtualLayout(shape=(3, 4), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "secret.h5"), "data", shape=(3, 4))
        f.create_virtual_dataset(k, layout)

    _replace(path, key, virtual)
    with pytest.raises(sl.export.ExportError, match="virtual dataset"):
        sl.export.from_nir(path)


def test_nir_declaring_a_huge_shape_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(sl.io.isolated, "ISOLATE", False)  # read in this process, so that tracemalloc sees it
    path, key = _nir_file(tmp_path)
    # 128 MiB declared, nothing stored (an unwritten chunked dataset): far more than the file can hold.
    _replace(path, key, lambda f, k: f.create_dataset(k, shape=(8192, 4096), dtype="<f4", chunks=(64, 64)))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(sl.export.ExportError) as refused:
            sl.export.from_nir(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # the 128 MiB were never allocated
    assert re.search("declares .* bytes of data .* refused before allocating", str(refused.value))


def test_nir_with_a_soft_link_loop_is_refused(tmp_path):
    import h5py

    path, _ = _nir_file(tmp_path)
    with h5py.File(path, "a") as f:
        f["node/nodes/0/metadata_loop"] = h5py.SoftLink("/node")
    with pytest.raises(sl.export.ExportError, match="soft link"):
        sl.export.from_nir(path)


def _graph():
    pytest.importorskip("nir")
    model = sl.nn.SpikingSequential(nn.Linear(4, 3), sl.LIF(0.9), input_shape=(4,))
    return sl.export.to_nir(model)


@pytest.mark.parametrize(
    ("node", "field", "value", "message"),
    [
        ("0", "bias", np.zeros(1, np.float32), "bias has shape \\(1,\\), expected \\(3,\\)"),
        ("0", "weight", np.full((3, 4), np.nan, np.float32), "weight holds NaN or Inf"),
        ("0", "bias", np.array([0, np.inf, 0], np.float32), "bias holds NaN or Inf"),
        ("0", "weight", np.ones(3, np.float32), "weight has shape \\(3,\\)"),
        ("1", "tau", np.zeros(3), "tau must be > 0"),
        ("1", "tau", np.full(3, np.inf), "tau holds NaN or Inf"),
        ("1", "v_threshold", np.full(3, np.nan), "v_threshold holds NaN or Inf"),
        ("1", "r", np.full(3, np.inf), "r holds NaN or Inf"),
        ("input", "input_type", {}, "malformed NIR graph: KeyError"),
        ("input", "input_type", {"input": np.array([-4])}, "input shape must be >= 1"),
    ],
)
def test_malformed_nir_graphs_raise_export_error(node, field, value, message):
    graph = _graph()
    setattr(graph.nodes[node], field, value)
    with pytest.raises(sl.export.ExportError, match=message):
        sl.export.from_nir(graph)


def test_malformed_nir_edges_and_metadata_raise_export_error():
    graph = _graph()
    graph.edges = [("input", "0", "extra")]
    with pytest.raises(sl.export.ExportError):
        sl.export.from_nir(graph)
    graph = _graph()
    graph.nodes["1"].metadata = {**graph.nodes["1"].metadata, "dt": 0.0}
    with pytest.raises(sl.export.ExportError, match="dt must be > 0"):
        sl.export.from_nir(graph)
