// Size arithmetic on dimensions a caller passed as plain integers (a head count, a row count, a
// group size). Why: such a product can wrap int64, and the wrapped value then passes the shape
// check against a small real array, so the kernel reads or writes far out of bounds (issue 19:
// `llama.Decoder` with n_heads = 2^62 segfaulted; with rope_dim = 0 it looped for minutes).
// Products of a real array's own dimensions need no check (numpy and torch refuse shapes whose
// size overflows); every product that involves a caller's integer goes through here, once, in the
// binding, before anything is allocated or read.
//
// Overflow throws std::length_error, which nanobind raises in Python as ValueError.
//
// Role: common (no nanobind, no kernels). Checked by tests/kernels/test_sizes.py.
//
// compile check: g++ -std=c++17 -fsyntax-only -I csrc csrc/common/checked.h
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace frugalnn {

// a * b for sizes a, b >= 0, or std::length_error naming `what` and both factors.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw std::length_error(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                            " is not a valid size (negative, or beyond int64)");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
    throw std::length_error(std::string(what) + ": " + std::to_string(a) + " + " + std::to_string(b) +
                            " is not a valid size (negative, or beyond int64)");
  return r;
}

// The product of all factors (each >= 0), checked at every step.
inline int64_t checked_product(std::initializer_list<int64_t> factors, const char* what) {
  int64_t r = 1;
  for (int64_t f : factors) r = checked_mul(r, f, what);
  return r;
}

}  // namespace frugalnn
