// Delta inference kernels, AVX2: the gathered conv update (4 doubles a step; the float32 weights are
// held widened to double, layout.h) and the activation of a band of positions (relu, quantize with
// vroundpd to nearest even via a checked reciprocal, compare, movemask to find what to emit). Same
// bits as serial.h: a multiply then an add, no FMA, and the division's rounding.
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/delta_ref.py, as
// serial.h is (tests/kernels/test_delta.py under the avx2 backend, equal to the serial backend bit
// for bit).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/avx2.h
#pragma once

#include <cstring>

#include "common/cpu.h"
#include "delta/layout.h"
#include "delta/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace delta {
namespace avx2 {

// serial::gather's bits: for each block of 16 (then 4) outputs the state is loaded once, takes every
// update in order (multiply then add) and is stored once.
FRUGALNN_AVX2 inline void gather(double* s, const double* const* w, const int32_t* const* ch, const double* const* v,
                                 const int32_t* len, int64_t nt, int64_t n) {
  int64_t o = 0;
  for (; o + 16 <= n; o += 16) {
    __m256d s0 = _mm256_loadu_pd(s + o), s1 = _mm256_loadu_pd(s + o + 4);
    __m256d s2 = _mm256_loadu_pd(s + o + 8), s3 = _mm256_loadu_pd(s + o + 12);
    for (int64_t t = 0; t < nt; ++t) {
      const double* wt = w[t] + o;
      for (int32_t j = 0; j < len[t]; ++j) {
        const __m256d dv = _mm256_set1_pd(v[t][j]);
        const double* wr = wt + static_cast<int64_t>(ch[t][j]) * n;
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_loadu_pd(wr), dv));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(_mm256_loadu_pd(wr + 4), dv));
        s2 = _mm256_add_pd(s2, _mm256_mul_pd(_mm256_loadu_pd(wr + 8), dv));
        s3 = _mm256_add_pd(s3, _mm256_mul_pd(_mm256_loadu_pd(wr + 12), dv));
      }
    }
    _mm256_storeu_pd(s + o, s0);
    _mm256_storeu_pd(s + o + 4, s1);
    _mm256_storeu_pd(s + o + 8, s2);
    _mm256_storeu_pd(s + o + 12, s3);
  }
  for (; o + 4 <= n; o += 4) {
    __m256d s0 = _mm256_loadu_pd(s + o);
    for (int64_t t = 0; t < nt; ++t)
      for (int32_t j = 0; j < len[t]; ++j)
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_loadu_pd(w[t] + static_cast<int64_t>(ch[t][j]) * n + o),
                                             _mm256_set1_pd(v[t][j])));
    _mm256_storeu_pd(s + o, s0);
  }
  for (; o < n; ++o) {
    double a = s[o];
    for (int64_t t = 0; t < nt; ++t)
      for (int32_t j = 0; j < len[t]; ++j) a += w[t][static_cast<int64_t>(ch[t][j]) * n + o] * v[t][j];
    s[o] = a;
  }
}

// serial::scatter_run's bits: this file's gather, one tap per output row.
FRUGALNN_AVX2 inline void scatter_run(double* const* rows, const double* const* w, int64_t nr, const int32_t* ch,
                                 const double* v, int32_t len, int64_t n) {
  for (int64_t i = 0; i < nr; ++i) gather(rows[i], w + i, &ch, &v, &len, 1, n);
}

// q * nearbyint(a / q) for 4 lanes, the division's bits without a division where that is provable.
// Fast path: t = a * rq with rq = fl(1 / q). Bound: rq = (1 / q)(1 + e1), t = a rq (1 + e2) with
// |e1|, |e2| <= u = 2^-53, so |t - a/q| <= (2u + u^2)|a/q|; the division fl(a / q) is within u|a/q|
// of a/q; hence |t - fl(a/q)| <= 3.01u|a/q| <= 3.02u|t| < 2^-50 |t|. If t is farther than 2^-50 |t|
// from every half-integer, fl(a/q) lies strictly between the same two half-integers, so both round to
// the same integer (t - nearbyint(t) is exact; | |t - r| - 1/2 | is exact or far from the bound).
// Otherwise (a tie or near-tie, |t| >= 2^49 where ulps exceed the margin, NaN/inf) the whole vector is
// recomputed with the division. So the result equals serial.h's a / q path bit for bit.
FRUGALNN_AVX2 inline __m256d quantize4(__m256d a, __m256d qv, __m256d rqv) {
  const __m256d sign = _mm256_set1_pd(-0.0), half = _mm256_set1_pd(0.5), margin = _mm256_set1_pd(0x1p-50);
  const __m256d t = _mm256_mul_pd(a, rqv);
  __m256d r = _mm256_round_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d dist = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(t, r)), half));
  const __m256d ok = _mm256_cmp_pd(dist, _mm256_mul_pd(_mm256_andnot_pd(sign, t), margin), _CMP_GT_OQ);
  if (_mm256_movemask_pd(ok) != 0xF)
    r = _mm256_round_pd(_mm256_div_pd(a, qv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_mul_pd(qv, r);
}

// Left-packing tables for the branchless emission: for a 4-lane mask m, the 32-bit lane permutation
// that moves the set lanes' doubles (pair) or int32s (one) to the front, in lane order.
struct PackLut {
  alignas(32) int32_t pair[16][8];
  alignas(32) int32_t one[16][8];
};
constexpr PackLut make_pack_lut() {
  PackLut t{};
  for (int m = 0; m < 16; ++m)
    for (int j = 0, k = 0; j < 4; ++j)
      if ((m >> j) & 1) {
        t.pair[m][2 * k] = 2 * j;
        t.pair[m][2 * k + 1] = 2 * j + 1;
        t.one[m][k++] = j;
      }
  return t;
}
inline constexpr PackLut kPack = make_pack_lut();

// One vector of 4 elements at flat index f (channels ch0.. of a position, or 4 positions of a
// one-channel layer, each then its own run): activate, emit the changed lanes without a branch per
// lane (a mispredicted branch cost more than the work at ~15% density): the emitted values are
// blended, the deltas left-packed and stored as 4 lanes at out.n (the lanes past the count are
// scratch: out.n + 4 <= f + 4 <= the buffer's size), out.n advanced by the count.
FRUGALNN_AVX2 inline void block4(const double* s, double* e, int64_t f, bool quant, __m256d qv, __m256d rqv, bool relu,
                                 double threshold, bool dense, int32_t ch0, bool one_channel, Emit& out) {
  const __m256d zero = _mm256_setzero_pd();
  __m256d a = _mm256_loadu_pd(s + f);
  if (relu) a = _mm256_max_pd(a, zero);  // max(a, 0): a when a > 0, else 0 (NaN -> 0 as in serial's a > 0)
  if (quant) a = quantize4(a, qv, rqv);
  const __m256d old = _mm256_loadu_pd(e + f);
  const __m256d d = _mm256_sub_pd(a, old);
  // serial::activate1's rule: every lane (dense), |d| > threshold (threshold mode; NaN: no), d != 0
  const __m256d changed =
      dense ? _mm256_castsi256_pd(_mm256_set1_epi64x(-1))
            : threshold > 0.0 ? _mm256_cmp_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), d), _mm256_set1_pd(threshold), _CMP_GT_OQ)
                              : _mm256_cmp_pd(d, zero, _CMP_NEQ_UQ);
  const int mask = _mm256_movemask_pd(changed);
  _mm256_storeu_pd(e + f, _mm256_blendv_pd(old, a, changed));
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0);
  const __m256i pair = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.pair[mask]));
  const __m256i one = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.one[mask]));
  _mm256_storeu_pd(out.val + out.n, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(d), pair)));
  const __m128i idx = _mm256_castsi256_si128(
      _mm256_permutevar8x32_epi32(_mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(f)), iota), one));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out.idx + out.n), idx);
  const int count = __builtin_popcount(static_cast<unsigned>(mask));
  if (one_channel) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.ch + out.n), _mm_setzero_si128());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.run_pos + out.nruns), idx);
    for (int j = 0, k = 0; j < 4; ++j) {  // every position gets its run entry (len 0 or 1)
      const int bit = (mask >> j) & 1;
      out.run_start[f + j] = static_cast<int32_t>(out.n + k);
      out.run_len[f + j] = bit;
      k += bit;
    }
    out.nruns += count;
  } else {
    const __m128i ch = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_add_epi32(_mm256_set1_epi32(ch0), iota), one));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.ch + out.n), ch);
  }
  out.n += count;
}

// serial::activate_rows' bits (every mode: exact, threshold, dense). One
// channel (the input layer): 4 positions per vector where all 4 are dirty; else a position's
// channels 4 per vector. Emission: a movemask of d != 0 picks the lanes.
FRUGALNN_AVX2 inline void activate_rows(const double* s, double* e, uint8_t* dirty, const double* q, const double* rq,
                                        int64_t c, bool relu, double threshold, bool dense, int64_t lo, int64_t hi,
                                        Emit& out) {
  const __m256d zero = _mm256_setzero_pd();
  if (c == 1) {
    const __m256d qv = _mm256_set1_pd(q ? q[0] : 1.0), rqv = _mm256_set1_pd(q ? rq[0] : 1.0);
    int64_t p = lo;
    for (; p + 4 <= hi; p += 4) {
      uint32_t d4;
      std::memcpy(&d4, dirty + p, 4);
      if (d4 == 0x01010101u) {
        std::memset(dirty + p, 0, 4);
        block4(s, e, p, q != nullptr, qv, rqv, relu, threshold, dense, 0, true, out);
      } else {
        serial::activate_rows(s, e, dirty, q, rq, c, relu, threshold, dense, p, p + 4, out);
      }
    }
    return serial::activate_rows(s, e, dirty, q, rq, c, relu, threshold, dense, p, hi, out);
  }
  for (int64_t p = lo; p < hi; ++p) {
    if (!dirty[p]) continue;
    dirty[p] = 0;
    const int64_t before = out.n, base = p * c;
    int64_t ch = 0;
    for (; ch + 4 <= c; ch += 4)
      block4(s, e, base + ch, q != nullptr, q ? _mm256_loadu_pd(q + ch) : zero, q ? _mm256_loadu_pd(rq + ch) : zero, relu,
             threshold, dense, static_cast<int32_t>(ch), false, out);
    for (; ch < c; ++ch) {
      double d;
      if (serial::activate1(s[base + ch], e + base + ch, q ? q + ch : nullptr, relu, threshold, dense, &d))
        serial::emit(out, static_cast<int32_t>(base + ch), static_cast<int32_t>(ch), d);
    }
    serial::close_run(out, p, before);
  }
}

}  // namespace avx2
}  // namespace delta
}  // namespace frugalnn
#endif
