// MixPE W4A8 / W4A16 group GEMM: the packed weight layout that the serial and AVX2 kernels, the
// driver and the numpy packer (frugalnn/kernels/mixpe_ref.py pack_weights) agree on.
//
// Weights W [N, K] (one row per output) are uint4 q in [0, 15] with one float32 scale s and one
// uint8 zero z in [0, 15] per row and per group of `group` (32, 64 or 128) consecutive k:
// W[n, k] ~= s[n, g] * (q[n, k] - z[n, g]), g = k / group. K is padded to Kp = ceil(K/group)*group
// and N to Np = ceil(N/kRows)*kRows; padding weights are q = 0, s = 0, z = 0 (they contribute
// exactly 0 because padded activations are 0 and padded rows have s = 0 and are never stored).
//
//   wp [Np/kRows][Kp/4][32] uint8   one strip of kRows = 16 rows, four k at a time ("quads"):
//        byte 4*r + j (r < 8, j < 4) = q[row r, k = 4*quad + j] | q[row r + 8, same k] << 4
//        so one 32-byte load, a mask and a 4-bit shift give two vectors of 8 rows x 4 k, whose
//        32-bit lane r holds row r's four weights: vpmaddubsw against a broadcast of the token's
//        four activations, then vpmaddwd, leaves row r's partial dot product in lane r (no
//        horizontal sums anywhere).
//   sp [Np/kRows][Kp/group][kRows] float32           scales of the strip's rows, group by group
//   zp [Np/kRows][Kp/group][kRows] uint8             zeros, same order
//
// Activations (W4A8): aq [M, Kp] int8 (per token symmetric, zero padded), asum [M, Kp/group] int32
// (the group sums of aq), sa [M] float32 (the token scales). W4A16: af [M, Kp] float32 (fp16 or
// bf16 values widened exactly), afsum [M, Kp/group] float32.
//
// Role: layout (strip/block/group sizes, byte order of the nibbles; no kernels). Checked against:
// frugalnn/kernels/mixpe_ref.py (pack_weights, gemm_w4a8, gemm_w4a16) through the kernels
// (tests/kernels/test_mixpe_kernel.py on both backends).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/mixpe/layout.h
#pragma once

#include <cstdint>

namespace frugalnn {
namespace mixpe {

constexpr int64_t kRows = 16;      // rows per strip: two ymm of 8 int32 lanes
constexpr int64_t kQuad = 4;        // k per quad: one int32 lane of int8 activations
constexpr int64_t kQuadBytes = 32;  // packed bytes of one strip's quad (16 rows x 4 k x 4 bits)
constexpr int64_t kBlock = 32;      // k per block: 8 quads, the most int16 sums of vpmaddubsw that cannot
                                    // saturate (8 * 2 * 15 * 128 = 30720 < 32767)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline bool valid_group(int64_t g) { return g == 32 || g == 64 || g == 128; }

struct Shape {
  int64_t n = 0, k = 0, group = 32, np = 0, kp = 0, strips = 0, blocks = 0 /* quads */, groups = 0;
  Shape(int64_t n_, int64_t k_, int64_t group_) : n(n_), k(k_), group(group_) {
    groups = ceil_div(k, group);
    kp = groups * group;
    blocks = kp / kQuad;  // quads
    strips = ceil_div(n, kRows);
    np = strips * kRows;
  }
  int64_t wp_bytes() const { return strips * blocks * kQuadBytes; }
  int64_t sp_count() const { return strips * groups * kRows; }
};

}  // namespace mixpe
}  // namespace frugalnn
