// Packed, blocked DFP16 GEMM driver for the AVX2 micro-kernel (avx2.h). Semantics and the float
// order it must reproduce: serial.h.
//
// K layout. vpmaddwd multiplies int16 pairs and adds each pair's two products into one int32
// lane, so K is consumed two values at a time, and a pair must never straddle a chunk: each chunk
// of c values becomes ceil(c / 2) pairs, an odd chunk padded with one zero (the default c = 31
// costs 1/32 extra MACs). Chunks are grouped into K panels (whole chunks only, so a chunk's int32
// sums never leave the registers).
//
// Packed operands (int32 words, each holding the int16 pair (x[k], x[k+1]), low half first):
//   A -> tiles of kMR rows:     ap[tile][pair][r]      (rows past M are zero)
//   B -> strips of kNR columns: bp[strip][pair][col]   (columns past N are zero)
// so that one broadcast of ap[..][pair][r] times one load of bp[..][pair][0..7] gives, per lane,
// A[i,k] B[k,j] + A[i,k+1] B[k+1,j].
//
// Blocking: tasks of kMC rows x kNC columns own their part of C (no shared sums); each walks the
// K panels in order and, per panel, every B strip against every A tile of the task. The
// micro-kernel keeps an MR x 16 tile of int32 sums in registers for one chunk, then adds
// float(sum) into an MR x 16 float tile in L1; the float tile is carried in C between panels and
// finished (scale, bias) after the last one. Panels are long (about 2048 values of K: a B strip is
// then 64 KiB, streamed from L2 by the prefetchers): every panel costs a round trip of the float
// tile through C, and measured at 1024^3 and 2048^3 on Zen 4 panels of 256..512 values lost 5-20%
// to it. Which operand is packed ahead and which just before use: see gemm() below.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "dfp/serial.h"

namespace frugalnn {
namespace dfp {

constexpr int kMR = 6;                // rows per micro-tile: 6 x 2 accumulators = 12 of 16 ymm registers
constexpr int kNR = 16;               // columns per strip: two 8-lane vectors
constexpr int64_t kPanelPairs = 1024;  // K panel target: 2048 values of K (see the blocking note)
constexpr int64_t kMC = 16 * kMR;     // rows per task
constexpr int64_t kNC = 16 * kNR;     // columns per task
constexpr int64_t kStripGroup = 4;    // B strips per packing task
constexpr int64_t kStreamBytes = int64_t(16) << 20;  // C at least this large: streaming stores
constexpr int64_t kLateBBytes = int64_t(256) << 10;  // a task's B panel packed just before use (in L2)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct KLayout {
  int64_t k = 0, chunk = 1, chunk_pairs = 1, n_chunks = 0, pairs = 0, last_pairs = 0;
  int64_t chunks_per_panel = 1, panels = 0;

  KLayout(int64_t k_, int64_t chunk_, int64_t panel_pairs = kPanelPairs) : k(k_) {
    chunk = std::max<int64_t>(1, std::min(chunk_, std::max<int64_t>(k_, 1)));
    chunk_pairs = ceil_div(chunk, 2);
    n_chunks = ceil_div(k, chunk);
    const int64_t last_len = k - (n_chunks - 1) * chunk;
    last_pairs = n_chunks ? ceil_div(last_len, 2) : 0;
    pairs = n_chunks ? (n_chunks - 1) * chunk_pairs + last_pairs : 0;
    // Panels of about panel_pairs, balanced and up to 25% longer rather than leaving a short last
    // one: every panel costs a round trip of C (2048 = 66 chunks of 31 would otherwise be 64 + 2).
    const int64_t target = std::max<int64_t>(1, panel_pairs / chunk_pairs);
    panels = n_chunks ? std::max<int64_t>(1, ceil_div(n_chunks * 4, target * 5)) : 0;
    chunks_per_panel = panels ? ceil_div(n_chunks, panels) : 1;
    panels = panels ? ceil_div(n_chunks, chunks_per_panel) : 0;
  }
};

// The int16 pair (lo, hi) as one word, lo in the low half (what a little-endian load of two
// consecutive int16 values gives).
inline uint32_t pair_word(int16_t lo, int16_t hi) {
  return static_cast<uint32_t>(static_cast<uint16_t>(lo)) | (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
}

// Words of the packed operands, or -1 when the count overflows int64 (checked by the binding
// before anything is allocated: M or N may be huge when the other side is empty).
inline int64_t packed_words(int64_t m, int64_t n, int64_t k, int64_t chunk) {
  const KLayout L(k, chunk);
  int64_t rows, cols, both, total;
  if (__builtin_mul_overflow(m / kMR + 4, int64_t(kMR), &rows) ||
      __builtin_mul_overflow(n / kNR + 1, int64_t(kNR), &cols) || __builtin_add_overflow(rows, cols, &both) ||
      __builtin_mul_overflow(both, L.pairs, &total) || __builtin_mul_overflow(total, int64_t(4), &both))
    return -1;
  return total;
}

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

// Micro-kernel contract (Ops::kernel(mr)): adds, for each of `n_chunks` chunks of `chunk_pairs`
// pairs (the last one `last_pairs`), float(int32 chunk sums) into the kMR x 16 float tile
// (row stride 16), in chunk order; with `first` the first chunk writes the tile instead (the
// first panel: no zero fill). a: ap + first pair * kMR, b: bp + first pair * kNR.
using KernelFn = void (*)(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                          int64_t last_pairs, float* tile, bool first);

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

}  // namespace dfp
}  // namespace frugalnn
