// One-token Llama decode step in C++: every layer and the output head in one call, on the weight
// buffers the torch model holds (no copies). Why: at SmolLM2 size a decode step is ~35 small
// torch ops per layer, each costing more in dispatch than its arithmetic (frugalnn/llm/fast.py
// builds a Decoder from a Llama and falls back to the torch model whenever it cannot).
//
// Per token (B = 1, T = 1; H query heads, Hkv kv heads, G = H / Hkv, D head_dim, P position):
//   x = embedding[token]                                          [dim]
//   for each layer:
//     h = rms_norm(x, attn_norm);  qkv = Wqkv h                    [(H + 2 Hkv) D]
//     rope(q and k heads, P);  cache.k[P] = k;  cache.v[P] = v     cache [Hkv, max_len, D]
//     o[kv head c, query j] = attend(q[c G + j], cache.k[c, 0..P], cache.v[c, 0..P])
//     x += Wo o;  h = rms_norm(x, ffn_norm)
//     gu = Wgate_up h;  x += Wdown (silu(gu[:ffn]) * gu[ffn:])
//   logits = Whead rms_norm(x, out_norm)                            [vocab]
// A linear layer is one or more row blocks ("parts"), each float32 [rows, K] or T-MAC LUT
// weights (lut::matmul, csrc/lut/driver.h): fused projections whose parts must keep their own
// scales (ternary re-quantized per tensor) stay separate and write consecutive output rows.
//
// Role: driver (the decoder: chains the pieces, threads, backend choice). Its LUT layers go through
// the T-MAC driver, csrc/lut/driver.h: the one cross-op include in csrc, and it is on a driver,
// never on another op's kernels. Checked against: the torch model it was built from, float and
// LUT weights, logits and generated tokens (tests/llm/test_fast.py), and dense() against the numpy
// reference (tests/kernels/test_llama_step.py, gemv), on both backends.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/llama/driver.h
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "llama/avx2.h"
#include "llama/avx512.h"
#include "llama/serial.h"
#include "lut/driver.h"

namespace frugalnn {
namespace llama {

// The backend of this call: the decoder reads it once per step, so a step never mixes backends.
inline bool avx2_active() {
#if FRUGALNN_X86
  return use_avx2();
#else
  return false;
#endif
}

// The decode-step pieces with the backend chosen by `avx` (contracts: serial.h).
inline void rms_norm(bool avx, const float* x, const float* w, int64_t n, float eps, float* out) {
#if FRUGALNN_X86
  if (avx) return avx2::rms_norm(x, w, n, eps, out);
#endif
  serial::rms_norm(x, w, n, eps, out);
}

inline void rope(bool avx, float* x, int64_t heads, int64_t d, int64_t rope_dim, const float* cs) {
#if FRUGALNN_X86
  if (avx) return avx2::rope(x, heads, d, rope_dim, cs);
#endif
  serial::rope(x, heads, d, rope_dim, cs);
}

// The avx512 decode-step kernels (GEMV rows, attention; avx512.h), read once per step like avx2_active().
inline bool avx512_active() {
#if FRUGALNN_X86
  return use_avx512();
#else
  return false;
#endif
}

inline void attend(bool avx, bool avx512, const float* q, const float* keys, const float* values, int64_t g,
                   int64_t s, int64_t d, float scale, float* scores, float* out) {
#if FRUGALNN_X86
  if (avx512) return avx512::attend(q, keys, values, g, s, d, scale, scores, out);
  if (avx) return avx2::attend(q, keys, values, g, s, d, scale, scores, out);
#endif
  serial::attend(q, keys, values, g, s, d, scale, scores, out);
}

inline void silu_mul(bool avx, const float* gate, const float* up, int64_t n, float* out) {
#if FRUGALNN_X86
  if (avx) return avx2::silu_mul(gate, up, n, out);
#endif
  serial::silu_mul(gate, up, n, out);
}

inline void add(bool avx, float* x, const float* y, int64_t n) {
#if FRUGALNN_X86
  if (avx) return avx2::add(x, y, n);
#endif
  serial::add(x, y, n);
}

struct Part {
  int64_t rows = 0, k = 0;
  const float* dense = nullptr;  // float32 [rows, k], or nullptr for LUT weights
  lut::Weights lut{};
  lut::KQuant kq{};        // two-level (K-quant) scales; used when two_level (lut.kq is set at call time:
  bool two_level = false;  // Parts are copied into vectors, so a stored pointer to kq would dangle)
  lut::Shape shape{};
  lut::Config cfg{};
  int threads = 1;
};

// float32 GEMV y = W x over the part's rows, split over threads by row blocks.
inline void dense(const Part& p, const float* x, float* y) {
  const bool avx = avx2_active(), avx512 = avx512_active();
  parallel_range(p.rows, p.threads, 64, [&](int64_t m0, int64_t m1) {
#if FRUGALNN_X86
    if (avx512) return avx512::gemv_rows(p.dense, x, p.k, m0, m1, y);
    if (avx) return avx2::gemv_rows(p.dense, x, p.k, m0, m1, y);
#endif
    serial::gemv_rows(p.dense, x, p.k, m0, m1, y);
  });
}

struct Linear {
  std::vector<Part> parts;
  int64_t rows() const {
    int64_t n = 0;
    for (const Part& p : parts) n += p.rows;
    return n;
  }
};

struct Layer {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  Linear qkv, o, gate_up, down;
};

struct Dims {
  int64_t dim, n_layers, n_heads, n_kv_heads, head_dim, rope_dim, ffn, vocab, max_pos;
  float eps;
};

struct Cache {
  float *k = nullptr, *v = nullptr;  // [n_layers, batch, Hkv, max_len, D]; batch row 0 is used
  int64_t batch = 0, max_len = 0;
};

class Decoder {
 public:
  explicit Decoder(const Dims& d) : d_(d), layers_(static_cast<size_t>(d.n_layers)) {}

  // Scratch for step(). Called once the layers are in place and checked (the binding's finish()):
  // then every size below is the row count or width of a real weight, never a bare integer a
  // caller passed (a head count of 2^40 would otherwise allocate terabytes here).
  void allocate() {
    const Dims& d = d_;
    x_.assign(static_cast<size_t>(d.dim), 0.0f);
    h_.assign(static_cast<size_t>(d.dim), 0.0f);
    qkv_.assign(static_cast<size_t>((d.n_heads + 2 * d.n_kv_heads) * d.head_dim), 0.0f);
    att_.assign(static_cast<size_t>(d.n_heads * d.head_dim), 0.0f);
    gu_.assign(static_cast<size_t>(2 * d.ffn), 0.0f);
    act_.assign(static_cast<size_t>(d.ffn), 0.0f);
    tmp_.assign(static_cast<size_t>(d.dim > d.ffn ? d.dim : d.ffn), 0.0f);
  }

  Dims d_;
  const float* embedding = nullptr;  // [vocab, dim], or null: then only step_row
  const float* rope = nullptr;       // [max_pos, rope_dim / 2, 2] (cos, sin)
  const float* out_norm = nullptr;
  std::vector<Layer> layers_;
  Linear head;
  Cache cache;
  int threads = 1;   // for attention (LUT/dense parts carry their own)
  bool profile = false;
  double linear_seconds = 0.0;  // time inside linear layers while profile is on

  // Writes logits [vocab]. Arguments are validated by the binding.
  void step(int64_t token, int64_t pos, float* logits) { step_row(embedding + token * d_.dim, pos, logits); }

  // The same step from the token's embedding row `e` [dim], given by the caller: for a model whose embedding
  // stays in the file's quantized type (frugalnn.llm.layers.StoredEmbedding), dequantized one row at a time.
  void step_row(const float* e, int64_t pos, float* logits) {
    const Dims& d = d_;
    const bool avx = avx2_active(), avx512 = avx512_active();
    for (int64_t i = 0; i < d.dim; ++i) x_[i] = e[i];
    const float* cs = rope + pos * d.rope_dim;  // rope_dim / 2 pairs of 2 floats
    const int64_t H = d.n_heads, Hkv = d.n_kv_heads, D = d.head_dim, G = H / Hkv;
    const int64_t layer_stride = cache.batch * Hkv * cache.max_len * D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    for (int64_t l = 0; l < d.n_layers; ++l) {
      Layer& L = layers_[static_cast<size_t>(l)];
      llama::rms_norm(avx, x_.data(), L.attn_norm, d.dim, d.eps, h_.data());
      run(L.qkv, h_.data(), qkv_.data());
      float* q = qkv_.data();
      float* k = q + H * D;
      float* v = k + Hkv * D;
      llama::rope(avx, q, H + Hkv, D, d.rope_dim, cs);
      float* kc = cache.k + l * layer_stride;
      float* vc = cache.v + l * layer_stride;
      for (int64_t c = 0; c < Hkv; ++c) {
        float* kd = kc + (c * cache.max_len + pos) * D;
        float* vd = vc + (c * cache.max_len + pos) * D;
        for (int64_t i = 0; i < D; ++i) {
          kd[i] = k[c * D + i];
          vd[i] = v[c * D + i];
        }
      }
      attention(avx, avx512, q, kc, vc, pos + 1, scale, G);
      run(L.o, att_.data(), tmp_.data());
      llama::add(avx, x_.data(), tmp_.data(), d.dim);
      llama::rms_norm(avx, x_.data(), L.ffn_norm, d.dim, d.eps, h_.data());
      run(L.gate_up, h_.data(), gu_.data());
      llama::silu_mul(avx, gu_.data(), gu_.data() + d.ffn, d.ffn, act_.data());
      run(L.down, act_.data(), tmp_.data());
      llama::add(avx, x_.data(), tmp_.data(), d.dim);
    }
    llama::rms_norm(avx, x_.data(), out_norm, d.dim, d.eps, h_.data());
    run(head, h_.data(), logits);
  }

 private:
  std::vector<float> x_, h_, qkv_, att_, gu_, act_, tmp_;
  std::vector<std::vector<float>> scores_;  // per attention task

  // All query heads against the cache, split by kv head; parallel over kv heads only when the
  // context is long enough for the split to pay (a region costs a few microseconds).
  void attention(bool avx, bool avx512, const float* q, const float* kc, const float* vc, int64_t s, float scale, int64_t G) {
    const int64_t Hkv = d_.n_kv_heads, D = d_.head_dim;
    const int t = (threads > 1 && s * D * d_.n_heads >= (int64_t{1} << 16)) ? threads : 1;
    if (static_cast<int64_t>(scores_.size()) < Hkv) scores_.resize(static_cast<size_t>(Hkv));
    parallel_for(Hkv, t, [&](int64_t c) {
      std::vector<float>& sc = scores_[static_cast<size_t>(c)];
      if (static_cast<int64_t>(sc.size()) < s) sc.resize(static_cast<size_t>(cache.max_len));
      const float* keys = kc + c * cache.max_len * D;
      const float* values = vc + c * cache.max_len * D;
      llama::attend(avx, avx512, q + c * G * D, keys, values, G, s, D, scale, sc.data(), att_.data() + c * G * D);
    });
  }

  void run(const Linear& lin, const float* x, float* y) {
    const auto t0 = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    int64_t row = 0;
    for (const Part& p : lin.parts) {
      float* out = y + row;
      if (p.dense) {
        llama::dense(p, x, out);
      } else {
        lut::Weights w = p.lut;
        if (p.two_level) w.kq = &p.kq;
        lut::matmul(x, 1, w, p.shape, out, p.threads, p.cfg);
      }
      row += p.rows;
    }
    if (profile) linear_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

}  // namespace llama
}  // namespace frugalnn
