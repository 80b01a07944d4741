// MixPE group GEMM driver: threads split the weight strips (never a sum, so results do not depend
// on the thread count); within a strip, tokens go through the vector kernel four (AVX2), eight
// (AVX512BW) or sixteen (VNNI) at a time (the unpacked weights of a quad are reused by all of them), the rest together.
// Activations are quantized (W4A8) or summed per group (W4A16) once per call into a per-thread
// workspace. The backend is chosen per call: use_avx512() (VNNI where use_avx512_vnni(), else
// AVX512BW), then use_avx2(), else the serial reference.
//
// Role: driver (activation preparation, strips over threads, token tiles, backend choice, the
// final scale and bias). Checked against: frugalnn/kernels/mixpe_ref.py and the serial backend for
// every thread count (tests/kernels/test_mixpe_kernel.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/mixpe/driver.h
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "mixpe/avx2.h"
#include "mixpe/avx512.h"
#include "mixpe/layout.h"
#include "mixpe/serial.h"

namespace frugalnn {
namespace mixpe {

constexpr int kMR = 4;                // tokens per micro-kernel call: 4 x 2 int16 + 4 x 2 int32 accumulators
constexpr int64_t kTokenChunk = 64;   // tokens whose activations stay in L2 while the strips pass

struct Weights {
  const uint8_t* wp;
  const float* sp;
  const uint8_t* zp;
  Shape S;
};

// Per calling thread, reused across calls (every layer of a model calls this).
template <class T>
T* workspace(std::vector<T>& v, int64_t count) {
  if (static_cast<int64_t>(v.size()) < count) v.resize(static_cast<size_t>(count));
  return v.data();
}

// x [M, K] float32 -> aq [M, Kp], asum [M, groups], sa [M] (serial.h's quantization; O(MK), so the
// serial code serves both backends).
inline void quantize_activations(const float* x, int64_t m, const Shape& S, int8_t* aq, int32_t* asum, float* sa,
                                 int threads) {
  parallel_range(m, threads, std::max<int64_t>(1, 65536 / std::max<int64_t>(S.kp, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) sa[i] = serial::quantize_token(x + i * S.k, S, aq + i * S.kp, asum + i * S.groups);
  });
}

inline void finish_tile(const float* tile, int64_t rows_valid, int64_t i, int64_t n0, int64_t n, float scale,
                        const float* bias, float* out) {
  for (int64_t r = 0; r < rows_valid; ++r) {
    float y = tile[r] * scale;
    if (bias) y = y + bias[n0 + r];
    out[i * n + n0 + r] = y;
  }
}

// The W4A8 micro-kernel for mr tokens (1..tile) of the active vector backend.
struct W4A8Kernels {
  int tile = kMR;
  bool avx512 = false, vnni = false;
#if FRUGALNN_X86
  avx512::StripFn get(int mr) const {
    if (avx512) return avx512::w4a8_kernel(mr, vnni);
    switch (mr) {
      case 4: return &avx2::w4a8_strip<4>;
      case 3: return &avx2::w4a8_strip<3>;
      case 2: return &avx2::w4a8_strip<2>;
      default: return &avx2::w4a8_strip<1>;
    }
  }
#endif
};

inline void w4a8_gemm(const Weights& W, const int8_t* aq, const int32_t* asum, const float* sa, int64_t m,
                      const float* bias, float* out, int threads) {
  const Shape& S = W.S;
  const bool avx2 = use_avx2();
  W4A8Kernels kernels;
  kernels.avx512 = FRUGALNN_X86 && use_avx512();
  kernels.vnni = kernels.avx512 && use_avx512_vnni();
#if FRUGALNN_X86
  if (kernels.avx512) kernels.tile = kernels.vnni ? avx512::kMR : avx512::kMRBW;
#endif
#if FRUGALNN_X86
  // VNNI reads each token tile's activations interleaved (avx512::interleave_tile): one pointer
  // for all 16 tokens. One token is its own interleaving.
  thread_local std::vector<int8_t> interleaved_ws;
  const int8_t* interleaved = aq;
  if (kernels.vnni && m > 1) {
    int8_t* dst = workspace(interleaved_ws, m * S.kp);
    parallel_range(ceil_div(m, avx512::kMR), threads, std::max<int64_t>(1, 16384 / std::max<int64_t>(S.kp, 1)),
                   [&](int64_t t0, int64_t t1) {
                     for (int64_t t = t0; t < t1; ++t) {
                       const int64_t i0 = t * avx512::kMR;
                       avx512::interleave_tile(aq + i0 * S.kp, std::min<int64_t>(avx512::kMR, m - i0), S.kp,
                                               dst + i0 * S.kp);
                     }
                   });
    interleaved = dst;
  }
#endif
  const int64_t min_strips = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, m * S.kp * kRows));
  parallel_range(S.strips, threads, min_strips, [&](int64_t s0, int64_t s1) {
    if (!avx2) {
      serial::w4a8_rows(W.wp, W.sp, W.zp, S, aq, asum, sa, m, bias, out, s0 * kRows, s1 * kRows);
      return;
    }
#if FRUGALNN_X86
    constexpr int kMaxTile = 16;  // the largest token tile of any kernel (avx512::kMR)
    static_assert(avx512::kMR <= kMaxTile && avx512::kMRBW <= kMaxTile && kMR <= kMaxTile, "token tile");
    float tile[kMaxTile * kRows];
    static_assert(kTokenChunk % avx512::kMR == 0, "token tiles start at multiples of avx512::kMR");
    // token chunks outside strips: a chunk's activations (kTokenChunk x Kp bytes) stay in L2 while
    // every strip of this thread streams past them
    for (int64_t c0 = 0; c0 < m; c0 += kTokenChunk) {
      const int64_t c1 = std::min(m, c0 + kTokenChunk);
      for (int64_t s = s0; s < s1; ++s) {
        const uint8_t* wp = W.wp + s * S.blocks * kQuadBytes;
        const float* sp = W.sp + s * S.groups * kRows;
        const uint8_t* zp = W.zp + s * S.groups * kRows;
        const int64_t n0 = s * kRows, valid = std::min(kRows, S.n - n0);
        for (int64_t i = c0; i < c1;) {
          const int mr = static_cast<int>(std::min<int64_t>(kernels.tile, c1 - i));
          const int8_t* a[kMaxTile];
          const int32_t* as[kMaxTile];
          for (int t = 0; t < mr; ++t) {
            a[t] = kernels.vnni ? interleaved + i * S.kp : aq + (i + t) * S.kp;  // VNNI: the tile's base
            as[t] = asum + (i + t) * S.groups;
          }
          kernels.get(mr)(wp, sp, zp, S, a, as, tile);
          for (int t = 0; t < mr; ++t) finish_tile(tile + t * kRows, valid, i + t, n0, S.n, sa[i + t], bias, out);
          i += mr;
        }
      }
    }
#endif
  });
}

inline void w4a16_gemm(const Weights& W, const float* af, const float* afsum, int64_t m, const float* bias,
                       float* out, int threads, bool each = false) {
  const Shape& S = W.S;
  const bool avx2 = use_avx2(), avx512 = FRUGALNN_X86 && use_avx512();
  const int64_t min_strips = std::max<int64_t>(1, (int64_t(1) << 17) / std::max<int64_t>(1, m * S.kp * kRows));
  parallel_range(S.strips, threads, min_strips, [&](int64_t s0, int64_t s1) {
    if (!avx2) {
      serial::w4a16_rows(W.wp, W.sp, W.zp, S, af, afsum, m, bias, out, s0 * kRows, s1 * kRows, each);
      return;
    }
#if FRUGALNN_X86
    float tile[kRows];
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t n0 = s * kRows, valid = std::min(kRows, S.n - n0);
      for (int64_t i = 0; i < m; ++i) {
        const uint8_t* wp = W.wp + s * S.blocks * kQuadBytes;
        const float* sp = W.sp + s * S.groups * kRows;
        const uint8_t* zp = W.zp + s * S.groups * kRows;
        const float* x = af + i * S.kp;
        const float* xs = afsum + i * S.groups;
        if (avx512 && each) avx512::w4a16_strip<true>(wp, sp, zp, S, x, xs, tile);
        else if (avx512) avx512::w4a16_strip<false>(wp, sp, zp, S, x, xs, tile);
        else if (each) avx2::w4a16_strip<true>(wp, sp, zp, S, x, xs, tile);
        else avx2::w4a16_strip<false>(wp, sp, zp, S, x, xs, tile);
        finish_tile(tile, valid, i, n0, S.n, 1.0f, bias, out);
      }
    }
#endif
  });
}

// x [M, K] float32 (fp16/bf16 values for W4A16) -> padded activations and group sums.
inline void widen_activations(const float* x, int64_t m, const Shape& S, float* af, float* afsum, int threads) {
  parallel_range(m, threads, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t k = 0; k < S.kp; ++k) af[i * S.kp + k] = k < S.k ? x[i * S.k + k] : 0.0f;
      for (int64_t g = 0; g < S.groups; ++g) {
        float s = 0.0f;
        for (int64_t k = g * S.group; k < (g + 1) * S.group; ++k) s = s + af[i * S.kp + k];
        afsum[i * S.groups + g] = s;
      }
    }
  });
}

}  // namespace mixpe
}  // namespace frugalnn
