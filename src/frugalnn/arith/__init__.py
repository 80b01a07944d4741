"""Pure functions on arrays: approximate arithmetic (L-Mul, shift-and-add, ...)."""
from frugalnn.arith.lmul import ROUNDINGS, lmul, lmul_matmul, paper_offset

__all__ = ["ROUNDINGS", "lmul", "lmul_matmul", "paper_offset"]
