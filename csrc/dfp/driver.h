// Packed, blocked DFP16 GEMM driver for the AVX2 micro-kernel (avx2.h). Semantics and the float
// order it must reproduce: serial.h.
//
// K layout and packed operands: layout.h.
//
// Blocking: tasks of kMC rows x kNC columns own their part of C (no shared sums); each walks the
// K panels in order and, per panel, every B strip against every A tile of the task. The
// micro-kernel keeps an MR x 16 tile of int32 sums in registers for one chunk, then adds
// float(sum) into an MR x 16 float tile in L1; the float tile is carried in C between panels and
// finished (scale, bias) after the last one. Panels are long (about 2048 values of K: a B strip is
// then 64 KiB, streamed from L2 by the prefetchers): every panel costs a round trip of the float
// tile through C, and measured at 1024^3 and 2048^3 on Zen 4 panels of 256..512 values lost 5-20%
// to it. Which operand is packed ahead and which just before use: see gemm() below.
//
// Backend choice: the entry points at the end (run_gemm, max_abs, max_abs_bits, quantize,
// probe_macs) pick the AVX2 kernels or the serial reference (use_avx2()); the binding calls only
// these. Under avx512 the GEMM runs the AVX-512 micro-kernel (avx512.h: vpdpwssd where
// use_avx512_vnni(), else vpmaddwd + vpaddd on zmm) on the same packed operands; the O(n) helpers
// (max |x|, quantize) keep their AVX2 code.
//
// Role: driver (packing tasks, blocking, threads, backend choice). Checked against:
// frugalnn/kernels/dfp_ref.py bit for bit on odd shapes, every chunk length, both layouts of B,
// with and without bias, for every thread count, on both backends (tests/kernels/test_dfp_kernel.py,
// tests/dfp/test_gemm.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/driver.h
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "dfp/avx2.h"
#include "dfp/avx512.h"
#include "dfp/layout.h"
#include "dfp/serial.h"

namespace frugalnn {
namespace dfp {

constexpr int64_t kMC = 16 * kMR;     // rows per task
constexpr int64_t kNC = 16 * kNR;     // columns per task
constexpr int64_t kStripGroup = 4;    // B strips per packing task
constexpr int64_t kStreamBytes = int64_t(16) << 20;  // C at least this large: streaming stores
constexpr int64_t kLateBBytes = int64_t(256) << 10;  // a task's B panel packed just before use (in L2)

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A 64-byte aligned buffer kept per calling thread across calls (every layer of a model calls the
// GEMM; reusing warm pages beats faulting in fresh ones). Capacity above kKeepBytes is released.
class Workspace {
 public:
  uint32_t* get(size_t words) {
    if (words > cap_) {
      const size_t bytes = (words * 4 + 63) / 64 * 64;
      buf_.reset(static_cast<uint32_t*>(std::aligned_alloc(64, bytes)));
      if (!buf_) throw std::bad_alloc();
      cap_ = words;
    }
    return buf_.get();
  }
  void trim() {
    constexpr size_t kKeepBytes = size_t(64) << 20;
    if (cap_ * 4 > kKeepBytes) {
      buf_.reset();
      cap_ = 0;
    }
  }

 private:
  std::unique_ptr<uint32_t[], AlignedFree> buf_;
  size_t cap_ = 0;
};

struct Problem {
  const int16_t* a;
  const int16_t* b;
  float* c;
  int64_t m, n, k;
  bool transpose_b;
  Scale scale;
  const float* bias;
};

// Packing. Ops provides the vector paths for whole tiles and strips:
//   Ops::gather_pairs<R>(src, pairs, dst, stride): dst[p * stride + r] = the pair at src[r] + 2p,
//     for r < R and p below a multiple of 8 it chooses; returns how many pairs it wrote
//   Ops::interleave16(lo, hi, dst): dst[c] = (lo[c], hi[c]) for 16 columns (hi null: zeros)
// and the loops below finish what they leave (tails, the zero partner of an odd chunk, padding).

inline void gather_pairs_scalar(const int16_t* const* src, int rows, int64_t p0, int64_t len, uint32_t* dst,
                                int64_t stride) {
  for (int r = 0; r < rows; ++r) {
    int64_t p = p0;
    for (; 2 * p + 1 < len; ++p) {
      uint32_t w;
      std::memcpy(&w, src[r] + 2 * p, 4);  // little endian: x[k] is the low half
      dst[p * stride + r] = w;
    }
    if (2 * p < len) dst[p * stride + r] = pair_word(src[r][2 * p], 0);
  }
}

// Chunks [q0, q1) of tile t of A (rows t*kMR ...) into dst[pair - first pair of q0][r].
template <class Ops>
void pack_a_tile(const Problem& pr, const KLayout& L, int64_t t, int64_t q0, int64_t q1, uint32_t* dst) {
  const int64_t i0 = t * kMR;
  const int rows = static_cast<int>(std::min<int64_t>(kMR, pr.m - i0));
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t k0 = q * L.chunk, len = std::min(L.chunk, L.k - k0), pairs = ceil_div(len, 2);
    uint32_t* d = dst + (q - q0) * L.chunk_pairs * kMR;
    const int16_t* src[kMR];
    for (int r = 0; r < rows; ++r) src[r] = pr.a + (i0 + r) * L.k + k0;
    const int64_t done = rows == kMR ? Ops::template gather_pairs<kMR>(src, len / 2, d, kMR) : 0;
    gather_pairs_scalar(src, rows, done, len, d, kMR);
    for (int64_t p = 0; p < pairs; ++p)
      for (int r = rows; r < kMR; ++r) d[p * kMR + r] = 0;
  }
}

// Chunks [q0, q1) of strip s of B (columns s*kNR ...) into dst[pair - first pair of q0][col].
template <class Ops>
void pack_b_strip(const Problem& pr, const KLayout& L, int64_t s, int64_t q0, int64_t q1, uint32_t* dst) {
  const int64_t j0 = s * kNR;
  const int cols = static_cast<int>(std::min<int64_t>(kNR, pr.n - j0));
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t k0 = q * L.chunk, len = std::min(L.chunk, L.k - k0), pairs = ceil_div(len, 2);
    uint32_t* d = dst + (q - q0) * L.chunk_pairs * kNR;
    if (pr.transpose_b) {  // column j of B is row j of B^T: contiguous in k
      const int16_t* src[kNR];
      for (int c = 0; c < cols; ++c) src[c] = pr.b + (j0 + c) * L.k + k0;
      const int64_t done = cols == kNR ? Ops::template gather_pairs<kNR>(src, len / 2, d, kNR) : 0;
      gather_pairs_scalar(src, cols, done, len, d, kNR);
    } else {  // rows k and k+1 of B interleaved column by column
      for (int64_t p = 0; p < pairs; ++p) {
        const int16_t* lo = pr.b + (k0 + 2 * p) * pr.n + j0;
        const int16_t* hi = 2 * p + 1 < len ? lo + pr.n : nullptr;
        if (cols == kNR) {
          Ops::interleave16(lo, hi, d + p * kNR);
        } else {
          for (int c = 0; c < cols; ++c) d[p * kNR + c] = pair_word(lo[c], hi ? hi[c] : 0);
        }
      }
    }
    for (int64_t p = 0; p < pairs; ++p)
      for (int c = cols; c < kNR; ++c) d[p * kNR + c] = 0;
  }
}

// mr rows of `cols` floats; full 16-float rows as fixed-size copies (the compiler inlines them,
// where a variable-size memcpy is a library call per row: 10% of the GEMM at 1024^3).
inline void copy_rows(const float* src, int64_t lds, float* dst, int64_t ldd, int mr, int64_t cols) {
  if (cols == kNR) {
    for (int r = 0; r < mr; ++r) std::memcpy(dst + r * ldd, src + r * lds, kNR * sizeof(float));
  } else {
    for (int r = 0; r < mr; ++r) std::memcpy(dst + r * ldd, src + r * lds, static_cast<size_t>(cols) * sizeof(float));
  }
}

// Chunks [q0, q1) of strips [s0, s1) of B into dst[strip - s0][pair - first pair of q0][col], each
// panel of strips pitch words apart. Non-transposed B is read row pair by row pair across all the
// strips (whole row segments: the hardware prefetchers stream them), B^T strip by strip.
template <class Ops>
void pack_b_strips(const Problem& pr, const KLayout& L, int64_t s0, int64_t s1, int64_t q0, int64_t q1,
                   uint32_t* dst, int64_t pitch) {
  if (pr.transpose_b) {
    for (int64_t s = s0; s < s1; ++s) pack_b_strip<Ops>(pr, L, s, q0, q1, dst + (s - s0) * pitch);
    return;
  }
  const int64_t full = std::min(s1, pr.n / kNR);  // strips [s0, full) have 16 columns
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t k0 = q * L.chunk, len = std::min(L.chunk, L.k - k0), pairs = ceil_div(len, 2);
    const int64_t off = (q - q0) * L.chunk_pairs * kNR;
    for (int64_t p = 0; p < pairs; ++p) {
      const int16_t* lo = pr.b + (k0 + 2 * p) * pr.n;
      const int16_t* hi = 2 * p + 1 < len ? lo + pr.n : nullptr;
      for (int64_t s = s0; s < full; ++s)
        Ops::interleave16(lo + s * kNR, hi ? hi + s * kNR : nullptr, dst + (s - s0) * pitch + off + p * kNR);
    }
  }
  if (full < s1) pack_b_strip<Ops>(pr, L, s1 - 1, q0, q1, dst + (s1 - 1 - s0) * pitch);  // the partial strip
}

// One (A tile, B strip, panel) block: the float tile comes from C (or is written first, on the
// first panel), takes the panel's chunks, and goes back to C (finished after the last panel).
template <class Ops>
inline void tile_panel(const Problem& pr, const KLayout& L, const uint32_t* a, const uint32_t* b, int64_t i0,
                       int64_t j0, int64_t pnl, float* tile, bool stream) {
  const int64_t q0 = pnl * L.chunks_per_panel, nq = std::min(L.chunks_per_panel, L.n_chunks - q0);
  const bool last = pnl + 1 == L.panels;
  const int mr = static_cast<int>(std::min<int64_t>(kMR, pr.m - i0));
  const int64_t cols = std::min<int64_t>(kNR, pr.n - j0);
  float* dst = pr.c + i0 * pr.n + j0;
  if (pnl > 0) copy_rows(dst, pr.n, tile, kNR, mr, cols);
  Ops::kernel(mr)(a, b, nq, L.chunk_pairs, last ? L.last_pairs : L.chunk_pairs, tile, pnl == 0);
  if (last) {
    Ops::finish(tile, mr, cols, pr.scale, pr.bias ? pr.bias + j0 : nullptr, dst, pr.n, stream);
  } else {
    copy_rows(tile, kNR, dst, pr.n, mr, cols);
  }
}

// Rows [r0, r1) x columns [c0, c1) of C from the packed operands; a null ap or bp means that side
// is packed panel by panel right before use into a per-thread buffer (see gemm): A tile by tile
// (the loop then runs tiles outside strips, so each tile is packed once), or B strip by strip.
template <class Ops>
void compute_block(const Problem& pr, const KLayout& L, const uint32_t* ap, const uint32_t* bp, int64_t r0,
                   int64_t r1, int64_t c0, int64_t c1, bool stream) {
  alignas(64) float tile[kMR * kNR];
  thread_local Workspace local_ws;
  const int64_t s0 = c0 / kNR, s1 = ceil_div(c1, kNR), panel_words = L.chunks_per_panel * L.chunk_pairs;
  uint32_t* local = ap && bp ? nullptr
                             : local_ws.get(static_cast<size_t>(panel_words * (ap ? kNR * (s1 - s0) : kMR)));
  for (int64_t pnl = 0; pnl < L.panels; ++pnl) {
    const int64_t q0 = pnl * L.chunks_per_panel, nq = std::min(L.chunks_per_panel, L.n_chunks - q0);
    const int64_t pair0 = q0 * L.chunk_pairs;
    if (!ap) {
      for (int64_t i0 = r0; i0 < r1; i0 += kMR) {
        pack_a_tile<Ops>(pr, L, i0 / kMR, q0, q0 + nq, local);
        for (int64_t j0 = c0; j0 < c1; j0 += kNR)
          tile_panel<Ops>(pr, L, local, bp + (j0 / kNR * L.pairs + pair0) * kNR, i0, j0, pnl, tile, stream);
      }
      continue;
    }
    if (!bp) pack_b_strips<Ops>(pr, L, s0, s1, q0, q0 + nq, local, panel_words * kNR);
    for (int64_t j0 = c0; j0 < c1; j0 += kNR) {
      const int64_t s = j0 / kNR;
      const uint32_t* bs = bp ? bp + (s * L.pairs + pair0) * kNR : local + (s - s0) * panel_words * kNR;
      for (int64_t i0 = r0; i0 < r1; i0 += kMR)
        tile_panel<Ops>(pr, L, ap + (i0 / kMR * L.pairs + pair0) * kMR, bs, i0, j0, pnl, tile, stream);
    }
  }
  local_ws.trim();
  if (stream) Ops::fence();  // streamed stores are weakly ordered: drain them before the task ends
}

// Ops provides kernel(mr) -> KernelFn, finish(tile, mr, cols, scale, bias_or_null, dst, ldc, stream),
// fence() and the packing primitives above.
//
// Packing strategy. An operand read by several tasks is packed whole, in parallel, before the
// products. When one side fits a single task block (M <= kMC rows, or N <= kNC columns: the
// channel counts of a small CNN's convolutions), the other side's tiles or strips are each read by
// exactly one task, so that side is packed panel by panel right before use into an L1/L2 buffer:
// it then crosses memory once, where packing it whole writes it and reads it back (measured at
// M = 16, K = 144, N = 25088 on Zen 4: packing B whole was 40% of the time).
template <class Ops>
void gemm(const Problem& pr, int64_t chunk, int threads) {
  if (pr.m == 0 || pr.n == 0) return;
  const int64_t strips = ceil_div(pr.n, kNR);
  const bool b_late = pr.m <= kMC, a_late = !b_late && pr.n <= kNC;
  // Late B: a task packs its whole column block (up to kNC / kNR strips) per panel, so the panel
  // is sized to keep that buffer within kLateBBytes.
  const int64_t panel_pairs = b_late ? kLateBBytes / (4 * kNR * std::min(strips, kNC / kNR)) : kPanelPairs;
  const KLayout L(pr.k, chunk, panel_pairs);
  if (L.pairs == 0) {  // K = 0: every sum is empty
    alignas(64) const float zero_tile[kNR] = {};
    for (int64_t i = 0; i < pr.m; ++i)
      for (int64_t j0 = 0; j0 < pr.n; j0 += kNR) {
        const int cols = static_cast<int>(std::min<int64_t>(kNR, pr.n - j0));
        Ops::finish(zero_tile, 1, cols, pr.scale, pr.bias ? pr.bias + j0 : nullptr, pr.c + i * pr.n + j0, pr.n,
                    false);
      }
    return;
  }
  const int64_t tiles = ceil_div(pr.m, kMR);
  thread_local Workspace ws;
  Workspace& w = ws;  // a named reference: workers must use the caller's buffer, not their own
  const int64_t a_words = a_late ? 0 : ceil_div(tiles * kMR * L.pairs, 16) * 16;  // B strips start 64-byte aligned
  uint32_t* base = w.get(static_cast<size_t>(a_words + (b_late ? 0 : strips * kNR * L.pairs)));
  uint32_t* ap = a_late ? nullptr : base;
  uint32_t* bp = b_late ? nullptr : base + a_words;
  const int64_t a_tasks = a_late ? 0 : tiles, b_tasks = b_late ? 0 : ceil_div(strips, kStripGroup);
  parallel_for(a_tasks + b_tasks, threads, [&](int64_t task) {
    if (task < a_tasks) return pack_a_tile<Ops>(pr, L, task, 0, L.n_chunks, ap + task * kMR * L.pairs);
    const int64_t s0 = (task - a_tasks) * kStripGroup, s1 = std::min(strips, s0 + kStripGroup);
    for (int64_t s = s0; s < s1; ++s) pack_b_strip<Ops>(pr, L, s, 0, L.n_chunks, bp + s * kNR * L.pairs);
  });
  // A C far larger than the caches is written with streaming stores (no read-for-ownership of lines
  // that are overwritten whole: 20% at M = 288, K = 32, N = 25088); rows must be 32-byte aligned.
  const bool stream = pr.m * pr.n * 4 >= kStreamBytes &&
                      ((reinterpret_cast<uintptr_t>(pr.c) | static_cast<uintptr_t>(pr.n * 4)) & 31) == 0;
  const int64_t mblocks = ceil_div(pr.m, kMC), nblocks = ceil_div(pr.n, kNC);
  parallel_for(mblocks * nblocks, threads, [&](int64_t task) {
    const int64_t mb = task / nblocks, nb = task % nblocks;
    compute_block<Ops>(pr, L, ap, bp, mb * kMC, std::min(pr.m, (mb + 1) * kMC), nb * kNC,
                       std::min(pr.n, (nb + 1) * kNC), stream);
  });
  w.trim();
}

// Backend choice. The entry points the binding calls: each runs the AVX2 kernels when use_avx2()
// (and the build is x86), else the serial reference.

// Whether run_gemm takes the packed AVX2 path (the binding checks packed_words for it first).
inline bool gemm_uses_avx2() { return FRUGALNN_X86 && use_avx2(); }

// The GEMM of serial.h on the backend `avx2` (gemm_uses_avx2() of the caller, read once).
inline void run_gemm(const int16_t* a, const int16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t chunk,
                     bool transpose_b, int64_t scale_exp, const float* bias, int threads, bool avx2) {
#if FRUGALNN_X86
  if (avx2) {
    const Problem pr{a, b, c, m, n, k, transpose_b, make_scale(scale_exp), bias};
    if (use_avx512_vnni()) return gemm<avx512::Ops<true>>(pr, chunk, threads);
    if (use_avx512()) return gemm<avx512::Ops<false>>(pr, chunk, threads);
    return gemm<avx2::Ops>(pr, chunk, threads);
  }
#endif
  serial::gemm(a, b, c, m, n, k, chunk, transpose_b, scale_exp, bias, threads);
}

// max |x| over n int16 values, on the calling thread.
inline uint32_t max_abs(const int16_t* x, int64_t n) {
#if FRUGALNN_X86
  return use_avx2() ? avx2::max_abs(x, n) : serial::max_abs(x, n);
#else
  return serial::max_abs(x, n);
#endif
}

// max of the float32 bit patterns with the sign cleared, over n values, on the calling thread.
inline uint32_t max_abs_bits(const float* x, int64_t n) {
#if FRUGALNN_X86
  return use_avx2() ? avx2::max_abs_bits(x, n) : serial::max_abs_bits(x, n);
#else
  return serial::max_abs_bits(x, n);
#endif
}

// serial::quantize of n values (int8 mantissas: the serial loop on both backends).
inline void quantize(const float* x, int64_t n, int32_t e, int bits, int8_t* m) { serial::quantize(x, n, e, bits, m); }

inline void quantize(const float* x, int64_t n, int32_t e, int bits, int16_t* m) {
#if FRUGALNN_X86
  if (use_avx2()) return avx2::quantize16(x, n, e, bits, m);
#endif
  serial::quantize(x, n, e, bits, m);
}

#if FRUGALNN_X86
// Multiply-accumulates of `iters` iterations of the register-only probe (fma: 8-lane FMA, else
// vpmaddwd + vpaddd). AVX2 only: the caller checks cpu_supports_avx2().
inline double probe_macs(bool fma, int64_t iters) {
  return fma ? avx2::probe_fma_macs(iters) : avx2::probe_madd_macs(iters);
}
#endif

}  // namespace dfp
}  // namespace frugalnn
