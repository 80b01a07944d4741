"""frugalnn: cheaper neural networks, measured against their papers.

Heavy parts (torch, the experiments) load on first use, so `import frugalnn` stays light.
"""
__version__ = "0.1.0"


def convert_(model, config, filter_fn=None):
    """Swap a model's modules in place according to a technique's config (see frugalnn.convert)."""
    from frugalnn.convert import convert_ as _convert

    return _convert(model, config, filter_fn)


__all__ = ["__version__", "convert_"]
