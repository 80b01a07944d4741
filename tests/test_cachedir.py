"""frugalnn.cachedir: every cache honours the same variables, in one order."""
from pathlib import Path

from frugalnn import cachedir


def test_precedence(monkeypatch, tmp_path):
    for var in ("FRUGALNN_CACHE_DIR", "FRUGALNN_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cachedir.root() == tmp_path / "home" / ".cache" / "frugalnn"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cachedir.root() == tmp_path / "xdg" / "frugalnn"
    monkeypatch.setenv("FRUGALNN_CACHE", str(tmp_path / "old-name"))
    assert cachedir.root() == tmp_path / "old-name"
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", "~/mine")
    assert cachedir.root() == tmp_path / "home" / "mine"


def test_every_cache_lives_under_the_root(monkeypatch, tmp_path):
    from frugalnn.data.speech import default_cache_dir
    from frugalnn.delta import video
    from frugalnn.llm import quant_rows, race_files
    from frugalnn.odl import tune as odl_tune
    from frugalnn.tmac import tune as lut_tune

    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    for path in (race_files.cache_dir(), quant_rows.cache_dir(), video.cache_dir(), odl_tune.cache_path(),
                 lut_tune.cache_path(), default_cache_dir("x")):
        assert Path(path).is_relative_to(tmp_path), path
