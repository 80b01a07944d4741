// Fused attention: the tile contract that serial.h, avx2.h and driver.h share. The driver walks
// the tiles (driver.h); the kernels fill them. Nothing here computes.
//
// Role: layout (sizes and the driver -> kernel hand-off), no arithmetic. Checked against: the
// numpy reference's copy of these sizes (frugalnn/kernels/attention_ref.py BLOCK_Q, BLOCK_K,
// VALUE_LANES), which must give the same workspace (tests/kernels/test_attention.py).
// Tiles, for one query block of BQ queries and one key tile of BK keys (all float32):
//   qt  [E, BQ]        (q * scale)^T, queries in the fast dimension (vector lanes)
//   st  [BK, BQ]       scores of the tile, then their probabilities
//   acc [round_up(Ev, VLANES), BQ]   unnormalised output, transposed
//   values             the tile's values as the kernel's pack_values/values_of return them: rows of
//                      Ev floats in place (serial.h), or strips of VLANES columns [strip][BK][VLANES]
//                      (avx2.h); the accumulator is padded to whole strips for the latter.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/layout.h
#pragma once

#include <cstdint>

namespace frugalnn {
namespace attention {

#ifndef FRUGALNN_ATTENTION_BQ
#define FRUGALNN_ATTENTION_BQ 48
#endif
#ifndef FRUGALNN_ATTENTION_BK
#define FRUGALNN_ATTENTION_BK 128
#endif
constexpr int64_t BQ = FRUGALNN_ATTENTION_BQ;  // queries per block (a multiple of the 24-query micro-kernel)
constexpr int64_t BK = FRUGALNN_ATTENTION_BK;  // keys per tile
constexpr int64_t VLANES = 4;                  // value columns per packed strip (avx2.h)

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Work on the following key tiles that a scores call does between its micro-kernels, whose
// FMA ports are busy while the load/store ports are half idle: rows [r0, r1) of the next tile's
// keys are prefetched into L2 and its values packed into `vp` (Ops that pack), and the same rows
// of the tile after that have their values prefetched (so the packing reads L2). Past the L2
// size (S*(E+Ev)*4 bytes over ~1 MiB) tiles come from L3 or DRAM, and the hardware prefetchers
// restart at every 4 KiB page (8 rows at E = 128); done separately, the packing cost 3-6%.
struct Background {
  const float* k;        // next tile's keys (row 0)
  const float* v;        // next tile's values (row 0)
  const float* v_ahead;  // the tile after next's values (row 0); rows >= ahead_rows do not exist
  float* vp;             // where the next tile's values are packed
  int64_t r0, r1, ahead_rows, e, ev;
};

}  // namespace attention
}  // namespace frugalnn
