"""What a training run shows and keeps: a JSON-lines log (one object per event, appended, so a resumed
run continues the same file) and a rich progress bar. Both exist on rank 0 only."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path


def _jsonable(v):
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class JsonLog:
    def __init__(self, path, enabled: bool = True):
        self.path = Path(path) if path is not None and enabled else None
        self._f = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")

    def write(self, event: str, **fields) -> dict:
        record = {"event": event, "time": round(time.time(), 3), **{k: _jsonable(v) for k, v in fields.items()}}
        if self._f is not None:
            self._f.write(json.dumps(record) + "\n")
            self._f.flush()  # a killed run keeps every line written before the kill
        return record

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_log(path) -> list[dict]:
    """The events of a JSON-lines log; a last line cut by a kill mid-write is skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class ProgressBar:
    """A rich progress bar over optimizer steps, or nothing (disabled, or not rank 0)."""

    def __init__(self, total: int, start: int, enabled: bool, description: str = "train"):
        self._bar = self._task = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=False)
        self._task = self._bar.add_task(description, total=total, completed=start, status="")
        self._bar.start()

    def update(self, step: int, status: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, status=status)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
