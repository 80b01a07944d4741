"""Memories: an on-chip buffer (capacity, energy per word read/written) and DRAM (bandwidth, energy
per byte). A mapping counts its own traffic; these turn the counts into seconds and picojoules."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    capacity_bytes: int
    word_bytes: int
    read_pj_per_word: float
    write_pj_per_word: float

    def __post_init__(self):
        if self.capacity_bytes < 1 or self.word_bytes < 1:
            raise ValueError(f"Buffer: expected capacity_bytes >= 1 and word_bytes >= 1, got "
                             f"{self.capacity_bytes}, {self.word_bytes}")

    def energy(self, read_words: float, write_words: float) -> float:
        return read_words * self.read_pj_per_word + write_words * self.write_pj_per_word


@dataclass(frozen=True)
class DRAM:
    bytes_per_s: float
    pj_per_byte: float

    def __post_init__(self):
        if self.bytes_per_s <= 0 or self.pj_per_byte < 0:
            raise ValueError(f"DRAM: expected bytes_per_s > 0 and pj_per_byte >= 0, got {self.bytes_per_s}, "
                             f"{self.pj_per_byte}")

    def seconds(self, nbytes: float) -> float:
        return nbytes / self.bytes_per_s

    def energy(self, nbytes: float) -> float:
        return nbytes * self.pj_per_byte
