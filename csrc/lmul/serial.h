// L-Mul (Luo & Sun 2024): a float32 product approximated by one integer addition on the bit
// patterns. The portable reference; avx2.h computes the same bits eight lanes at a time and
// frugalnn/kernels/lmul_ref.py is the numpy twin of this file.
//
// One product, on float32 bit patterns x, y (m = mantissa bits kept, l = offset exponent):
//   1. operand preparation (prepare_operand): NaN -> canonical quiet NaN 0x7FC00000; zero and
//      subnormal -> signed zero (denormals are zero); a normal value keeps m mantissa bits,
//      truncated or rounded to nearest with ties to even (a carry may reach the exponent, up to
//      inf). inf stays inf.
//   2. combination (combine) of the prepared operands, sign = sign(x) xor sign(y):
//        NaN operand, or 0 * inf            -> 0x7FC00000 (canonical NaN, positive)
//        zero operand                       -> signed zero
//        inf operand                        -> signed inf
//        otherwise d = |x| + |y| - OFFSET,  OFFSET = (127 << 23) - (1 << (23 - l))
//          d <  0x00800000 (underflow)      -> signed zero (results are never subnormal)
//          d >= 0x7F800000 (overflow)       -> signed inf (as an IEEE multiplication would)
//          else                             -> sign | d
//   The addition adds the exponents, adds the mantissas and the 2^-l term, and lets a mantissa
//   carry flow into the exponent by itself (the paper's formula (1 + xm + ym + 2^-l) * 2^(xe+ye)
//   without that carry renormalisation).
//
// Matmul: C[i, j] = sum over k of combine(A[i, k], B[k, j]) in float32, accumulated in one fixed
// order for every output: acc = -0.0, then acc = acc + p_k for k = 0, 1, ..., K-1 (so the sum
// starts exactly at p_0, signed zeros included); K = 0 gives +0.0. A NaN result is written as
// the canonical 0x7FC00000 (an inf - inf generated mid-sum would otherwise carry x86's negative
// default NaN). Threads split outputs, never a sum, so results do not depend on `threads`.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lmul/serial.h
#pragma once

#include <cstdint>
#include <cstring>

namespace frugalnn {
namespace lmul {

constexpr uint32_t kAbs = 0x7FFFFFFFu, kSign = 0x80000000u, kInf = 0x7F800000u, kQNaN = 0x7FC00000u;
constexpr uint32_t kMinNormal = 0x00800000u;

// The paper's l(m): l = m for m <= 3, 3 for m = 4, 4 for m > 4.
inline int paper_offset(int mantissa_bits) {
  return mantissa_bits <= 3 ? mantissa_bits : (mantissa_bits == 4 ? 3 : 4);
}

struct Params {
  int drop;             // 23 - m: mantissa bits removed from each operand
  bool nearest;         // round to nearest even (else truncate)
  uint32_t keep;        // mask of the surviving bits
  uint32_t half_m1;     // 2^(drop-1) - 1, for round to nearest even
  uint32_t offset;      // (127 << 23) - (1 << (23 - l))

  Params(int mantissa_bits, bool round_nearest, int offset_l)
      : drop(23 - mantissa_bits),
        nearest(round_nearest && mantissa_bits < 23),
        keep(~((1u << (23 - mantissa_bits)) - 1u)),
        half_m1(23 - mantissa_bits > 0 ? (1u << (22 - mantissa_bits)) - 1u : 0u),
        offset((127u << 23) - (1u << (23 - offset_l))) {}
};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace serial {

// Step 1: NaN -> canonical, zero/subnormal -> signed zero, normal -> m mantissa bits.
inline uint32_t prepare_operand(uint32_t bits, const Params& p) {
  const uint32_t a = bits & kAbs, s = bits & kSign;
  if (a > kInf) return kQNaN;
  if (a < kMinNormal) return s;
  if (a == kInf) return bits;
  uint32_t r = a;
  if (p.nearest) r += p.half_m1 + ((r >> p.drop) & 1u);  // finite a <= 0x7F7FFFFF: no 32-bit overflow
  return s | (r & p.keep);
}

// Step 2 on prepared operands.
inline uint32_t combine(uint32_t x, uint32_t y, const Params& p) {
  const uint32_t ax = x & kAbs, ay = y & kAbs, s = (x ^ y) & kSign;
  if (ax > kInf || ay > kInf) return kQNaN;
  const bool zero = ax == 0 || ay == 0, inf = ax == kInf || ay == kInf;
  if (zero) return inf ? kQNaN : s;
  if (inf) return s | kInf;
  const int64_t d = static_cast<int64_t>(ax) + ay - p.offset;
  if (d < static_cast<int64_t>(kMinNormal)) return s;
  if (d >= static_cast<int64_t>(kInf)) return s | kInf;
  return s | static_cast<uint32_t>(d);
}

inline uint32_t lmul_bits(uint32_t x, uint32_t y, const Params& p) {
  return combine(prepare_operand(x, p), prepare_operand(y, p), p);
}

inline void elementwise(const float* a, const float* b, float* out, int64_t n, const Params& p) {
  for (int64_t i = 0; i < n; ++i) out[i] = bits_float(lmul_bits(float_bits(a[i]), float_bits(b[i]), p));
}

}  // namespace serial
}  // namespace lmul
}  // namespace frugalnn
