"""The LLM experiment's verdict rules (each can fail) and its quiet loading of the oracle."""
import os

from frugalnn.llm.experiment import oracle_verdict, perplexity_gap_verdict, quiet_transformers
from frugalnn.report.verdicts import NOT_REPRODUCED, REPRODUCED


def test_oracle_rule_fails_beyond_float32_noise():
    assert oracle_verdict(1.3e-6)["verdict"] == REPRODUCED
    failed = oracle_verdict(3e-3)
    assert failed["verdict"] == NOT_REPRODUCED and "0.0001" in failed["rule"]


def test_perplexity_gap_rule_fails_either_way():
    assert perplexity_gap_verdict(0.22)["verdict"] == REPRODUCED and "|gap|" in perplexity_gap_verdict(0.22)["rule"]
    assert perplexity_gap_verdict(1.4)["verdict"] == NOT_REPRODUCED
    assert perplexity_gap_verdict(-1.4)["verdict"] == NOT_REPRODUCED  # better than the oracle by 1.4%: a bug too


def test_third_party_progress_bars_are_hidden_then_restored():
    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    before = (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity(),
              os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"))
    with quiet_transformers():
        bar = tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...")  # as transformers' loader makes it
        assert bar.disable and not hf_logging.is_progress_bar_enabled()
        bar.close()
    after = tqdm(range(3))
    assert not after.disable
    after.close()
    assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity(),
            os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")) == before
