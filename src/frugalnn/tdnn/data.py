"""From the speech corpus to tensors: a speaker-disjoint split, fbank crops for training, fixed-length
crops for evaluation, and deterministic trial lists.

Split (by kind, every speaker in exactly one part): real speakers alternate train / test (there are only
four); donor and formant speakers go 1 in 4 (donor) or 1 in 5 (formant) to test, as many to dev, the rest
to train. dev trials (speakers unseen in training, never in test) are what the search and the accuracy
predictor see; test trials are looked at once per reported model.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from frugalnn.data.speech import Corpus, Utterance
from frugalnn.tdnn.augment import KINDS as AUG_KINDS, augment
from frugalnn.tdnn.features import fbank
from frugalnn.threads import torch_threads

PERIOD = {"real": 2, "donor": 4, "formant": 5}


def split_speakers(speakers: dict[str, str]) -> dict[str, list[str]]:
    """speaker -> kind  =>  {"train": [...], "dev": [...], "test": [...]} (deterministic)."""
    parts = {"train": [], "dev": [], "test": []}
    for kind, period in PERIOD.items():
        names = sorted(s for s, k in speakers.items() if k == kind)
        for i, s in enumerate(names):
            r = i % period
            part = "test" if r == 1 else "dev" if (r == 3 and kind != "real") else "train"
            parts[part].append(s)
    return parts


def make_trials(speaker_of: list[str], nontargets_per_utt: int = 10, seed: int = 0) -> np.ndarray:
    """All same-speaker pairs, plus `nontargets_per_utt` different-speaker partners per utterance drawn
    with a fixed seed; rows (i, j, target) with i < j, sorted, no duplicates."""
    n = len(speaker_of)
    rows = {(i, j, 1) for i in range(n) for j in range(i + 1, n) if speaker_of[i] == speaker_of[j]}
    rng = np.random.default_rng(seed)
    for i in range(n):
        others = [j for j in range(n) if speaker_of[j] != speaker_of[i]]
        for j in rng.choice(others, size=min(nontargets_per_utt, len(others)), replace=False):
            rows.add((min(i, int(j)), max(i, int(j)), 0))
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, 3)


def _crops(feat: torch.Tensor, length: int, count: int) -> list[torch.Tensor]:
    t = feat.shape[1]
    if t < length:  # wrap a short utterance around (repeat it)
        feat = feat.repeat(1, (length + t - 1) // t)[:, :length]
        return [feat]
    starts = np.linspace(0, t - length, num=min(count, max(1, t // length))).astype(int)
    return [feat[:, s:s + length] for s in starts]


@dataclass
class TrialSet:
    x: torch.Tensor           # (n, 80, frames): one fixed crop per utterance
    speakers: list[str]
    trials: np.ndarray        # (m, 3): i, j, target


@dataclass
class SpeakerData:
    train_x: torch.Tensor     # (n, 80, crop_frames)
    train_y: torch.Tensor     # (n,) int64 class of the training speaker
    classes: list[str]
    dev: TrialSet
    test: TrialSet
    composition: dict = field(default_factory=dict)   # part -> {"real": n, "donor": n, "formant": n}

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def calibration_batches(self, n: int = 4, batch: int = 64, seed: int = 0) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.train_y), generator=g)[: n * batch]
        return [self.train_x[idx[i:i + batch]] for i in range(0, len(idx), batch)]


def _trial_set(corpus: Corpus, utts: list[Utterance], frames: int, seed: int) -> TrialSet:
    xs = []
    for u in utts:
        f = fbank(corpus.load(u))
        t = f.shape[1]
        start = max(0, (t - frames) // 2)  # centre crop (or wrap if short)
        xs.append(_crops(f[:, start:], frames, 1)[0])
    speakers = [u.speaker for u in utts]
    return TrialSet(torch.stack(xs), speakers, make_trials(speakers, seed=seed))


def build_speaker_data(corpus: Corpus, crop_frames: int = 200, crops_per_utt: int = 3, aug_copies: int = 2,
                       eval_frames: int = 400, seed: int = 0, cache: bool = True) -> SpeakerData:
    """Features for the corpus, cached next to it (keyed by every argument and the utterance list)."""
    key = json.dumps([crop_frames, crops_per_utt, aug_copies, eval_frames, seed,
                      [u.path for u in corpus.utterances]]).encode()
    path = corpus.root / f"features-{hashlib.sha1(key).hexdigest()[:12]}.pt"
    with torch_threads(1):  # many small STFTs: one thread is ~40x faster than a contended pool here
        return _build(corpus, crop_frames, crops_per_utt, aug_copies, eval_frames, seed, cache, path)


def _build(corpus, crop_frames, crops_per_utt, aug_copies, eval_frames, seed, cache, path) -> SpeakerData:
    if cache and path.is_file():
        d = torch.load(path, weights_only=False)
        return SpeakerData(d["train_x"], d["train_y"], d["classes"], TrialSet(**d["dev"]), TrialSet(**d["test"]),
                           d["composition"])
    parts = split_speakers(corpus.speakers)
    kinds = corpus.speakers
    composition = {p: corpus.counts(names) for p, names in parts.items()}
    classes = parts["train"]
    label = {s: i for i, s in enumerate(classes)}
    train_utts = [u for u in corpus.utterances if u.speaker in label]
    rng = np.random.default_rng(seed)
    waves = [corpus.load(u) for u in train_utts]
    xs, ys = [], []
    for k, (u, w) in enumerate(zip(train_utts, waves)):
        versions = [w]
        for a in range(aug_copies):
            kind = AUG_KINDS[(k + a) % len(AUG_KINDS)]
            babble = [waves[j] for j in rng.choice(len(waves), size=5, replace=False) if train_utts[j].speaker != u.speaker]
            versions.append(augment(w, rng, kind, babble))
        for v in versions:
            for c in _crops(fbank(v), crop_frames, crops_per_utt):
                xs.append(c)
                ys.append(label[u.speaker])
    by_part = {p: [u for u in corpus.utterances if u.speaker in set(parts[p])] for p in ("dev", "test")}
    data = SpeakerData(torch.stack(xs).contiguous(), torch.tensor(ys, dtype=torch.int64), classes,
                       _trial_set(corpus, by_part["dev"], eval_frames, seed + 1),
                       _trial_set(corpus, by_part["test"], eval_frames, seed + 2), composition)
    assert not set(kinds) - set(sum(parts.values(), []))
    if cache:
        torch.save({"train_x": data.train_x, "train_y": data.train_y, "classes": classes,
                    "dev": vars(data.dev), "test": vars(data.test), "composition": composition}, path)
    return data
