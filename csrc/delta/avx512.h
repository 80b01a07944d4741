// Delta inference kernels, AVX-512: the gathered conv update of one output position (gather) on 8-double zmm
// registers (the float32 weights are held widened to double, layout.h); up to four zmm (32 outputs) of the state
// row stay in registers across all its updates. The same bits as serial.h and avx2.h: every
// update is a multiply then an add (no FMA), in the same order per output. The activation and the
// single axpy are avx2.h's (the activation is a small part of a frame's time).
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against:
// frugalnn/kernels/delta_ref.py, and bit for bit against the serial and avx2 backends
// (tests/kernels/test_delta.py and tests/delta/test_video.py under the avx512 backend; skipped
// with "CPU lacks AVX-512" elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/avx512.h
#pragma once

#include "common/cpu.h"
#include "delta/avx2.h"
#include "delta/layout.h"
#include "delta/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace delta {
namespace avx512 {

FRUGALNN_AVX512 inline __m512d widen(const double* w) { return _mm512_loadu_pd(w); }

FRUGALNN_AVX512 inline void gather(double* s, const double* const* w, const double* v, int64_t m, int64_t n) {
  int64_t o = 0;
  for (; o + 32 <= n; o += 32) {
    __m512d s0 = _mm512_loadu_pd(s + o), s1 = _mm512_loadu_pd(s + o + 8);
    __m512d s2 = _mm512_loadu_pd(s + o + 16), s3 = _mm512_loadu_pd(s + o + 24);
    for (int64_t k = 0; k < m; ++k) {
      const __m512d dv = _mm512_set1_pd(v[k]);
      const double* wr = w[k] + o;
      s0 = _mm512_add_pd(s0, _mm512_mul_pd(widen(wr), dv));
      s1 = _mm512_add_pd(s1, _mm512_mul_pd(widen(wr + 8), dv));
      s2 = _mm512_add_pd(s2, _mm512_mul_pd(widen(wr + 16), dv));
      s3 = _mm512_add_pd(s3, _mm512_mul_pd(widen(wr + 24), dv));
    }
    _mm512_storeu_pd(s + o, s0);
    _mm512_storeu_pd(s + o + 8, s1);
    _mm512_storeu_pd(s + o + 16, s2);
    _mm512_storeu_pd(s + o + 24, s3);
  }
  if (o + 16 <= n) {
    __m512d s0 = _mm512_loadu_pd(s + o), s1 = _mm512_loadu_pd(s + o + 8);
    for (int64_t k = 0; k < m; ++k) {
      const __m512d dv = _mm512_set1_pd(v[k]);
      const double* wr = w[k] + o;
      s0 = _mm512_add_pd(s0, _mm512_mul_pd(widen(wr), dv));
      s1 = _mm512_add_pd(s1, _mm512_mul_pd(widen(wr + 8), dv));
    }
    _mm512_storeu_pd(s + o, s0);
    _mm512_storeu_pd(s + o + 8, s1);
    o += 16;
  }
  if (o + 8 <= n) {
    __m512d s0 = _mm512_loadu_pd(s + o);
    for (int64_t k = 0; k < m; ++k) s0 = _mm512_add_pd(s0, _mm512_mul_pd(widen(w[k] + o), _mm512_set1_pd(v[k])));
    _mm512_storeu_pd(s + o, s0);
    o += 8;
  }
  for (; o < n; ++o) {
    double a = s[o];
    for (int64_t k = 0; k < m; ++k) a += w[k][o] * v[k];
    s[o] = a;
  }
}

}  // namespace avx512
}  // namespace delta
}  // namespace frugalnn
#endif
