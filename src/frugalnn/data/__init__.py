"""Offline data and model files. Nothing here downloads: a loader whose files are absent raises
MissingDataError naming the exact command that installs them."""
from frugalnn.data.packages import MissingDataError, minilm_dir, smollm2_gguf

__all__ = ["MissingDataError", "minilm_dir", "smollm2_gguf"]
