// Packed, blocked DFP16 GEMM driver for the AVX2 micro-kernel (avx2.h). Semantics and the float
// order it must reproduce: serial.h.
//
// K layout. vpmaddwd multiplies int16 pairs and adds each pair's two products into one int32
// lane, so K is consumed two values at a time, and a pair must never straddle a chunk: each chunk
// of c values becomes ceil(c / 2) pairs, an odd chunk padded with one zero (the default c = 31
// costs 1/32 extra MACs). Chunks are grouped into K panels of about kPanelPairs pairs (whole
// chunks only, so a chunk's int32 sums never leave the registers).
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
// finished (scale, bias) after the last one. Panels are long (2048 values of K: a B strip is then
// 64 KiB, streamed from L2 by the prefetchers): every panel costs a round trip of the float tile
// through C, and measured at 1024^3 and 2048^3 on Zen 4 panels of 256..512 values lost 5-20% to it.
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

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct KLayout {
  int64_t k = 0, chunk = 1, chunk_pairs = 1, n_chunks = 0, pairs = 0, last_pairs = 0;
  int64_t chunks_per_panel = 1, panels = 0;

  KLayout(int64_t k_, int64_t chunk_) : k(k_) {
    chunk = std::max<int64_t>(1, std::min(chunk_, std::max<int64_t>(k_, 1)));
    chunk_pairs = ceil_div(chunk, 2);
    n_chunks = ceil_div(k, chunk);
    const int64_t last_len = k - (n_chunks - 1) * chunk;
    last_pairs = n_chunks ? ceil_div(last_len, 2) : 0;
    pairs = n_chunks ? (n_chunks - 1) * chunk_pairs + last_pairs : 0;
    chunks_per_panel = std::max<int64_t>(1, kPanelPairs / chunk_pairs);
    panels = ceil_div(n_chunks, chunks_per_panel);
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

// Tile t of A (rows t*kMR ...) into ap[pair][r].
inline void pack_a_tile(const Problem& pr, const KLayout& L, int64_t t, uint32_t* ap) {
  const int64_t i0 = t * kMR, rows = std::min<int64_t>(kMR, pr.m - i0);
  for (int64_t q = 0; q < L.n_chunks; ++q) {
    const int64_t k0 = q * L.chunk, len = std::min(L.chunk, L.k - k0);
    uint32_t* dst = ap + q * L.chunk_pairs * kMR;
    for (int64_t r = 0; r < rows; ++r) {
      const int16_t* src = pr.a + (i0 + r) * L.k + k0;
      int64_t p = 0;
      for (; 2 * p + 1 < len; ++p) {
        uint32_t w;
        std::memcpy(&w, src + 2 * p, 4);  // little endian: x[k] is the low half
        dst[p * kMR + r] = w;
      }
      if (2 * p < len) dst[p * kMR + r] = pair_word(src[2 * p], 0);
    }
    const int64_t pairs = ceil_div(len, 2);
    for (int64_t p = 0; p < pairs; ++p)
      for (int64_t r = rows; r < kMR; ++r) dst[p * kMR + r] = 0;
  }
}

// Strip s of B (columns s*kNR ...) into bp[pair][col].
inline void pack_b_strip(const Problem& pr, const KLayout& L, int64_t s, uint32_t* bp) {
  const int64_t j0 = s * kNR, cols = std::min<int64_t>(kNR, pr.n - j0);
  for (int64_t q = 0; q < L.n_chunks; ++q) {
    const int64_t k0 = q * L.chunk, len = std::min(L.chunk, L.k - k0), pairs = ceil_div(len, 2);
    uint32_t* dst = bp + q * L.chunk_pairs * kNR;
    if (pr.transpose_b) {  // column j of B is row j of B^T: contiguous in k
      for (int64_t c = 0; c < cols; ++c) {
        const int16_t* src = pr.b + (j0 + c) * L.k + k0;
        int64_t p = 0;
        for (; 2 * p + 1 < len; ++p) {
          uint32_t w;
          std::memcpy(&w, src + 2 * p, 4);
          dst[p * kNR + c] = w;
        }
        if (2 * p < len) dst[p * kNR + c] = pair_word(src[2 * p], 0);
      }
    } else {  // rows k and k+1 of B interleaved column by column
      for (int64_t p = 0; p < pairs; ++p) {
        const int16_t* lo = pr.b + (k0 + 2 * p) * pr.n + j0;
        const int16_t* hi = 2 * p + 1 < len ? lo + pr.n : nullptr;
        for (int64_t c = 0; c < cols; ++c) dst[p * kNR + c] = pair_word(lo[c], hi ? hi[c] : 0);
      }
    }
    for (int64_t p = 0; p < pairs; ++p)
      for (int64_t c = cols; c < kNR; ++c) dst[p * kNR + c] = 0;
  }
}

// Micro-kernel contract (Ops::kernel(mr)): adds, for each of `n_chunks` chunks of `chunk_pairs`
// pairs (the last one `last_pairs`), float(int32 chunk sums) into the kMR x 16 float tile
// (row stride 16), in chunk order. a: ap + first pair * kMR, b: bp + first pair * kNR.
using KernelFn = void (*)(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                          int64_t last_pairs, float* tile);

// mr rows of `cols` floats; full 16-float rows as fixed-size copies (the compiler inlines them,
// where a variable-size memcpy is a library call per row: 10% of the GEMM at 1024^3).
inline void copy_rows(const float* src, int64_t lds, float* dst, int64_t ldd, int mr, int64_t cols) {
  if (cols == kNR) {
    for (int r = 0; r < mr; ++r) std::memcpy(dst + r * ldd, src + r * lds, kNR * sizeof(float));
  } else {
    for (int r = 0; r < mr; ++r) std::memcpy(dst + r * ldd, src + r * lds, static_cast<size_t>(cols) * sizeof(float));
  }
}

template <class Ops>
void compute_block(const Problem& pr, const KLayout& L, const uint32_t* ap, const uint32_t* bp, int64_t r0,
                   int64_t r1, int64_t c0, int64_t c1) {
  alignas(64) float tile[kMR * kNR];
  for (int64_t pnl = 0; pnl < L.panels; ++pnl) {
    const int64_t q0 = pnl * L.chunks_per_panel, nq = std::min(L.chunks_per_panel, L.n_chunks - q0);
    const bool last = pnl + 1 == L.panels;
    const int64_t pair0 = q0 * L.chunk_pairs, last_pairs = last ? L.last_pairs : L.chunk_pairs;
    for (int64_t j0 = c0; j0 < c1; j0 += kNR) {
      const int64_t s = j0 / kNR, cols = std::min<int64_t>(kNR, pr.n - j0);
      const uint32_t* bs = bp + (s * L.pairs + pair0) * kNR;
      for (int64_t i0 = r0; i0 < r1; i0 += kMR) {
        const int64_t t = i0 / kMR;
        const int mr = static_cast<int>(std::min<int64_t>(kMR, pr.m - i0));
        float* dst = pr.c + i0 * pr.n + j0;
        if (pnl == 0) {
          std::fill(tile, tile + kMR * kNR, 0.0f);
        } else {
          copy_rows(dst, pr.n, tile, kNR, mr, cols);
        }
        Ops::kernel(mr)(ap + (t * L.pairs + pair0) * kMR, bs, nq, L.chunk_pairs, last_pairs, tile);
        if (last) {
          Ops::finish(tile, mr, cols, pr.scale, pr.bias ? pr.bias + j0 : nullptr, dst, pr.n);
        } else {
          copy_rows(tile, kNR, dst, pr.n, mr, cols);
        }
      }
    }
  }
}

// Ops provides kernel(mr) -> KernelFn and finish(tile, mr, cols, scale, bias_or_null, dst, ldc).
template <class Ops>
void gemm(const Problem& pr, int64_t chunk, int threads) {
  if (pr.m == 0 || pr.n == 0) return;
  const KLayout L(pr.k, chunk);
  if (L.pairs == 0) {  // K = 0: every sum is empty
    alignas(64) const float zero_tile[kNR] = {};
    for (int64_t i = 0; i < pr.m; ++i)
      for (int64_t j0 = 0; j0 < pr.n; j0 += kNR) {
        const int cols = static_cast<int>(std::min<int64_t>(kNR, pr.n - j0));
        Ops::finish(zero_tile, 1, cols, pr.scale, pr.bias ? pr.bias + j0 : nullptr, pr.c + i * pr.n + j0, pr.n);
      }
    return;
  }
  const int64_t tiles = ceil_div(pr.m, kMR), strips = ceil_div(pr.n, kNR);
  thread_local Workspace ws;
  Workspace& w = ws;  // a named reference: workers must use the caller's buffer, not their own
  const int64_t a_words = ceil_div(tiles * kMR * L.pairs, 16) * 16;  // B strips start 64-byte aligned
  uint32_t* ap = w.get(static_cast<size_t>(a_words + strips * kNR * L.pairs));
  uint32_t* bp = ap + a_words;
  const int64_t groups = ceil_div(strips, kStripGroup);
  parallel_for(tiles + groups, threads, [&](int64_t task) {
    if (task < tiles) return pack_a_tile(pr, L, task, ap + task * kMR * L.pairs);
    const int64_t s0 = (task - tiles) * kStripGroup, s1 = std::min(strips, s0 + kStripGroup);
    for (int64_t s = s0; s < s1; ++s) pack_b_strip(pr, L, s, bp + s * kNR * L.pairs);
  });
  const int64_t mblocks = ceil_div(pr.m, kMC), nblocks = ceil_div(pr.n, kNC);
  parallel_for(mblocks * nblocks, threads, [&](int64_t task) {
    const int64_t mb = task / nblocks, nb = task % nblocks;
    compute_block<Ops>(pr, L, ap, bp, mb * kMC, std::min(pr.m, (mb + 1) * kMC), nb * kNC,
                       std::min(pr.n, (nb + 1) * kNC));
  });
  w.trim();
}

}  // namespace dfp
}  // namespace frugalnn
