"""Bring your own data, model and device (issue 12): user datasets and loaders, snnTorch and norse models
through the Trainer, FromLoss, device selection, constant-input hoisting, plots and load_model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import spikelfp as sl
from spikelfp import userdata
from spikelfp.cli import main
from spikelfp.train import CheckpointError, Config, Trainer

BETA = 0.75  # exactly representable: snnTorch keeps β as a float32 buffer


def images(n=48, seed=0, size=6, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 3, (n,), generator=g)
    y[:3] = torch.arange(3)  # every class present
    return (x if dtype == torch.uint8 else x.to(dtype) / 255), y


def ann(seed=0, size=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 16), nn.ReLU(), nn.Linear(16, 3))


def ann_config(**kw):
    base = dict(model="mlp", method="lfp-epsilon", epochs=2, batch_size=8, standardize=False, optimizer="sgd")
    base.setdefault("device", "cpu")  # the references are on the CPU; test_trainer_on_an_explicit_device covers auto
    base.update(kw)
    return Config(**base)


def params(model):
    return [p.detach().clone() for p in model.parameters()]


# --------------------------------------------------------------------------------------------------
# 1 data
# --------------------------------------------------------------------------------------------------
def test_uint8_is_scaled_and_float_is_taken_as_it_is():
    x8, y = images()
    xf = x8.double() / 255  # the reference: scaling by hand, in float64
    for data, want in [(TensorDataset(x8, y), xf), (TensorDataset(xf.float(), y), xf)]:
        got = torch.cat([b for b, _ in userdata.wrap(data).batches(10)])
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-7)
    # the bug: float images in an ImageSet were divided by 255 a second time
    s = sl.data.ImageSet(xf.float(), y, (0.0,), (1.0,))
    batch = next(s.batches(len(y), standardize=False))[0]
    torch.testing.assert_close(batch.double(), xf, rtol=0, atol=1e-7)


def test_rate_encoding_refuses_floats_outside_unit_range(tmp_path):
    x, y = images(dtype=torch.float32)
    data = TensorDataset(x * 3.0, y)  # e.g. standardised or 0..255 floats
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(2), nn.Linear(36, 3), sl.LIF(0.9))
    trainer = Trainer(
        Config(method="lfp-epsilon", encoding="rate", steps=3, batch_size=8, device="cpu"),
        tmp_path,
        model=model,
        train_set=data,
        test_set=data,
        progress=False,
    )
    with pytest.raises(ValueError, match=r"rate encoding needs inputs in \[0, 1\]"):
        trainer.fit()


def test_dataset_gives_the_same_run_as_the_builtin_set(tmp_path):
    """A TensorDataset goes through the same order, scaling and batching as an ImageSet of the same images."""
    x, y = images()
    builtin = sl.data.ImageSet(x, y, (0.0,), (1.0,))
    runs = []
    for k, data in enumerate([builtin, TensorDataset(x, y)]):
        trainer = Trainer(ann_config(), tmp_path / str(k), model=ann(), train_set=data, test_set=data, progress=False)
        trainer.fit()
        runs.append((params(trainer.model), trainer.history))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert torch.equal(a, b)
    assert [h["train_accuracy"] for h in runs[0][1]] == [h["train_accuracy"] for h in runs[1][1]]


def test_dataset_shards_cover_the_epoch_like_distributed_sampler():
    x, y = images(n=10)
    y = torch.arange(10)  # labels name the samples
    data = userdata.wrap(TensorDataset(x, y))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    padded = order + order[:2]  # DistributedSampler's rule: pad by wrapping around to a multiple of 3
    for r in range(3):
        got = torch.cat([b for _, b in data.batches(2, True, torch.Generator().manual_seed(3), shard=(r, 3))])
        assert got.tolist() == padded[r::3]


@pytest.mark.parametrize("resume_at", [3, 9])
def test_dataloader_with_generator_resumes_exactly(tmp_path, resume_at):
    x, y = images()

    def loader():
        return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator())

    config = ann_config(checkpoint_every=2)
    full = Trainer(config, tmp_path / "full", model=ann(), train_set=loader(), test_set=loader(), progress=False)
    full.fit()
    crashing = Trainer(config, tmp_path / "crash", model=ann(), train_set=loader(), test_set=loader(), progress=False)
    original = crashing.train_step

    def train_step(xb, yb):
        if crashing.global_step == resume_at:
            raise RuntimeError("simulated crash")
        return original(xb, yb)

    crashing.train_step = train_step
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit()
    resumed = Trainer(config, tmp_path / "crash", model=ann(), train_set=loader(), test_set=loader(), progress=False)
    resumed.load_checkpoint(tmp_path / "crash")
    resumed.fit()
    for a, b in zip(params(resumed.model), params(full.model)):
        assert torch.equal(a, b)


def test_dataloader_limit_and_batches():
    x, y = images(n=20)
    loader = userdata.wrap(DataLoader(TensorDataset(x, y), batch_size=8))
    assert loader.num_batches(8) == 3
    small = loader.subset(11)
    got = [b for _, b in small.batches()]
    assert [len(b) for b in got] == [8, 3] and small.num_batches(8) == 2
    assert torch.equal(torch.cat(got), y[:11])
    assert [len(b) for _, b in loader.batches(start=2)] == [4]


def test_tonic_style_events_are_binned_by_tonic(tmp_path):
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(0)
    dtype = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])

    class Events(torch.utils.data.Dataset):
        sensor_size = (5, 4, 2)

        def __init__(self):
            self.samples = []
            for _ in range(4):
                ev = np.zeros(30, dtype=dtype)
                ev["x"], ev["y"] = rng.integers(0, 5, 30), rng.integers(0, 4, 30)
                ev["t"], ev["p"] = np.sort(rng.integers(0, 1000, 30)), rng.integers(0, 2, 30)
                self.samples.append(ev)

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            return self.samples[i], i % 2

    data = Events()
    wrapped = userdata.wrap(data, steps=3)
    x, y = next(wrapped.batches(4))
    assert wrapped.time_first and x.shape == (3, 4, 2, 4, 5)
    for i in range(4):
        want = tonic.transforms.ToFrame(sensor_size=data.sensor_size, n_time_bins=3)(data.samples[i])
        assert torch.equal(x[:, i], torch.from_numpy(want).float())
    assert y.tolist() == [0, 1, 0, 1]
    # through the Trainer: the frames are the time axis (no encoding on top), in training and testing
    model = nn.Sequential(nn.Flatten(2), nn.Linear(40, 3), sl.LIF(0.9))
    trainer = Trainer(
        Config(steps=3, batch_size=2, device="cpu"),
        tmp_path,
        model=model,
        train_set=data,
        test_set=Events(),
        progress=False,
    )
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    trainer.fit()
    assert {s[:1] + s[2:] for s in seen} == {(3, 2, 4, 5)} and (3, 4, 2, 4, 5) in seen  # train, test batches


def test_not_a_dataset_is_named():
    with pytest.raises(TypeError, match="cannot train on a int"):
        userdata.wrap(5)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(3), 0

    with pytest.raises(TypeError, match="wrap an iterable dataset in a torch.utils.data.DataLoader"):
        userdata.wrap(Stream())


def write_folder(root, x, y):
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:03d}.png")


def test_image_folder_and_npz_load_the_pixels(tmp_path):
    pytest.importorskip("PIL")
    x, y = images(n=12)
    write_folder(tmp_path / "imgs", x, y)
    s = userdata.load(str(tmp_path / "imgs"))
    order = sorted(range(12), key=lambda i: (int(y[i]), i))  # class folders, then file names
    assert torch.equal(s.images, x[order]) and torch.equal(s.labels, y[order])
    np.savez(tmp_path / "d.npz", x=x[:, 0].numpy(), y=y.numpy(), x_test=x[:4].numpy(), y_test=y[:4].numpy())
    train, test = userdata.load(str(tmp_path / "d.npz")), userdata.load(str(tmp_path / "d.npz"), train=False)
    assert torch.equal(train.images, x) and torch.equal(test.labels, y[:4])
    torch.testing.assert_close(torch.tensor(train.mean, dtype=torch.float64), (x.double() / 255).mean().reshape(1))
    np.savez(tmp_path / "bad.npz", images=x.numpy())
    with pytest.raises(sl.data.DataError, match="lacks the array"):
        userdata.load(str(tmp_path / "bad.npz"))


def test_cli_trains_on_a_folder_and_an_npz(tmp_path, capsys):
    pytest.importorskip("PIL")
    x, y = images(n=24, size=8)
    write_folder(tmp_path / "imgs" / "train", x[:16], y[:16])
    write_folder(tmp_path / "imgs" / "test", x[16:], y[16:])
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    for dataset in [tmp_path / "imgs", tmp_path / "d.npz"]:
        out = tmp_path / ("run-" + dataset.name)
        args = ["train", "--model", "mlp", "--dataset", str(dataset), "--batch-size", "8", "--device", "cpu"]
        assert main([*args, "--out", str(out), "--no-progress"]) == 0
        assert "test accuracy:" in capsys.readouterr().out
        model = sl.train.load_model(out)
        assert model[-1].out_features == 3  # three classes found
    assert main(["train", "--dataset", str(tmp_path / "missing"), "--no-progress"]) == 2  # argparse's error
    assert "neither a dataset name" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# 2 models from other libraries
# --------------------------------------------------------------------------------------------------
def spiking_data(n=16, features=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, features, generator=g), torch.randint(0, 3, (n,), generator=g))


def linears(seed=0):
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(5, 8), nn.Linear(8, 3)
    with torch.no_grad():
        fc1.weight.mul_(4)
        fc2.weight.mul_(3)
    return fc1, fc2


def one_step(model, tmp_path, name, **kw):
    """The parameters after one Trainer step (SGD, lr 1: the update itself), and the trainer."""
    data = spiking_data()
    kw.setdefault("device", "cpu")
    config = Config(
        method="lfp-epsilon", steps=6, batch_size=16, optimizer="sgd", lr=1.0, momentum=0.0, normalize="none", clip=0
    )
    trainer = Trainer(config, tmp_path / name, model=model, train_set=data, test_set=data, progress=False, **kw)
    x, y = next(trainer.train_set.batches(16))
    before = params(trainer.model)
    trainer.train_step(x, y)
    return [a - b for a, b in zip(params(trainer.model), before)], trainer


def reference_update(tmp_path, reset="subtract"):
    fc1, fc2 = linears()
    net = nn.Sequential(fc1, sl.LIF(BETA, 1.0, reset), fc2, sl.LIF(BETA, 1.0, reset))
    return one_step(net, tmp_path, "ref")[0]


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_snntorch_init_hidden_model_trains_through_the_trainer(tmp_path, reset):
    snn = pytest.importorskip("snntorch")
    fc1, fc2 = linears()
    net = nn.Sequential(
        fc1,
        snn.Leaky(beta=BETA, reset_mechanism=reset, init_hidden=True),
        fc2,
        snn.Leaky(beta=BETA, reset_mechanism=reset, init_hidden=True, output=True),
    )
    assert sl.models.is_spiking(net) and sl.models.time_loop(net) == "trainer"
    got, trainer = one_step(net, tmp_path, "snn")
    want = reference_update(tmp_path, reset)
    assert any(w.abs().sum() > 0 for w in want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    # state is reset between batches: a second identical batch gives the same output
    x, _ = next(trainer.train_set.batches(4))
    with torch.no_grad():
        first, second = trainer.runner(trainer.encode(x)), trainer.runner(trainer.encode(x))
    assert torch.equal(first, second)
    metrics = trainer.evaluate()
    assert set(metrics["firing_rates"]) == {"1", "3"}


@pytest.mark.parametrize("init_hidden", [True, False])
def test_step_neuron_models_train_with_the_default_config(tmp_path, init_hidden):
    """snnTorch neurons run one step per call: the spiking default max-normalisation (which the engine refuses
    per step) is dropped unless asked for, so the default Trainer trains them."""
    snn = pytest.importorskip("snntorch")
    fc1, fc2 = linears()
    if init_hidden:
        net = nn.Sequential(fc1, snn.Leaky(beta=BETA, init_hidden=True), fc2, snn.Leaky(beta=BETA, init_hidden=True))
    else:

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2, self.lif1, self.lif2 = fc1, fc2, snn.Leaky(beta=BETA), snn.Leaky(beta=BETA)

            def forward(self, x):
                m1, m2, out = self.lif1.init_leaky(), self.lif2.init_leaky(), []
                for t in range(x.shape[0]):
                    s1, m1 = self.lif1(self.fc1(x[t]), m1)
                    out.append(self.lif2(self.fc2(s1), m2)[0])
                return torch.stack(out)

        net = Net()
    data = spiking_data()
    default = Config(steps=6, batch_size=16)
    trainer = Trainer(default, tmp_path, model=net, train_set=data, test_set=data, progress=False)
    assert trainer.config.normalize == "none"
    assert trainer.fit()["epoch"] == 1
    asked = Config(steps=6, batch_size=16, normalize="max-batch")
    trainer = Trainer(asked, tmp_path / "asked", model=net, train_set=data, test_set=data, progress=False)
    with pytest.raises(ValueError, match="step"):
        trainer.fit()


def test_snntorch_model_with_its_own_time_loop(tmp_path):
    snn = pytest.importorskip("snntorch")

    class Net(nn.Module):  # snnTorch's tutorial style: init_hidden=False, membranes carried in forward
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = linears()
            self.lif1, self.lif2 = snn.Leaky(beta=BETA), snn.Leaky(beta=BETA)

        def forward(self, x):
            m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            out = []
            for t in range(x.shape[0]):
                s1, m1 = self.lif1(self.fc1(x[t]), m1)
                s2, m2 = self.lif2(self.fc2(s1), m2)
                out.append(s2)
            return torch.stack(out)

    net = Net()
    assert sl.models.is_spiking(net) and sl.models.time_loop(net) == "model"
    got, _ = one_step(net, tmp_path, "snn")
    for g, w in zip(got, reference_update(tmp_path)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_norse_sequential_state_trains_through_the_trainer(tmp_path):
    pytest.importorskip("norse")
    from norse.torch import LIFBoxCell, SequentialState
    from norse.torch.functional.lif_box import LIFBoxParameters

    fc1, fc2 = linears(1)
    with torch.no_grad():
        fc1.weight.mul_(5)
        fc2.weight.mul_(7)
        fc1.bias.add_(5)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(250.0), v_th=torch.tensor(1.0))
    net = SequentialState(fc1, LIFBoxCell(p, dt=0.001), fc2, LIFBoxCell(p, dt=0.001))
    ref = copy.deepcopy(net)
    assert sl.models.is_spiking(net) and sl.models.time_loop(net) == "trainer-state"
    got, trainer = one_step(net, tmp_path, "norse")
    # reference: the user's own step loop under sl.LFP (checked against sl.LIF in test_interop.py)
    x, y = next(trainer.train_set.batches(16))
    xs = sl.encode.constant(x, 6)
    with sl.LFP(ref, "epsilon") as lfp:
        state, outs = None, []
        for t in range(6):
            o, state = ref(xs[t], state)
            outs.append(o)
        out = torch.stack(outs)
    assert out.sum() > 0
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    for g, p_ in zip(got, ref.parameters()):
        torch.testing.assert_close(g, -p_.grad, rtol=1e-5, atol=1e-6)


def test_user_forward_function(tmp_path):
    fc1, fc2 = linears()
    net = nn.ModuleDict({"fc1": fc1, "lif1": sl.LIF(BETA), "fc2": fc2, "lif2": sl.LIF(BETA)})

    def forward(m, x):
        return m["lif2"](m["fc2"](m["lif1"](m["fc1"](x))))

    got, _ = one_step(net, tmp_path, "fn", forward=forward)
    for g, w in zip(got, reference_update(tmp_path)):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_from_loss_is_minus_the_loss_gradient():
    torch.manual_seed(0)
    out = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 2])
    fb = sl.feedback.FromLoss(nn.CrossEntropyLoss(reduction="sum"))(out, y)
    o = out.detach()
    want = torch.eye(3, dtype=torch.float64)[y] - torch.exp(o) / torch.exp(o).sum(1, keepdim=True)  # −∂CE/∂o
    torch.testing.assert_close(fb, want, rtol=1e-12, atol=1e-12)
    assert out.grad is None  # nothing flowed into the model's graph
    with pytest.raises(ValueError, match="scalar"):
        sl.feedback.FromLoss(nn.CrossEntropyLoss(reduction="none"))(o, y)


def test_from_loss_with_snntorch_ce_rate_loss(tmp_path):
    pytest.importorskip("snntorch")
    import snntorch.functional as SF

    torch.manual_seed(1)
    spikes = (torch.rand(5, 4, 3) > 0.5).float()
    y = torch.tensor([0, 1, 2, 1])
    fb = sl.feedback.FromLoss(SF.ce_rate_loss())(spikes, y)
    s = spikes.double()
    want = (torch.eye(3, dtype=torch.float64)[y] - torch.softmax(s, -1)) / (5 * 4)  # mean over B, then over T
    torch.testing.assert_close(fb.double(), want, rtol=1e-6, atol=1e-7)
    # and as the Trainer's feedback for an snnTorch-free spiking model
    fc1, fc2 = linears()
    net = nn.Sequential(fc1, sl.LIF(BETA), fc2, sl.LIF(BETA))
    got, trainer = one_step(net, tmp_path, "loss", feedback=sl.feedback.FromLoss(SF.ce_rate_loss()))
    assert isinstance(trainer.feedback_fn, sl.feedback.FromLoss)
    assert all(torch.isfinite(g).all() for g in got)


# --------------------------------------------------------------------------------------------------
# 3 device
# --------------------------------------------------------------------------------------------------
def test_device_names(monkeypatch):
    assert sl.device.resolve("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert sl.device.resolve("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            sl.device.resolve("cuda:0")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        sl.device.resolve("gpu")
    # under torchrun on a 2-GPU machine each rank takes its local GPU, with NCCL
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    for name in ["cuda", "auto"]:
        assert sl.device.resolve(name) == torch.device("cuda", 1)
    assert sl.device.backend_for(sl.device.resolve("auto")) == "nccl"
    assert sl.device.backend_for(sl.device.resolve("cpu")) == "gloo"
    with pytest.raises(ValueError, match="2 CUDA device"):
        sl.device.resolve("cuda:2")


def test_trainer_on_an_explicit_device(tmp_path, capsys):
    x, y = images()
    data = TensorDataset(x, y)
    trainer = Trainer(ann_config(epochs=1), tmp_path, model=ann(), train_set=data, test_set=data, device="cpu")
    assert trainer.device == torch.device("cpu") and trainer.config.device == "cpu"
    trainer.fit()
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())
    # auto: the GPU where there is one (this part exercises the CUDA path when the suite runs on a GPU)
    auto = Trainer(ann_config(epochs=1, device="auto"), tmp_path / "auto", model=ann(), train_set=data, test_set=data)
    want = sl.device.resolve("auto")
    metrics = auto.fit()
    assert auto.device == want and all(p.device == want for p in auto.model.parameters())
    assert 0 <= metrics["test_accuracy"] <= 1
    saved = torch.load(tmp_path / "auto" / "model.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in saved["model"].values())  # model.pt loads anywhere
    ckpt = Trainer(ann_config(epochs=2, device="cpu"), tmp_path / "auto", model=ann(), train_set=data, test_set=data)
    ckpt.load_checkpoint(tmp_path / "auto")  # resumes on the CPU whatever device wrote it
    assert ckpt.epoch == 1
    args = ["train", "--model", "mlp", "--limit-train", "64", "--limit-test", "32", "--out", str(tmp_path / "r")]
    assert main([*args, "--device", "nonsense", "--no-progress"]) == 2
    assert "unknown device 'nonsense'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# 4 constant-input hoisting
# --------------------------------------------------------------------------------------------------
def updates(net, x, y, composite, normalize=None):
    net.zero_grad(set_to_none=True)
    lfp = sl.LFP(net, composite, normalize=normalize)
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    return out, [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
@pytest.mark.parametrize("normalize", [None, "max-batch"])
def test_hoisting_in_a_plain_sequential_is_exact(composite, normalize):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(2), nn.Linear(16, 12), sl.LIF(0.8), nn.Linear(12, 3), sl.LIF(0.8))
    with torch.no_grad():
        net[1].weight.mul_(3)
    images_, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    constant = sl.encode.constant(images_, 7)
    shapes = []
    hook = net[1].register_forward_hook(lambda m, i, o: shapes.append(o.stride(0)))
    out, got = updates(net, constant, y, composite, normalize)
    hook.remove()
    assert shapes == [0]  # the first Linear computed one step and expanded it
    ref_out, want = updates(net, constant.contiguous(), y, composite, normalize)  # materialised: no hoisting
    assert torch.equal(out, ref_out) and out.sum() > 0
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_hoisting_in_a_user_module_keeps_the_input_feedback_exact(composite):
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif, self.out = nn.Linear(6, 10), sl.LIF(0.9), nn.Linear(10, 3)
            self.lif2 = sl.LIF(0.9)

        def forward(self, x):  # x: (B, 6), repeated over 5 steps inside the model
            return self.lif2(self.out(self.lif(self.fc(x.unsqueeze(0).expand(5, *x.shape)))))

    torch.manual_seed(2)
    net = Mine()
    with torch.no_grad():
        net.fc.weight.mul_(4)
        net.out.weight.mul_(6)
        net.out.bias.fill_(0.5)
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    lfp = sl.LFP(net, composite)
    net.zero_grad(set_to_none=True)
    strides = []
    hook = net.fc.register_forward_hook(lambda m, i, o: strides.append(o.stride(0)))
    with lfp:  # the model takes (B, F) and makes its time axis itself
        out = net(xa)
    hook.remove()
    assert strides == [0]  # hoisted, although the input requires grad (its feedback stays exact)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    got = [p.grad.clone() for p in net.parameters()]
    # reference: the same model with the expansion materialised (contiguous), so nothing hoists
    net.zero_grad(set_to_none=True)
    with lfp:
        ref = net.lif2(net.out(net.lif(net.fc(xb.unsqueeze(0).expand(5, *xb.shape).contiguous()))))
    lfp.backward(ref, sl.feedback.SpikeSequence()(ref, y))
    assert torch.equal(out, ref) and out.sum() > 0
    for g, p in zip(got, net.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-6)
    assert xa.grad.abs().sum() > 0


@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_hoisting_a_convolution_is_exact(composite):
    torch.manual_seed(3)
    conv = nn.Conv1d(2, 4, 3)
    x = torch.rand(1, 2, 9).expand(6, 2, 9)  # one input repeated along the batched axis
    r = torch.randn(6, 4, 7)  # a different feedback for every repeat
    got = []
    for inp in (x, x.contiguous()):
        conv.zero_grad(set_to_none=True)
        lfp = sl.LFP(conv, composite)
        out = lfp(inp)
        assert (out.stride(0) == 0) == (inp is x)  # hoisted only for the stride-0 input
        lfp.backward(out, r)
        got.append([p.grad.clone() for p in conv.parameters()])
    for g, w in zip(*got):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


def test_no_hoisting_where_the_per_step_input_feedback_is_read():
    torch.manual_seed(0)
    fc = nn.Linear(4, 3)
    leaf = torch.rand(1, 2, 4).expand(5, 2, 4).detach().requires_grad_(True)  # a stride-0 leaf
    run = sl.LFP(fc, "epsilon").run
    assert not sl.lfp.rules._hoistable(leaf, sl.layers.op_for(fc)[0], run)
    assert sl.lfp.rules._hoistable(leaf.detach(), sl.layers.op_for(fc)[0], run)
    lfp = sl.LFP(fc, "epsilon")
    out = lfp(leaf)
    lfp.backward(out, torch.ones_like(out))
    assert leaf.grad.shape == (5, 2, 4)
    torch.testing.assert_close(leaf.grad[0], leaf.grad[4])  # every step got its own (equal) feedback


# --------------------------------------------------------------------------------------------------
# 5 conveniences
# --------------------------------------------------------------------------------------------------
def test_load_model_restores_weights_and_neurons(tmp_path):
    x, y = images(n=16, size=28)
    data = TensorDataset(x, y)
    config = Config(
        model="snn-mlp", steps=3, batch_size=8, epochs=1, beta=0.8, threshold=0.7, reset="zero", device="cpu"
    )
    trainer = Trainer(config, tmp_path, train_set=data, test_set=data, progress=False)
    changed = trainer.model[2]  # a layer changed after building
    changed.beta, changed.threshold, changed.reset = 0.6, 0.5, "subtract"
    trainer.fit()
    model = sl.train.load_model(tmp_path)
    lifs = [m for m in model.modules() if isinstance(m, sl.LIF)]
    assert [(m.beta, m.threshold, m.reset) for m in lifs] == [
        (0.6, 0.5, "subtract"),
        (0.8, 0.7, "zero"),
        (0.8, 0.7, "zero"),
    ]
    for a, b in zip(params(model), params(trainer.model)):
        assert torch.equal(a, b)
    xs = sl.encode.constant(x[:4].float() / 255, 3)
    assert torch.equal(model(xs), trainer.model.eval()(xs))
    with pytest.raises(CheckpointError, match="no model.pt"):
        sl.train.load_model(tmp_path / "nothing")
    # a user's own model: load_model needs a fresh instance, and fills it
    mine = Trainer(
        ann_config(epochs=1), tmp_path / "mine", model=ann(size=28), train_set=data, test_set=data, progress=False
    )
    mine.fit()
    with pytest.raises(CheckpointError, match="pass model="):
        sl.train.load_model(tmp_path / "mine")
    loaded = sl.train.load_model(tmp_path / "mine", model=ann(seed=5, size=28))
    for a, b in zip(params(loaded), params(mine.model)):
        assert torch.equal(a, b)


def test_plots_show_the_spikes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    spikes = (torch.rand(20, 7) > 0.7).float()
    ax = sl.plot.raster(spikes)
    points = sorted(map(tuple, np.asarray(ax.collections[0].get_offsets()).tolist()))
    assert points == sorted(map(tuple, torch.nonzero(spikes).double().tolist()))  # x = step, y = neuron
    ax = sl.plot.firing_rates({"1": 0.25, "3": 0.5})
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.25, 0.5]
    ax = sl.plot.firing_rates(spikes.unsqueeze(1))
    torch.testing.assert_close(torch.tensor([p.get_height() for p in ax.patches]), spikes.mean(0).double())
    with pytest.raises(ValueError, match="spikes"):
        sl.plot.raster(torch.rand(2, 3, 4, 5, 6))


# --------------------------------------------------------------------------------------------------
# DDP: a user's dataset and an snnTorch step model under 2 gloo processes
# --------------------------------------------------------------------------------------------------
def snntorch_net():
    snn = pytest.importorskip("snntorch")
    fc1, fc2 = linears()
    return nn.Sequential(
        fc1, snn.Leaky(beta=BETA, init_hidden=True), fc2, snn.Leaky(beta=BETA, init_hidden=True, output=True)
    )


def ddp_config(batch):
    return Config(
        method="lfp-epsilon", steps=4, batch_size=batch, epochs=1, normalize="none", clip=0, lr=1e-2, device="cpu"
    )


def ddp_worker(rank, init_file, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        data = spiking_data(n=32)
        trainer = Trainer(
            ddp_config(4),
            out_dir,
            model=snntorch_net(),
            train_set=data,
            test_set=data,
            progress=False,
            rank=rank,
            world_size=2,
        )
        trainer.fit()
        torch.save([p.detach() for p in trainer.model.parameters()], f"{out_dir}/rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_with_a_user_dataset_and_an_snntorch_model_equals_one_process(tmp_path):
    pytest.importorskip("snntorch")
    import torch.multiprocessing as mp

    mp.spawn(ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    data = spiking_data(n=32)
    one = Trainer(ddp_config(8), tmp_path / "one", model=snntorch_net(), train_set=data, test_set=data, progress=False)
    one.fit()  # one process with the union of the ranks' batches (summed updates: sum_updates)
    for p0, p1, want in zip(*ranks, one.model.parameters()):
        assert torch.equal(p0, p1)
        torch.testing.assert_close(p0, want.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(ranks[0][0], linears()[0].weight.detach())  # training moved them
