"""Pure functions on arrays: approximate arithmetic (L-Mul, shift-and-add, ...)."""
