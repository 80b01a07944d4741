"""Our own compact Llama on GGUF weights, its linear layers on the T-MAC kernels.

    from frugalnn import llm as llama
    model = llama.load("smollm2", bits="fp32")          # or a path to any Llama-architecture .gguf
    tok = llama.load_tokenizer(model.source)
    ids = llama.encode_prompt(tok, "The capital of Japan is", chat=True)
    new_ids, stats = llama.generate(model, ids, max_new_tokens=16)
    print(tok.decode(new_ids), stats.summary())
    print(llama.model_perplexity(model, tok, quick=True).perplexity)

LUT-weight layers are `frugalnn.tmac.LUTLinear`, the same module `convert_(model, LUTConfig(...))`
puts in any model; float32 layers are `DenseLinear` (an nn.Linear). Decode steps run on a compiled
one-token decoder that reads those layers (fast.py); `experiment.py` is `frugalnn report --only llm`,
`bench.py` is `frugalnn bench llm`.

Attention modules are `LlamaAttention` and call F.scaled_dot_product_attention for every step,
decode included, so `frugalnn.routing.route_` can swap the attention arithmetic.
"""
from frugalnn.llm.generate import GenerationStats, Sampling, Session, generate, sample, time_linears
from frugalnn.llm.gguf_file import GGUFModelFile, LlamaConfig
from frugalnn.llm.layers import DenseLinear, LlamaAttention, StackedLinear
from frugalnn.llm.load import BITS, load, parse_bits, resolve_model_path
from frugalnn.llm.model import Llama
from frugalnn.llm.perplexity import model_perplexity, perplexity, reference_text, reference_tokens
from frugalnn.llm.tokenizer import encode_prompt, load_tokenizer

__all__ = ["BITS", "DenseLinear", "GGUFModelFile", "GenerationStats", "Llama", "LlamaAttention", "LlamaConfig",
           "Sampling", "Session", "StackedLinear", "encode_prompt", "generate", "load", "load_tokenizer",
           "model_perplexity", "parse_bits", "perplexity", "reference_text", "reference_tokens", "resolve_model_path",
           "sample", "time_linears"]
