// DFP16 GEMM: the packed-panel layout that the AVX2 micro-kernel (avx2.h) and the packing driver
// (driver.h) agree on. Semantics and the float order it must reproduce: serial.h.
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
// Role: layout (K chunks and panels, packed A tiles and B strips, tile sizes, the micro-kernel
// contract; no kernels). Checked against: frugalnn/kernels/dfp_ref.py through the packed AVX2 GEMM,
// bit for bit, on odd shapes, every chunk length and both layouts of B (tests/kernels/test_dfp_kernel.py
// under the avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/layout.h
#pragma once

#include <algorithm>
#include <cstdint>

namespace frugalnn {
namespace dfp {

constexpr int kMR = 6;                // rows per micro-tile: 6 x 2 accumulators = 12 of 16 ymm registers
constexpr int kNR = 16;               // columns per strip: two 8-lane vectors
constexpr int64_t kPanelPairs = 1024;  // K panel target: 2048 values of K (see the blocking note in driver.h)

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

// Micro-kernel contract (Ops::kernel(mr)): adds, for each of `n_chunks` chunks of `chunk_pairs`
// pairs (the last one `last_pairs`), float(int32 chunk sums) into the kMR x 16 float tile
// (row stride 16), in chunk order; with `first` the first chunk writes the tile instead (the
// first panel: no zero fill). a: ap + first pair * kMR, b: bp + first pair * kNR.
using KernelFn = void (*)(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                          int64_t last_pairs, float* tile, bool first);

}  // namespace dfp
}  // namespace frugalnn
