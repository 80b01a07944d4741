// AVX-512 versions of the decode step's dot-product pieces (contracts: serial.h): the dense GEMV
// rows and the decode-step attention (scores, softmax, P.V), 16 float32 lanes with FMA. RMSNorm,
// RoPE, SiLU and the residual add stay avx2.h's (element-wise, a small part of a step).
//
// Rounding: a different summation order than avx2.h (16 lanes instead of 8) and the same
// polynomial exp lane for lane (vec::exp512_softmax = exp256_softmax), so GEMV and attention agree
// with serial.h and avx2.h to float32 rounding, the bound avx2.h documents for them.
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against:
// frugalnn/kernels/llama_ref.py and torch (GEMV and attention to float32 rounding), by
// tests/kernels/test_llama_step.py under the avx512 backend (skipped with "CPU lacks AVX-512"
// elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/llama/avx512.h
#pragma once

#include <cmath>
#include <cstdint>

#include "common/cpu.h"
#include "common/vexp.h"
#include "llama/avx2.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace llama {
namespace avx512 {

using vec::exp512_softmax;

// y[m] = W[m, :] . x for rows [m0, m1): 4 rows at a time, 16 lanes, the k tail under a mask.
FRUGALNN_AVX512 inline void gemv_rows(const float* w, const float* x, int64_t k, int64_t m0, int64_t m1, float* y) {
  const int64_t kv = k - k % 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k % 16)) - 1);
  int64_t m = m0;
  for (; m + 4 <= m1; m += 4) {
    const float *r0 = w + m * k, *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < kv; i += 16) {
      const __m512 xv = _mm512_loadu_ps(x + i);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + i), xv, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + i), xv, a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + i), xv, a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + i), xv, a3);
    }
    if (tail) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, x + kv);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r0 + kv), xv, a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r1 + kv), xv, a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r2 + kv), xv, a2);
      a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r3 + kv), xv, a3);
    }
    y[m] = _mm512_reduce_add_ps(a0);
    y[m + 1] = _mm512_reduce_add_ps(a1);
    y[m + 2] = _mm512_reduce_add_ps(a2);
    y[m + 3] = _mm512_reduce_add_ps(a3);
  }
  for (; m < m1; ++m) {
    const float* r = w + m * k;
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < kv; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(r + i), _mm512_loadu_ps(x + i), a);
    if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r + kv), _mm512_maskz_loadu_ps(tail, x + kv), a);
    y[m] = _mm512_reduce_add_ps(a);
  }
}

FRUGALNN_AVX512 inline float dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// out += p * v  (n floats), the tail under a mask
FRUGALNN_AVX512 inline void axpy(float p, const float* v, float* out, int64_t n) {
  const __m512 pv = _mm512_set1_ps(p);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_fmadd_ps(pv, _mm512_loadu_ps(v + i), _mm512_loadu_ps(out + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(m, v + i), _mm512_maskz_loadu_ps(m, out + i)));
  }
}

// avx2::attend's contract and steps, 16 lanes.
FRUGALNN_AVX512 inline void attend(const float* q, const float* keys, const float* values, int64_t g, int64_t s,
                                   int64_t d, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < g; ++j) {
    const float* qj = q + j * d;
    float mx = -INFINITY;
    for (int64_t t = 0; t < s; ++t) {
      const float v = dot(qj, keys + t * d, d) * scale;
      scores[t] = v;
      mx = v > mx ? v : mx;
    }
    const __m512 mv = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 16 <= s; t += 16) {
      const __m512 e = exp512_softmax(_mm512_sub_ps(_mm512_loadu_ps(scores + t), mv));
      _mm512_storeu_ps(scores + t, e);
      acc = _mm512_add_ps(acc, e);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; t < s; ++t) {
      scores[t] = std::exp(scores[t] - mx);
      sum += scores[t];
    }
    float* oj = out + j * d;
    for (int64_t i = 0; i < d; ++i) oj[i] = 0.0f;
    for (t = 0; t < s; ++t) axpy(scores[t], values + t * d, oj, d);
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < d; ++i) oj[i] *= inv;
  }
}

}  // namespace avx512
}  // namespace llama
}  // namespace frugalnn
#endif  // FRUGALNN_X86
