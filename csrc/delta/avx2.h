// Delta inference kernels, AVX2: the scatter update (4 doubles a step; the float32 weights are held
// widened to double, layout.h) and the activation of one position (relu, quantize with vroundpd to nearest even,
// compare, movemask to find what to emit). Same bits as serial.h: a multiply then an add, no FMA,
// and the same division and rounding.
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/delta_ref.py, as
// serial.h is (tests/kernels/test_delta.py under the avx2 backend, equal to the serial backend bit
// for bit).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/avx2.h
#pragma once

#include "common/cpu.h"
#include "delta/layout.h"
#include "delta/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace delta {
namespace avx2 {

FRUGALNN_AVX2 inline void axpy(double* s, const double* w, double d, int64_t n) {
  const __m256d dv = _mm256_set1_pd(d);
  int64_t o = 0;
  for (; o + 16 <= n; o += 16) {
    __m256d s0 = _mm256_loadu_pd(s + o), s1 = _mm256_loadu_pd(s + o + 4);
    __m256d s2 = _mm256_loadu_pd(s + o + 8), s3 = _mm256_loadu_pd(s + o + 12);
    s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_loadu_pd(w + o), dv));
    s1 = _mm256_add_pd(s1, _mm256_mul_pd(_mm256_loadu_pd(w + o + 4), dv));
    s2 = _mm256_add_pd(s2, _mm256_mul_pd(_mm256_loadu_pd(w + o + 8), dv));
    s3 = _mm256_add_pd(s3, _mm256_mul_pd(_mm256_loadu_pd(w + o + 12), dv));
    _mm256_storeu_pd(s + o, s0);
    _mm256_storeu_pd(s + o + 4, s1);
    _mm256_storeu_pd(s + o + 8, s2);
    _mm256_storeu_pd(s + o + 12, s3);
  }
  for (; o + 4 <= n; o += 4) {
    const __m256d v = _mm256_mul_pd(_mm256_loadu_pd(w + o), dv);
    _mm256_storeu_pd(s + o, _mm256_add_pd(_mm256_loadu_pd(s + o), v));
  }
  serial::axpy(s + o, w + o, d, n - o);
}

// serial::gather's bits: for each block of 16 (then 4) outputs the state is loaded once, takes the m
// updates in order (multiply then add) and is stored once.
FRUGALNN_AVX2 inline void gather(double* s, const double* const* w, const double* v, int64_t m, int64_t n) {
  int64_t o = 0;
  for (; o + 16 <= n; o += 16) {
    __m256d s0 = _mm256_loadu_pd(s + o), s1 = _mm256_loadu_pd(s + o + 4);
    __m256d s2 = _mm256_loadu_pd(s + o + 8), s3 = _mm256_loadu_pd(s + o + 12);
    for (int64_t k = 0; k < m; ++k) {
      const __m256d dv = _mm256_set1_pd(v[k]);
      const double* wr = w[k] + o;
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_loadu_pd(wr), dv));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(_mm256_loadu_pd(wr + 4), dv));
      s2 = _mm256_add_pd(s2, _mm256_mul_pd(_mm256_loadu_pd(wr + 8), dv));
      s3 = _mm256_add_pd(s3, _mm256_mul_pd(_mm256_loadu_pd(wr + 12), dv));
    }
    _mm256_storeu_pd(s + o, s0);
    _mm256_storeu_pd(s + o + 4, s1);
    _mm256_storeu_pd(s + o + 8, s2);
    _mm256_storeu_pd(s + o + 12, s3);
  }
  for (; o + 4 <= n; o += 4) {
    __m256d s0 = _mm256_loadu_pd(s + o);
    for (int64_t k = 0; k < m; ++k)
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_loadu_pd(w[k] + o), _mm256_set1_pd(v[k])));
    _mm256_storeu_pd(s + o, s0);
  }
  for (; o < n; ++o) {
    double a = s[o];
    for (int64_t k = 0; k < m; ++k) a += w[k][o] * v[k];
    s[o] = a;
  }
}

FRUGALNN_AVX2 inline int64_t activate(const double* s, double* e, const double* q, int64_t c, bool relu,
                                      double threshold, bool dense, int32_t base, Deltas& out) {
  if (dense || threshold > 0.0) return serial::activate(s, e, q, c, relu, threshold, dense, base, out);
  const __m256d zero = _mm256_setzero_pd();
  int64_t n = 0, ch = 0;
  for (; ch + 4 <= c; ch += 4) {
    __m256d a = _mm256_loadu_pd(s + ch);
    if (relu) a = _mm256_max_pd(a, zero);  // max(a, 0): a when a > 0, else 0 (NaN -> 0 as in serial's a > 0)
    if (q) {
      const __m256d qv = _mm256_loadu_pd(q + ch);
      a = _mm256_mul_pd(qv, _mm256_round_pd(_mm256_div_pd(a, qv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    const __m256d d = _mm256_sub_pd(a, _mm256_loadu_pd(e + ch));
    int mask = _mm256_movemask_pd(_mm256_cmp_pd(d, zero, _CMP_NEQ_UQ));
    if (!mask) continue;
    alignas(32) double av[4], dv[4];
    _mm256_store_pd(av, a);
    _mm256_store_pd(dv, d);
    while (mask) {
      const int j = __builtin_ctz(mask);
      mask &= mask - 1;
      e[ch + j] = av[j];
      out.idx.push_back(base + static_cast<int32_t>(ch + j));
      out.val.push_back(dv[j]);
      ++n;
    }
  }
  return n + serial::activate(s + ch, e + ch, q ? q + ch : nullptr, c - ch, relu, threshold, dense,
                              base + static_cast<int32_t>(ch), out);
}

}  // namespace avx2
}  // namespace delta
}  // namespace frugalnn
#endif
