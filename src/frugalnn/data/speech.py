"""A multi-speaker speech corpus built offline from Debian packages, cached on disk (16 kHz mono).

Speakers, by what their audio is (the report states the counts):
- "real": recorded human prompts, asterisk-core-sounds-*-wav. One speaker per package language, except that
  Allison records both en_US and es_MX: she is one speaker. Files are real prompts, 8 kHz telephone audio.
- "donor": a synthesizer voice built from one real person's recordings (festival diphone/clunits/HTS voices,
  flite's cmu voices), rendering our text. The same donor heard through flite and festival (kal, slt) is
  one speaker.
- "formant": espeak-ng variants (pure formant synthesis; a variant sets pitch, formants and breathiness).
Text: sentences from CPython's pydoc_data topics (always present). Nothing is downloaded.

    corpus = build_corpus(cache_dir, utts_per_speaker=6)   # synthesizes what is missing, then loads
    corpus.speakers, corpus.utterances                     # Utterance(speaker, kind, source, path)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from frugalnn import cachedir
from frugalnn.data.packages import MissingDataError

SR = 16000
ASTERISK = Path("/usr/share/asterisk/sounds")
INSTALL = ("apt-get install flite espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts "
           "festvox-italp16k festvox-itapc16k festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-ru "
           "festvox-ca-ona-hts asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav "
           "asterisk-core-sounds-ru-wav asterisk-core-sounds-es-wav  (as root; scripts/setup.sh does it)")
# festival voice -> donor speaker (the person whose recordings the voice was built from)
FESTIVAL = {"kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt", "lp_diphone": "it-lp",
            "pc_diphone": "it-pc", "czech_dita": "cz-dita", "czech_krb": "cz-krb", "czech_machac": "cz-machac",
            "msu_ru_nsh_clunits": "ru-nsh", "upc_ca_ona_hts": "ca-ona"}
FLITE = {"kal": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
KINDS = ("real", "donor", "formant")


@dataclass(frozen=True)
class Source:
    speaker: str
    kind: str       # one of KINDS
    engine: str     # asterisk | flite | festival | espeak-ng
    voice: str      # the engine's voice name, or the asterisk directory


@dataclass(frozen=True)
class Utterance:
    speaker: str
    kind: str
    source: str     # "engine:voice"
    path: str       # 16 kHz mono int16 wav


@dataclass
class Corpus:
    root: Path
    utterances: list[Utterance]

    @property
    def speakers(self) -> dict[str, str]:
        """speaker -> kind, sorted by name."""
        return dict(sorted({u.speaker: u.kind for u in self.utterances}.items()))

    def counts(self, speakers=None) -> dict[str, int]:
        spk = self.speakers if speakers is None else {s: self.speakers[s] for s in speakers}
        return {k: sum(1 for v in spk.values() if v == k) for k in KINDS}

    def load(self, u: Utterance) -> np.ndarray:
        from scipy.io import wavfile

        sr, x = wavfile.read(self.root / u.path)
        return x.astype(np.float32) / 32768.0


def _have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def espeak_variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5]
    return sorted(set(names), key=str.lower)


def sources(max_formant: int | None = None) -> list[Source]:
    """Every speaker source installed here, in a fixed order; MissingDataError names the apt command."""
    missing = [c for c in ("flite", "espeak-ng", "text2wave") if not _have(c)]
    if missing or not ASTERISK.is_dir():
        raise MissingDataError(f"the speech corpus needs {missing or ['asterisk-core-sounds']}; install: {INSTALL}")
    out = []
    for d in sorted(ASTERISK.iterdir()):
        parts = d.name.split("_")  # en_US_f_Allison
        if d.is_dir() and len(parts) >= 4 and any(d.glob("*.wav")):
            out.append(Source(parts[-1].lower(), "real", "asterisk", d.name))
    for voice, spk in FLITE.items():
        out.append(Source(spk, "donor", "flite", voice))
    for voice, spk in FESTIVAL.items():
        lang_dir = list(Path("/usr/share/festival/voices").glob(f"*/{voice}"))
        if lang_dir:
            out.append(Source(spk, "donor", "festival", voice))
    variants = espeak_variants()
    if max_formant is not None:
        variants = variants[:max_formant]
    out += [Source(f"espeak-{v.lower()}", "formant", "espeak-ng", f"en+{v}") for v in variants]
    return out


def sentences(n: int | None = None) -> list[str]:
    """Plain ASCII sentences of 6-24 words from pydoc_data's topics, deduplicated, in a fixed order."""
    from pydoc_data.topics import topics

    seen, out = set(), []
    for key in sorted(topics):
        text = re.sub(r"\s+", " ", topics[key])
        for s in re.split(r"(?<=[.!?])\s+", text):
            words = s.split()
            if 6 <= len(words) <= 24 and s.isascii() and re.fullmatch(r"[A-Za-z ,.;'()-]+", s) and s not in seen:
                seen.add(s)
                out.append(s)
    return out if n is None else out[:n]


def _to_16k(x: np.ndarray, sr: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    if x.ndim > 1:
        x = x.mean(axis=1)
    x = x.astype(np.float32)
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x


def _read(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    sr, x = wavfile.read(path)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    return _to_16k(np.asarray(x, dtype=np.float32), sr)


def _synth(src: Source, text: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        if src.engine == "flite":
            cmd = ["flite", "-voice", src.voice, "-t", text, "-o", str(raw)]
        elif src.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", src.voice, "-w", str(raw), text]
        elif src.engine == "festival":
            (Path(tmp) / "t.txt").write_text(text)
            cmd = ["text2wave", "-eval", f"(voice_{src.voice})", "-o", str(raw), str(Path(tmp) / "t.txt")]
        else:
            raise ValueError(f"engine: unknown {src.engine!r}")
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        _write(out, _read(raw))


def _write(path: Path, x: np.ndarray) -> None:
    from scipy.io import wavfile

    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(x).max()) or 1.0
    tmp = path.with_suffix(".tmp.wav")
    wavfile.write(tmp, SR, (np.clip(x / peak * 0.9, -1, 1) * 32767).astype(np.int16))
    os.replace(tmp, path)  # atomic: an interrupted build never leaves a half file


def _asterisk_files(src: Source, n: int) -> list[Path]:
    """n prompts spread evenly over the sorted list of clips of at least 1.2 s."""
    files = sorted((ASTERISK / src.voice).glob("*.wav"))
    long = [f for f in files if f.stat().st_size >= 44 + int(1.2 * 8000 * 2)]
    if len(long) < n:
        long = files
    step = max(1, len(long) // n)
    return long[::step][:n]


ENGINES = ("asterisk", "flite", "festival", "espeak-ng")


def build_corpus(cache_dir, utts_per_speaker: int = 6, max_formant: int | None = None, workers: int = 2,
                 engines=ENGINES, progress=None) -> Corpus:
    """Synthesize (or reuse from `cache_dir`) `utts_per_speaker` utterances for every speaker.

    Sentences are dealt out in order, one per utterance, so speakers share no sentence until the ~490
    sentences run out (then the deal wraps around). A speaker with two sources (a real speaker recorded in
    two languages, a donor voiced by flite and festival) alternates between them. `engines` limits the
    sources (the tests use the fast ones)."""
    if not isinstance(utts_per_speaker, int) or utts_per_speaker < 2:
        raise ValueError(f"utts_per_speaker: expected an int >= 2, got {utts_per_speaker!r}")
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise ValueError(f"engines: expected some of {ENGINES}, got {tuple(engines)}")
    srcs = [s for s in sources(max_formant) if s.engine in engines]
    root = Path(cache_dir)
    text = sentences()
    by_speaker: dict[str, list[Source]] = {}
    for s in srcs:
        by_speaker.setdefault(s.speaker, []).append(s)
    jobs, utts = [], []
    for si, (spk, ss) in enumerate(sorted(by_speaker.items())):
        for i in range(utts_per_speaker):
            src = ss[i % len(ss)]
            path = Path("audio") / spk / f"{i:03d}_{src.engine}.wav"
            utts.append(Utterance(spk, src.kind, f"{src.engine}:{src.voice}", str(path)))
            if src.engine == "asterisk":
                clips = _asterisk_files(src, utts_per_speaker)
                jobs.append((src, clips[(i // len(ss)) % len(clips)], root / path))
            else:
                jobs.append((src, text[(si * utts_per_speaker + i) % len(text)], root / path))
    todo = [j for j in jobs if not j[2].is_file()]
    done, lock = [0], threading.Lock()

    def run(job):
        src, what, out = job
        if src.engine == "asterisk":
            _write(out, _read(what))
        else:
            _synth(src, what, out)
        with lock:
            done[0] += 1
            if progress:
                progress(done[0], len(todo))

    with ThreadPoolExecutor(max(1, workers)) as ex:
        list(ex.map(run, todo))
    (root / "manifest.json").write_text(json.dumps([asdict(u) for u in utts], indent=0))
    return Corpus(root, utts)


def default_cache_dir(tag: str) -> Path:
    base = cachedir.root()
    return base / "tdnn-corpus" / hashlib.sha1(tag.encode()).hexdigest()[:10]
