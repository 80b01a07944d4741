// MixPE group GEMM, portable reference: dequantization after the group sum.
//
//   W4A8:  y[m, n] = sa[m] * sum_g s[n,g] * (sum_{k in g} q[n,k] aq[m,k] - z[n,g] * asum[m,g]) (+ bias[n])
//   W4A16: y[m, n] =         sum_g s[n,g] * (sum_{k in g} q[n,k] af[m,k] - z[n,g] * afsum[m,g]) (+ bias[n])
//
// Operation order (W4A8), per output (m, n): d_g = the exact int32 integer part of group g
// (|d_g| <= 128 * 15 * 128 * 2, no overflow), acc = 0.0f; acc = fmaf(s[n,g], float(d_g), acc) for
// g = 0, 1, ... (one fused multiply-add per group: the only float work inside K); then
// y = acc * sa[m], then + bias[n]. The AVX2 kernel does the same per lane, so the two backends
// agree bit for bit. W4A16: the group dot sum_k q*af is a float32 sum (k order here, 8 lanes in
// AVX2: the backends agree within float rounding), then acc = fmaf(s, dot - z*afsum, acc).
//
// Activation quantization (W4A8, per token, symmetric): amax = max|x[m, :]|; amax == 0 gives
// sa = 1 and aq = 0; otherwise inv = 127.0f / amax, aq = clamp(rint(x * inv), -127, 127),
// sa = amax / 127.0f (all float32, round to nearest even), asum = group sums of aq. NaN codes
// (NaN inputs; inf * 0 in a token whose max is inf) become 0: such a token's outputs are NaN.
//
// W4A16 with `each`: the conventional kernel MixPE removes, w = (q - z) * s per weight, then
// acc = fma(w, a, acc) over all of K (for the speed comparison).
//
// Role: serial (reference kernels: W4A8 and W4A16 GEMM, activation quantization). Checked against:
// frugalnn/kernels/mixpe_ref.py, integer parts bit for bit (unit scales make the output the integer
// sum itself) and the AVX2 backend bit for bit on W4A8 (tests/kernels/test_mixpe_kernel.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/mixpe/serial.h
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "mixpe/layout.h"

namespace frugalnn {
namespace mixpe {

inline int q_at(const uint8_t* wp, const Shape& S, int64_t n, int64_t k) {
  const int64_t strip = n / kRows, r = n % kRows, quad = k / kQuad, j = k % kQuad;
  const uint8_t byte = wp[(strip * S.blocks + quad) * kQuadBytes + 4 * (r % 8) + j];
  return r < 8 ? (byte & 0xF) : (byte >> 4);
}

inline int64_t sz_index(const Shape& S, int64_t n, int64_t g) {
  return ((n / kRows) * S.groups + g) * kRows + n % kRows;
}

namespace serial {

// Outputs of rows [n0, n1) (whole strips) for all M tokens.
inline void w4a8_rows(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S, const int8_t* aq,
                      const int32_t* asum, const float* sa, int64_t m, const float* bias, float* out, int64_t n0,
                      int64_t n1) {
  for (int64_t n = n0; n < std::min(n1, S.n); ++n)
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* a = aq + i * S.kp;
      float acc = 0.0f;
      for (int64_t g = 0; g < S.groups; ++g) {
        int32_t d = 0;
        for (int64_t k = g * S.group; k < (g + 1) * S.group; ++k) d += q_at(wp, S, n, k) * int32_t(a[k]);
        d -= int32_t(zp[sz_index(S, n, g)]) * asum[i * S.groups + g];
        acc = std::fma(sp[sz_index(S, n, g)], static_cast<float>(d), acc);
      }
      float y = acc * sa[i];
      if (bias) y = y + bias[n];
      out[i * S.n + n] = y;
    }
}

inline void w4a16_rows(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S, const float* af,
                       const float* afsum, int64_t m, const float* bias, float* out, int64_t n0, int64_t n1,
                       bool each = false) {
  for (int64_t n = n0; n < std::min(n1, S.n); ++n)
    for (int64_t i = 0; i < m; ++i) {
      const float* a = af + i * S.kp;
      float acc = 0.0f;
      if (each) {  // the conventional kernel: every weight dequantized before its multiply-add
        for (int64_t k = 0; k < S.kp; ++k) {
          const int64_t g = k / S.group;
          const float w = (float(q_at(wp, S, n, k)) - float(zp[sz_index(S, n, g)])) * sp[sz_index(S, n, g)];
          acc = std::fma(w, a[k], acc);
        }
        out[i * S.n + n] = bias ? acc + bias[n] : acc;
        continue;
      }
      for (int64_t g = 0; g < S.groups; ++g) {
        float dot = 0.0f;
        for (int64_t k = g * S.group; k < (g + 1) * S.group; ++k) dot = dot + float(q_at(wp, S, n, k)) * a[k];
        const float d = dot - float(zp[sz_index(S, n, g)]) * afsum[i * S.groups + g];
        acc = std::fma(sp[sz_index(S, n, g)], d, acc);
      }
      float y = acc;
      if (bias) y = y + bias[n];
      out[i * S.n + n] = y;
    }
}

// One token: x [K] float32 -> aq [Kp] int8 (zero padded), asum [groups], returns sa.
inline float quantize_token(const float* x, const Shape& S, int8_t* aq, int32_t* asum) {
  float amax = 0.0f;
  for (int64_t k = 0; k < S.k; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t k = 0; k < S.kp; ++k) {
    const float v = k < S.k ? std::nearbyint(x[k] * inv) : 0.0f;
    // clamp; NaN (a NaN input, or inf * 0 when the token holds an inf) becomes 0, never a cast of NaN
    aq[k] = static_cast<int8_t>(v > -127.0f ? (v < 127.0f ? v : 127.0f) : (v == v ? -127.0f : 0.0f));
  }
  for (int64_t g = 0; g < S.groups; ++g) {
    int32_t s = 0;
    for (int64_t k = g * S.group; k < (g + 1) * S.group; ++k) s += aq[k];
    asum[g] = s;
  }
  return amax > 0.0f ? amax / 127.0f : 1.0f;
}

}  // namespace serial
}  // namespace mixpe
}  // namespace frugalnn
