"""Offline data and model files. Nothing here downloads: a loader whose files are absent raises
MissingDataError naming the exact command that installs them."""
from frugalnn.data.images import ImageData, fashion_mnist, image_classification, mnist_5k
from frugalnn.data.packages import MissingDataError, minilm_dir, smollm2_gguf

__all__ = ["ImageData", "MissingDataError", "fashion_mnist", "image_classification", "minilm_dir", "mnist_5k",
           "smollm2_gguf"]
