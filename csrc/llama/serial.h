// The element-wise and attention pieces of one Llama decode step (one token, batch 1), portable
// reference. driver.h chains them with the linear layers; avx2.h has the vector versions.
//
// Each function mirrors the torch model (frugalnn/llm/layers.py) operation by operation
// where torch's rounding is knowable: RoPE is the complex product torch computes (ac - bs,
// as + bc, no fused multiply-add), RMSNorm is (x * r) * w. Reductions (sum of squares, dot
// products, softmax sums) run in a different order than torch's kernels, so results agree to
// float32 rounding, not bit for bit; the sum of squares is accumulated in double (exact products)
// so serial and AVX2 round it the same way almost always.
//
// Role: serial (portable reference kernels). Checked against: frugalnn/kernels/llama_ref.py
// (RoPE bit for bit, RMSNorm to 1 ulp, the rest to float32 rounding) and torch's complex RoPE,
// SDPA and SiLU (tests/kernels/test_llama_step.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/llama/serial.h
#pragma once

#include <cmath>
#include <cstdint>

namespace frugalnn {
namespace llama {
namespace serial {

// out = (x * rsqrt(mean(x^2) + eps)) * w      x, w, out [n]; out may alias x
inline void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(ss) / static_cast<float>(n);
  const float r = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * r) * w[i];
}

// Rotate adjacent pairs (2i, 2i+1), i < rope_dim / 2, of each of `heads` vectors of length d.
// cs: [rope_dim / 2][2] = (cos, sin) of this position, float32 (the torch model's complex table).
inline void rope(float* x, int64_t heads, int64_t d, int64_t rope_dim, const float* cs) {
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    for (int64_t i = 0; i < rope_dim / 2; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1], c = cs[2 * i], s = cs[2 * i + 1];
      v[2 * i] = a * c - b * s;
      v[2 * i + 1] = a * s + b * c;
    }
  }
}

// y[m] = sum_k w[m, k] x[k] for rows [m0, m1) of a row-major float32 [M, K] weight.
// Eight partial sums over k mod 8, combined pairwise as avx2::hsum does: one running sum over K
// drifts by ~K ulps, which over 30 layers left the serial backend outside the fp32 tolerance
// the decoder is tested to (SmolLM2 logits); the lane structure keeps it ~sqrt(K / 8).
inline void gemv_rows(const float* w, const float* x, int64_t k, int64_t m0, int64_t m1, float* y) {
  const int64_t kv = k - k % 8;
  for (int64_t m = m0; m < m1; ++m) {
    const float* row = w + m * k;
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < kv; i += 8)
      for (int j = 0; j < 8; ++j) a[j] += row[i + j] * x[i + j];
    float acc = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    for (int64_t i = kv; i < k; ++i) acc += row[i] * x[i];
    y[m] = acc;
  }
}

// One kv head's query group against the cache: q [g, d] (query rows of this kv head),
// keys/values [s, d] (cache rows 0..s-1), out [g, d]; scores: scratch [s].
//   out[j] = sum_t softmax_t(scale * q[j].k[t]) v[t]
// The maximum is subtracted before exp (what every softmax does); the weighted sum of v is
// accumulated unnormalized and divided by the sum of weights at the end, as torch's CPU
// flash-attention kernel does.
inline void attend(const float* q, const float* keys, const float* values, int64_t g, int64_t s, int64_t d,
                   float scale, float* scores, float* out) {
  for (int64_t j = 0; j < g; ++j) {
    const float* qj = q + j * d;
    float mx = -INFINITY;
    for (int64_t t = 0; t < s; ++t) {
      float dot = 0.0f;
      for (int64_t i = 0; i < d; ++i) dot += qj[i] * keys[t * d + i];
      scores[t] = dot * scale;
      mx = scores[t] > mx ? scores[t] : mx;
    }
    // a row of -inf (or NaN) scores: let exp produce NaN as torch's softmax does, never divide by 0 silently
    float sum = 0.0f;
    for (int64_t t = 0; t < s; ++t) {
      scores[t] = std::exp(scores[t] - mx);
      sum += scores[t];
    }
    float* oj = out + j * d;
    for (int64_t i = 0; i < d; ++i) oj[i] = 0.0f;
    for (int64_t t = 0; t < s; ++t) {
      const float p = scores[t];
      const float* vt = values + t * d;
      for (int64_t i = 0; i < d; ++i) oj[i] += p * vt[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < d; ++i) oj[i] *= inv;
  }
}

// out[i] = silu(gate[i]) * up[i],  silu(v) = v / (1 + exp(-v))
inline void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = gate[i];
    out[i] = (v / (1.0f + std::exp(-v))) * up[i];
  }
}

// x += y
inline void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace serial
}  // namespace llama
}  // namespace frugalnn
