// L-Mul, AVX2 variant: the rules of serial.h eight lanes at a time, and the matmul micro-kernels
// for the driver in driver.h. Same bits as the serial reference (integer logic, and the float
// additions happen in the same order per output).
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/lmul_ref.py bit for
// bit, as serial.h is, and the fast micro-kernels against the every-rule ones (force_general)
// (tests/kernels/test_lmul_kernel.py under the avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lmul/avx2.h
#pragma once

#include "common/cpu.h"
#include "lmul/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace lmul {
namespace avx2 {

// Exponent checks run on t = |x| + |y| - OFFSET - 2^30, which fits a signed 32-bit lane for
// every pair of finite normal operands (|x| + |y| - OFFSET spans less than 2^32 but more than 2^31).
constexpr int32_t kBias = 0x40000000;
constexpr int32_t kUnderT = static_cast<int32_t>(kMinNormal) - kBias;  // t <  this: underflow
constexpr int32_t kOverT = static_cast<int32_t>(kInf) - kBias;         // t >= this: overflow

FRUGALNN_AVX2 inline __m256i splat(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }

// serial::prepare_operand on eight lanes.
FRUGALNN_AVX2 inline __m256i prepare(__m256i bits, const Params& p) {
  const __m256i a = _mm256_and_si256(bits, splat(kAbs)), s = _mm256_and_si256(bits, splat(kSign));
  const __m256i nan = _mm256_cmpgt_epi32(a, splat(kInf));
  const __m256i zero = _mm256_cmpgt_epi32(splat(kMinNormal), a);
  __m256i r = a;
  if (p.nearest) {
    __m256i lsb = _mm256_and_si256(_mm256_srl_epi32(a, _mm_cvtsi32_si128(p.drop)), splat(1));
    r = _mm256_add_epi32(r, _mm256_add_epi32(splat(p.half_m1), lsb));
  }
  r = _mm256_or_si256(_mm256_and_si256(r, splat(p.keep)), s);  // inf stays inf: its low bits are 0
  r = _mm256_blendv_epi8(r, s, zero);
  return _mm256_blendv_epi8(r, splat(kQNaN), nan);
}

// serial::combine on eight lanes of prepared operands.
FRUGALNN_AVX2 inline __m256i combine(__m256i x, __m256i y, const Params& p) {
  const __m256i abs = splat(kAbs), inf_bits = splat(kInf), zero_v = _mm256_setzero_si256();
  const __m256i ax = _mm256_and_si256(x, abs), ay = _mm256_and_si256(y, abs);
  const __m256i s = _mm256_and_si256(_mm256_xor_si256(x, y), splat(kSign));
  const __m256i nan = _mm256_or_si256(_mm256_cmpgt_epi32(ax, inf_bits), _mm256_cmpgt_epi32(ay, inf_bits));
  const __m256i zero = _mm256_or_si256(_mm256_cmpeq_epi32(ax, zero_v), _mm256_cmpeq_epi32(ay, zero_v));
  const __m256i inf = _mm256_or_si256(_mm256_cmpeq_epi32(ax, inf_bits), _mm256_cmpeq_epi32(ay, inf_bits));
  const __m256i t = _mm256_sub_epi32(_mm256_add_epi32(ax, ay), splat(p.offset + static_cast<uint32_t>(kBias)));
  const __m256i under = _mm256_cmpgt_epi32(_mm256_set1_epi32(kUnderT), t);
  const __m256i over = _mm256_cmpgt_epi32(t, _mm256_set1_epi32(kOverT - 1));
  __m256i mag = _mm256_andnot_si256(under, _mm256_add_epi32(t, _mm256_set1_epi32(kBias)));
  mag = _mm256_blendv_epi8(mag, inf_bits, _mm256_or_si256(over, inf));
  mag = _mm256_andnot_si256(zero, mag);
  const __m256i bad = _mm256_or_si256(nan, _mm256_and_si256(zero, inf));
  return _mm256_blendv_epi8(_mm256_or_si256(mag, s), splat(kQNaN), bad);
}

FRUGALNN_AVX2 inline void elementwise(const float* a, const float* b, float* out, int64_t n, const Params& p) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i x = prepare(_mm256_castps_si256(_mm256_loadu_ps(a + i)), p);
    __m256i y = prepare(_mm256_castps_si256(_mm256_loadu_ps(b + i)), p);
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(combine(x, y, p)));
  }
  if (i < n) serial::elementwise(a + i, b + i, out + i, n - i, p);
}

// Running magnitude statistics of prepared operands (serial.h PanelStats), 8 lanes per step:
// min / max of the nonzero finite magnitudes, and whether any lane was zero or inf/NaN. Kept in
// registers across a panel and folded into PanelStats once.
struct LaneStats {
  __m256i lo, hi, zeros, specials;
};

FRUGALNN_AVX2 inline void lane_stats_reset(LaneStats& s) {
  s.lo = _mm256_set1_epi32(-1);
  s.hi = s.zeros = s.specials = _mm256_setzero_si256();
}

// Adds the prepared operands v; returns the mask of their zero lanes (the caller's keep mask).
FRUGALNN_AVX2 inline __m256i lane_stats_add(LaneStats& s, __m256i v) {
  const __m256i a = _mm256_and_si256(v, splat(kAbs));
  const __m256i z = _mm256_cmpeq_epi32(a, _mm256_setzero_si256()), sp = _mm256_cmpgt_epi32(a, splat(kInf - 1));
  const __m256i invalid = _mm256_or_si256(z, sp);
  s.lo = _mm256_min_epu32(s.lo, _mm256_or_si256(a, invalid));
  s.hi = _mm256_max_epu32(s.hi, _mm256_andnot_si256(invalid, a));
  s.zeros = _mm256_or_si256(s.zeros, z);
  s.specials = _mm256_or_si256(s.specials, sp);
  return z;
}

FRUGALNN_AVX2 inline void lane_stats_fold(const LaneStats& s, PanelStats& stats) {
  alignas(32) uint32_t l8[8], h8[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l8), s.lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(h8), s.hi);
  for (int j = 0; j < 8; ++j) {
    stats.lo = l8[j] < stats.lo ? l8[j] : stats.lo;
    stats.hi = h8[j] > stats.hi ? h8[j] : stats.hi;
  }
  stats.zero = stats.zero || !_mm256_testz_si256(s.zeros, s.zeros);
  stats.special = stats.special || !_mm256_testz_si256(s.specials, s.specials);
}

struct Ops {
  // serial::Ops::prepare_run, eight operands at a time.
  FRUGALNN_AVX2 static void prepare_run(const uint32_t* src, int64_t count, bool y_side, const Params& p,
                                        uint32_t* side, uint32_t* keep, int64_t step, PanelStats& stats) {
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i off = splat(p.offset), sign = splat(kSign);
    LaneStats ls;
    lane_stats_reset(ls);
    alignas(32) uint32_t sv[8], kv[8];
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
      const __m256i r = prepare(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)), p);
      const __m256i z = lane_stats_add(ls, r);
      const __m256i kp = _mm256_or_si256(_mm256_andnot_si256(z, ones), sign);
      const __m256i sd = y_side ? _mm256_sub_epi32(r, _mm256_andnot_si256(z, off))
                                : _mm256_add_epi32(r, _mm256_and_si256(z, off));
      if (step == 1) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(side + i), sd);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(keep + i), kp);
      } else {
        _mm256_store_si256(reinterpret_cast<__m256i*>(sv), sd);
        _mm256_store_si256(reinterpret_cast<__m256i*>(kv), kp);
        for (int j = 0; j < 8; ++j) {
          side[(i + j) * step] = sv[j];
          keep[(i + j) * step] = kv[j];
        }
      }
    }
    if (i > 0) lane_stats_fold(ls, stats);
    if (i < count) serial::Ops::prepare_run(src + i, count - i, y_side, p, side + i * step, keep + i * step, step, stats);
  }

  // serial::Ops::prepare_columns: 8 rows x 8 k at a time, prepared, then transposed in
  // registers so the strip is written with whole-vector stores.
  FRUGALNN_AVX2 static void prepare_columns(const uint32_t* src, int64_t ld, int64_t cols, int64_t count,
                                            const Params& p, uint32_t* side, uint32_t* keep, PanelStats& stats) {
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i off = splat(p.offset), sign = splat(kSign);
    LaneStats ls;
    lane_stats_reset(ls);
    int64_t c0 = 0, k8 = count & ~int64_t(7);
    for (; c0 + 8 <= cols; c0 += 8) {
      for (int64_t kk = 0; kk < k8; kk += 8) {
        __m256i sd[8], kp[8];
        for (int r = 0; r < 8; ++r) {
          const __m256i v = prepare(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + (c0 + r) * ld + kk)), p);
          const __m256i z = lane_stats_add(ls, v);
          kp[r] = _mm256_or_si256(_mm256_andnot_si256(z, ones), sign);
          sd[r] = _mm256_sub_epi32(v, _mm256_andnot_si256(z, off));
        }
        transpose8(sd);
        transpose8(kp);
        for (int i = 0; i < 8; ++i) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(side + (kk + i) * kNR + c0), sd[i]);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(keep + (kk + i) * kNR + c0), kp[i]);
        }
      }
      if (k8 < count)
        for (int r = 0; r < 8; ++r)
          serial::Ops::prepare_run(src + (c0 + r) * ld + k8, count - k8, true, p, side + k8 * kNR + c0 + r,
                                 keep + k8 * kNR + c0 + r, kNR, stats);
    }
    lane_stats_fold(ls, stats);
    for (; c0 < cols; ++c0) prepare_run(src + c0 * ld, count, true, p, side + c0, keep + c0, kNR, stats);
  }

  // serial::Ops::prepare_rows: full 16-column strips two vectors per row, statistics kept in
  // registers across rows (a partial strip takes the scalar path).
  FRUGALNN_AVX2 static void prepare_rows(const uint32_t* src, int64_t ld, int64_t rows, int64_t cols, const Params& p,
                                         uint32_t* side, uint32_t* keep, PanelStats& stats) {
    if (cols != kNR) return serial::Ops::prepare_rows(src, ld, rows, cols, p, side, keep, stats);
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i off = splat(p.offset), sign = splat(kSign);
    LaneStats ls;
    lane_stats_reset(ls);
    for (int64_t r = 0; r < rows; ++r)
      for (int h = 0; h < 2; ++h) {
        const __m256i v = prepare(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + r * ld + 8 * h)), p);
        const __m256i z = lane_stats_add(ls, v);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(keep + r * kNR + 8 * h),
                            _mm256_or_si256(_mm256_andnot_si256(z, ones), sign));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(side + r * kNR + 8 * h),
                            _mm256_sub_epi32(v, _mm256_andnot_si256(z, off)));
      }
    lane_stats_fold(ls, stats);
  }

  // In-place transpose of an 8 x 8 block of 32-bit lanes (row r in v[r] -> column r in v[r]).
  FRUGALNN_AVX2 static void transpose8(__m256i* v) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
      t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
      u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
      u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
      u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
      v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
  }

  // One integer add (plus the zero masks when the block holds zeros) and one float add per product.
  template <int MR, bool ZX, bool ZY>
  FRUGALNN_AVX2 static void fast(const uint32_t* xa, const uint32_t* kxa, const uint32_t* yb, const uint32_t* kyb,
                                 int64_t kc, float* c, int64_t ldc) {
    __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      acc0[r] = _mm256_loadu_ps(c + r * ldc);
      acc1[r] = _mm256_loadu_ps(c + r * ldc + 8);
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
      const __m256i* y = reinterpret_cast<const __m256i*>(yb + kk * kNR);
      __m256i y0 = _mm256_loadu_si256(y), y1 = _mm256_loadu_si256(y + 1);
      __m256i ky0, ky1;
      if (ZY) {
        const __m256i* ky = reinterpret_cast<const __m256i*>(kyb + kk * kNR);
        ky0 = _mm256_loadu_si256(ky);
        ky1 = _mm256_loadu_si256(ky + 1);
      }
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m256i x = _mm256_set1_epi32(static_cast<int>(xa[kk * kMR + r]));
        __m256i p0 = _mm256_add_epi32(x, y0), p1 = _mm256_add_epi32(x, y1);
        if (ZX) {
          const __m256i kx = _mm256_set1_epi32(static_cast<int>(kxa[kk * kMR + r]));
          p0 = _mm256_and_si256(p0, kx);
          p1 = _mm256_and_si256(p1, kx);
        }
        if (ZY) {
          p0 = _mm256_and_si256(p0, ky0);
          p1 = _mm256_and_si256(p1, ky1);
        }
        acc0[r] = _mm256_add_ps(acc0[r], _mm256_castsi256_ps(p0));
        acc1[r] = _mm256_add_ps(acc1[r], _mm256_castsi256_ps(p1));
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(c + r * ldc, acc0[r]);
      _mm256_storeu_ps(c + r * ldc + 8, acc1[r]);
    }
  }

  // Every rule of serial::combine per product, for blocks that may hold inf/NaN or leave the range.
  template <int MR>
  FRUGALNN_AVX2 static void general(const uint32_t* xa, const uint32_t* kxa, const uint32_t* yb, const uint32_t* kyb,
                                    int64_t kc, float* c, int64_t ldc, const Params& p) {
    __m256 acc0[MR], acc1[MR];
    for (int r = 0; r < MR; ++r) {
      acc0[r] = _mm256_loadu_ps(c + r * ldc);
      acc1[r] = _mm256_loadu_ps(c + r * ldc + 8);
    }
    const __m256i off = splat(p.offset);
    for (int64_t kk = 0; kk < kc; ++kk) {
      const __m256i* y = reinterpret_cast<const __m256i*>(yb + kk * kNR);
      const __m256i* ky = reinterpret_cast<const __m256i*>(kyb + kk * kNR);
      const __m256i k0 = _mm256_loadu_si256(ky), k1 = _mm256_loadu_si256(ky + 1);
      const __m256i y0 = _mm256_add_epi32(_mm256_loadu_si256(y), _mm256_and_si256(off, k0));
      const __m256i y1 = _mm256_add_epi32(_mm256_loadu_si256(y + 1), _mm256_and_si256(off, k1));
      for (int r = 0; r < MR; ++r) {
        const __m256i x = splat(x_prepared(xa[kk * kMR + r], kxa[kk * kMR + r], p));
        acc0[r] = _mm256_add_ps(acc0[r], _mm256_castsi256_ps(combine(x, y0, p)));
        acc1[r] = _mm256_add_ps(acc1[r], _mm256_castsi256_ps(combine(x, y1, p)));
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(c + r * ldc, acc0[r]);
      _mm256_storeu_ps(c + r * ldc + 8, acc1[r]);
    }
  }
};

}  // namespace avx2
}  // namespace lmul
}  // namespace frugalnn
#endif  // FRUGALNN_X86
