// AVX2 versions of the decode-step pieces in serial.h (same contracts; see there).
//
// Rounding vs serial.h: RoPE and the final multiplies are the same operations in the same order
// (bit-identical); the sum of squares is accumulated in double in 4 lanes (float products are
// exact in double, so it rounds like the serial sum except in rare ties); dot products use
// 8 float32 lanes with FMA and exp is a polynomial (common/vexp.h), so GEMV, attention and SwiGLU
// agree with the serial path to float32 rounding only.
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/llama_ref.py
// (RoPE bit for bit, RMSNorm to 1 ulp, the rest to float32 rounding), torch's complex RoPE, SDPA
// and SiLU, and SiLU over the whole exp range (tests/kernels/test_llama_step.py, avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/llama/avx2.h
#pragma once

#include <cmath>
#include <cstdint>

#include "common/cpu.h"
#include "common/vexp.h"
#include "llama/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace llama {
namespace avx2 {

FRUGALNN_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp (common/vexp.h): the whole-range exp256 (<= 2 ulp) for SiLU's unbounded exp(-v); the cheaper
// exp256_softmax (valid for x <= 88.3, shared with the fused attention kernel) for the softmax,
// whose arguments x - max are <= 0.
using vec::exp256;
using vec::exp256_softmax;

FRUGALNN_AVX2 inline void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    acc = _mm256_fmadd_pd(v, v, acc);  // float products are exact in double: FMA changes nothing
  }
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
  double ss = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(ss) / static_cast<float>(n);
  const float r = 1.0f / std::sqrt(mean + eps);
  const __m256 rv = _mm256_set1_ps(r);
  i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = (x[i] * r) * w[i];
}

// GCC fuses a multiply feeding _mm256_addsub_ps into vfmaddsub even under -ffp-contract=off, and
// vectorizes a scalar a*c - b*s the same way; torch rounds each product, so the products go through
// an empty asm statement, which the optimizer cannot see through.
template <class T>
FRUGALNN_AVX2 inline T opaque(T v) {
  __asm__("" : "+x"(v));
  return v;
}

FRUGALNN_AVX2 inline void rope(float* x, int64_t heads, int64_t d, int64_t rope_dim, const float* cs) {
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    int64_t i = 0;
    for (; i + 8 <= rope_dim; i += 8) {  // 4 pairs: (a b) * (c s) = (ac - bs, bc + as)
      const __m256 xv = _mm256_loadu_ps(v + i), c = _mm256_loadu_ps(cs + i);
      const __m256 cc = _mm256_moveldup_ps(c), ss = _mm256_movehdup_ps(c);
      const __m256 swapped = _mm256_permute_ps(xv, 0xB1);  // (b a) per pair
      const __m256 p1 = opaque(_mm256_mul_ps(xv, cc)), p2 = opaque(_mm256_mul_ps(swapped, ss));
      _mm256_storeu_ps(v + i, _mm256_addsub_ps(p1, p2));
    }
    for (; i < rope_dim; i += 2) {
      const float a = v[i], b = v[i + 1], c = cs[i], s = cs[i + 1];
      v[i] = opaque(a * c) - opaque(b * s);
      v[i + 1] = opaque(a * s) + opaque(b * c);
    }
  }
}

FRUGALNN_AVX2 inline void gemv_rows(const float* w, const float* x, int64_t k, int64_t m0, int64_t m1, float* y) {
  const int64_t kv = k - k % 8;
  int64_t m = m0;
  for (; m + 4 <= m1; m += 4) {
    const float *r0 = w + m * k, *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < kv; i += 8) {
      const __m256 xv = _mm256_loadu_ps(x + i);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + i), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + i), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + i), xv, a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (int64_t i = kv; i < k; ++i) {
      s0 += r0[i] * x[i];
      s1 += r1[i] * x[i];
      s2 += r2[i] * x[i];
      s3 += r3[i] * x[i];
    }
    y[m] = s0;
    y[m + 1] = s1;
    y[m + 2] = s2;
    y[m + 3] = s3;
  }
  for (; m < m1; ++m) {
    const float* r = w + m * k;
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < kv; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(r + i), _mm256_loadu_ps(x + i), a);
    float s = hsum(a);
    for (int64_t i = kv; i < k; ++i) s += r[i] * x[i];
    y[m] = s;
  }
}

FRUGALNN_AVX2 inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// out += p * v  (n floats)
FRUGALNN_AVX2 inline void axpy(float p, const float* v, float* out, int64_t n) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  for (; i < n; ++i) out[i] += p * v[i];
}

FRUGALNN_AVX2 inline void attend(const float* q, const float* keys, const float* values, int64_t g, int64_t s,
                                 int64_t d, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < g; ++j) {
    const float* qj = q + j * d;
    float mx = -INFINITY;
    for (int64_t t = 0; t < s; ++t) {
      const float v = dot(qj, keys + t * d, d) * scale;
      scores[t] = v;
      mx = v > mx ? v : mx;
    }
    const __m256 mv = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= s; t += 8) {
      const __m256 e = exp256_softmax(_mm256_sub_ps(_mm256_loadu_ps(scores + t), mv));
      _mm256_storeu_ps(scores + t, e);
      acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    for (; t < s; ++t) {
      scores[t] = std::exp(scores[t] - mx);
      sum += scores[t];
    }
    float* oj = out + j * d;
    for (int64_t i = 0; i < d; ++i) oj[i] = 0.0f;
    for (t = 0; t < s; ++t) axpy(scores[t], values + t * d, oj, d);
    const float inv = 1.0f / sum;
    const __m256 iv = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(oj + i, _mm256_mul_ps(_mm256_loadu_ps(oj + i), iv));
    for (; i < d; ++i) oj[i] *= inv;
  }
}

FRUGALNN_AVX2 inline void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(gate + i);
    const __m256 silu = _mm256_div_ps(v, _mm256_add_ps(one, exp256(_mm256_xor_ps(v, sign))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  serial::silu_mul(gate + i, up + i, n - i, out + i);
}

FRUGALNN_AVX2 inline void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

}  // namespace avx2
}  // namespace llama
}  // namespace frugalnn
#endif
