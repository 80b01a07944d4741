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
// The blocked matmul (driver.h) runs on packed panels, whose format is defined below with the
// portable micro-kernels (serial::Ops) that read them.
//
// Role: serial (portable reference kernels, and the packed-panel format both backends share).
// Checked against: frugalnn/kernels/lmul_ref.py, its numpy twin, bit for bit (uint32 patterns)
// on every mantissa width, both roundings, edge values and odd shapes, and against the paper's
// formula (tests/kernels/test_lmul_kernel.py under the serial backend).
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

// ---- The packed panels of the blocked matmul (driver.h), written and read by both backends ----
// Operands are prepared once (prepare_operand) and packed:
//   A -> tiles of kMR rows:   xa[tile][k][r]   = x_side,   kxa[tile][k][r]
//   B -> strips of kNR cols:  yb[strip][k][c]  = y_side,   kyb[strip][k][c]
// The "sides" are chosen so that one 32-bit add of x_side + y_side yields the product's bits,
// sign included (the two sign bits add modulo 2^32 into their xor), when the exponent sum
// cannot leave the normal range:
//   x_side = bits(x),  y_side = bits(y) - OFFSET   (nonzero operands)
// Zero operands get keep = 0x80000000 (else all ones) and x_side = sign + OFFSET, y_side = sign:
// then (x_side + y_side) & keep is exactly the signed zero of the product (the magnitude part of
// the sum stays below 2^31, so bit 31 is the xor of the signs). Per (tile or strip, K panel) the
// packer records PanelStats, from which driver.h picks the fast or the general micro-kernel.
constexpr int kMR = 6;         // rows per micro-tile (6 x 2 AVX2 accumulators = 12 registers)
constexpr int kNR = 16;        // columns per strip (two 8-lane vectors)
constexpr int64_t kKC = 256;   // K panel: a 16 x 256 strip of B (16 KiB) stays in L1

struct PanelStats {
  uint32_t lo = 0xFFFFFFFFu, hi = 0;  // magnitude bits of nonzero finite operands
  bool zero = false, special = false;

  void add(uint32_t prepared) {
    uint32_t a = prepared & kAbs;
    if (a == 0) {
      zero = true;
    } else if (a >= kInf) {
      special = true;
    } else {
      lo = a < lo ? a : lo;
      hi = a > hi ? a : hi;
    }
  }
};

// x_side / y_side / keep of one prepared operand (see above).
inline void side_of(uint32_t prepared, bool y_side, const Params& p, uint32_t* side, uint32_t* keep) {
  if ((prepared & kAbs) == 0) {
    *keep = kSign;
    *side = y_side ? prepared : prepared + p.offset;
  } else {
    *keep = ~0u;
    *side = y_side ? prepared - p.offset : prepared;
  }
}

// Inverse of side_of: the prepared operand, for the general micro-kernel.
inline uint32_t x_prepared(uint32_t side, uint32_t keep, const Params& p) { return side - (p.offset & ~keep & kAbs); }
inline uint32_t y_prepared(uint32_t side, uint32_t keep, const Params& p) { return side + (p.offset & keep); }

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

// Portable micro-kernels (the serial backend) for the blocked matmul in driver.h: plain loops in the
// same per-output k order. The operations and their meaning are listed in driver.h (pack_task,
// "Micro-kernel table").
struct Ops {
  static void prepare_run(const uint32_t* src, int64_t count, bool y_side, const Params& p, uint32_t* side,
                          uint32_t* keep, int64_t step, PanelStats& stats) {
    PanelStats st = stats;
    for (int64_t i = 0; i < count; ++i) {
      const uint32_t v = prepare_operand(src[i], p);
      st.add(v);
      side_of(v, y_side, p, side + i * step, keep + i * step);
    }
    stats = st;
  }

  static void prepare_columns(const uint32_t* src, int64_t ld, int64_t cols, int64_t count, const Params& p,
                              uint32_t* side, uint32_t* keep, PanelStats& stats) {
    for (int64_t c = 0; c < cols; ++c) prepare_run(src + c * ld, count, true, p, side + c, keep + c, kNR, stats);
  }

  // y sides of `rows` rows of B (row r at src + r * ld, `cols` <= 16 values) into side[r * 16 + c].
  static void prepare_rows(const uint32_t* src, int64_t ld, int64_t rows, int64_t cols, const Params& p,
                           uint32_t* side, uint32_t* keep, PanelStats& stats) {
    for (int64_t r = 0; r < rows; ++r) prepare_run(src + r * ld, cols, true, p, side + r * kNR, keep + r * kNR, 1, stats);
  }

  template <int MR, bool ZX, bool ZY>
  static void fast(const uint32_t* xa, const uint32_t* kxa, const uint32_t* yb, const uint32_t* kyb, int64_t kc,
                   float* c, int64_t ldc) {
    float acc[MR][kNR];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < kNR; ++j) acc[r][j] = c[r * ldc + j];
    for (int64_t kk = 0; kk < kc; ++kk) {
      const uint32_t* y = yb + kk * kNR;
      const uint32_t* ky = kyb + kk * kNR;
      for (int r = 0; r < MR; ++r) {
        const uint32_t x = xa[kk * kMR + r], kx = ZX ? kxa[kk * kMR + r] : ~0u;
        for (int j = 0; j < kNR; ++j) {
          uint32_t v = x + y[j];
          if (ZX) v &= kx;
          if (ZY) v &= ky[j];
          acc[r][j] += bits_float(v);
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < kNR; ++j) c[r * ldc + j] = acc[r][j];
  }

  template <int MR>
  static void general(const uint32_t* xa, const uint32_t* kxa, const uint32_t* yb, const uint32_t* kyb, int64_t kc,
                      float* c, int64_t ldc, const Params& p) {
    for (int64_t kk = 0; kk < kc; ++kk)
      for (int r = 0; r < MR; ++r) {
        const uint32_t x = x_prepared(xa[kk * kMR + r], kxa[kk * kMR + r], p);
        for (int j = 0; j < kNR; ++j) {
          const uint32_t y = y_prepared(yb[kk * kNR + j], kyb[kk * kNR + j], p);
          c[r * ldc + j] += bits_float(combine(x, y, p));
        }
      }
  }
};

}  // namespace serial
}  // namespace lmul
}  // namespace frugalnn
