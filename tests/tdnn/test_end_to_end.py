"""A tiny corpus end to end: synthesis from the Debian packages, features, progressive shrinking through
frugalnn.train, subnet evaluation, search, and the report experiments on tiny sizes."""
import random

import numpy as np
import pytest
import torch

from frugalnn.data.speech import build_corpus, sources
from frugalnn.report import Context
from frugalnn.tdnn import experiment
from frugalnn.tdnn.config import SupernetConfig
from frugalnn.tdnn.data import build_speaker_data, make_trials, split_speakers
from frugalnn.tdnn.evaluate import evaluate_subnet
from frugalnn.tdnn.search import Encoder, Predictor, evolve, pareto
from frugalnn.tdnn.train import Schedule, train_supernet
from frugalnn.threads import torch_threads

TINY = dict(utts=3, max_formant=6, engines=("asterisk", "flite", "espeak-ng"), channels=32, cat=96, steps=8,
            batch=16, n_fit=5, n_held=3, budgets=2, population=8, generations=2, lut_checks=2, compile_found=0, calib=1, lut_fill=False)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # 2 OpenMP threads on the shared 2-core machine run far slower
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    corpus = build_corpus(tmp_path_factory.mktemp("corpus"), 3, max_formant=6, engines=TINY["engines"])
    return corpus, build_speaker_data(corpus)


def test_sources_know_what_is_real():
    srcs = sources(max_formant=3)
    real = {s.speaker for s in srcs if s.kind == "real"}
    assert real == {"allison", "june", "carlo", "ivrvoiceru"}  # Allison records en and es: one speaker
    assert {s.speaker for s in srcs if s.engine == "flite"} >= {"kal", "awb", "rms", "slt"}
    assert sum(s.kind == "formant" for s in srcs) == 3


def test_corpus_split_and_trials(tiny):
    corpus, data = tiny
    assert corpus.counts() == {"real": 4, "donor": 4, "formant": 6}
    parts = split_speakers(corpus.speakers)
    assert not set(parts["train"]) & set(parts["test"]) and not set(parts["dev"]) & set(parts["test"])
    assert set(data.classes) == set(parts["train"])
    assert data.composition["test"]["real"] == 2 and data.composition["train"]["real"] == 2
    trials = data.test.trials
    assert np.array_equal(trials, make_trials(data.test.speakers, seed=2))  # deterministic
    spk = data.test.speakers
    assert all((spk[i] == spk[j]) == bool(t) for i, j, t in trials)
    assert data.train_x.shape[1:] == (80, 200) and data.test.x.shape[1:] == (80, 400)
    again = build_speaker_data(corpus)  # from the cache
    assert torch.equal(again.train_x, data.train_x)


def test_progressive_shrinking_and_search(tiny):
    _, data = tiny
    config = SupernetConfig(channels=32, cat=48)
    net, results = train_supernet(data, config, Schedule(8, 16), seed=0)
    assert list(results) == ["largest", "kernel", "depth", "width"]
    assert sum(r.steps for r in results.values()) == 8
    cfgs = [config.sample(random.Random(i)) for i in range(4)]
    eers = [evaluate_subnet(net, c, data, "dev", 1)["eer"] for c in cfgs]
    assert all(0 <= e <= 100 for e in eers)
    pred = Predictor.fit(Encoder(config), cfgs, eers, epochs=20)
    from frugalnn.tdnn.cost import analytic_macs

    budget = analytic_macs(config.largest()) / 2
    best, _ = evolve(config, pred.predict, lambda c: analytic_macs(c) <= budget, population=8, generations=2)
    assert analytic_macs(best) <= budget
    assert pareto([(1, 5), (2, 4), (3, 6), (0.5, 9)]) == [3, 0, 1]


def test_report_experiments_on_tiny_sizes(monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGALNN_CACHE", str(tmp_path))
    monkeypatch.setattr(experiment, "QUICK", TINY)
    experiment._trained.cache_clear()
    ctx = Context(quick=True, threads=1)
    sub = experiment.tdnn_subnets(ctx)
    assert any("EER minus" in r.metric for r in sub.rows) and len(sub.tables) == 2
    search = experiment.tdnn_search(ctx)
    names = [r.metric for r in search.rows]
    assert any("Kendall tau" in n for n in names) and any("latency LUT" in n for n in names)
    assert any("search under latency" in n for n in names) and any("search under params" in n for n in names)
    assert search.figures and search.figures[0].png[:4] == b"\x89PNG"
    experiment._trained.cache_clear()
