// T-MAC lookup-table GEMV/GEMM: the offline weight layout and the activation-table layout,
// shared by the serial reference (serial.h), the AVX2 kernels (avx2.h) and the numpy reference
// (frugalnn/kernels/lut_ref.py).
//
// Math. A weight w[m,k] = q * scale + offset with a b-bit code q, one (scale, offset) per group
// of G consecutive k. Split q into bit planes and map each bit to a sign s_i = 2 bit_i - 1:
//   q - h = sum_i 2^(i-1) s_i,   h = (2^b - 1) / 2
// so  w = (scale / 2) * sum_i 2^i s_i + (scale * h + offset).
// For 4 activations a[4c..4c+3] ("chunk" c) and a 4-bit plane index j (bit t = bit i of q[4c+t]):
//   sum_t s_i a_t = T_c[j],  T_c[j] = sum_t (2 bit_t(j) - 1) a[4c+t]   (16 entries, T[15-j] = -T[j])
// T_c is quantized to int8 with one scale per weight group (ts_g = max|T| / 127), looked up with
// vpshufb, weighted by 2^i and summed exactly in integers:
//   acc[m,g] = sum_{c in g} sum_i 2^i qT_c[j_i(m,c)]
//   y[m] += float(acc[m,g]) * (ws[m,g] * ts_g)          ws = scale / 2
//   y[m] += zt[m,g] * (float(isum_g) * ts_g)             zt = scale*h + offset,  isum_g = sum qT_c[15]
// (the second line only for asymmetric weights). With a single group (G = K) the integer sum runs
// over all of K: the exact int32 path for per-tensor / per-row scales (BitNet).
//
// Weight layout (uint8), "units" of 32 rows, unit-major so one unit streams contiguously over K:
//   packed[unit][group][step][slab][32]          step = 2 chunks (8 activations) of one group
// A group of G/4 chunks takes ceil(G/8) steps; an odd last chunk is padding (its table is zero).
// Byte i (0..15) of lane L (0,1) of a slab holds two 4-bit plane indices of chunk 2*step+L:
//   pair slab 2p+r (planes 2p, 2p+1; r = 0,1 picks rows 0-15 / 16-31):
//       plane 2p + i%2, accumulator a = 2r + h, int16 lane j = i/2      (h = 0 low nibble, 1 high)
//   single slab b-1 (only for odd b; plane b-1):
//       plane b-1,      accumulator a = 2h + i%2, int16 lane j = i/2
// After vpshufb + vpmaddubsw with plane weights (2^2p, 2^2p+1) -- or (2^(b-1), 0) / (0, 2^(b-1))
// for the single slab -- every int16 lane j of accumulator a (0..3) holds one row,
//   row(a, j) = 16 (a/2) + 8 (j%2) + 4 (a%2) + j/2,
// its two 128-bit lanes being chunks 2*step and 2*step+1. One 32-byte load feeds 32 rows (or 16
// rows x 2 planes). The odd-looking row order makes the fold cheap: the lane sums of accumulators
// (0,1) sign-extended in place (even int16 lanes, then odd ones) are rows 0-7 and 8-15, in order.
// Rows past M are zero codes (padding); their outputs are never written.
//
// Table layout (int8) per activation column: tables[group][step][32], lane L = T_{2 step + L}.
//
// Role: layout (the contract serial.h, avx2.h, driver.h and lut_ref.py share), no kernels. Checked
// against: lut_ref.py's own slab_position / transform, which must give the same bytes
// (tests/kernels/test_lut.py, transform round trip).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/layout.h
#pragma once

#include <cstdint>

namespace frugalnn {
namespace lut {

constexpr int kUnitRows = 32;
constexpr int kSlabBytes = 32;
constexpr int kMaxBits = 8;
// Activations at or beyond this magnitude (and NaN/inf) bypass the tables: 4 of them could
// overflow a float32 table entry. They are added back exactly, as the dense matmul would.
constexpr float kSpecialMagnitude = 4.2535296e37f;  // 2^125

struct Shape {
  int64_t m = 0, k = 0, group = 0;
  int bits = 0;

  int64_t units() const { return (m + kUnitRows - 1) / kUnitRows; }
  int64_t groups() const { return group ? k / group : 0; }
  int64_t chunks_per_group() const { return group / 4; }
  int64_t steps_per_group() const { return (group + 7) / 8; }
  int64_t step_bytes() const { return static_cast<int64_t>(bits) * kSlabBytes; }
  int64_t group_bytes() const { return steps_per_group() * step_bytes(); }
  int64_t unit_bytes() const { return groups() * group_bytes(); }
  int64_t packed_bytes() const { return units() * unit_bytes(); }
  int64_t table_bytes() const { return groups() * steps_per_group() * kSlabBytes; }  // per column
  // Steps an int16 lane can take before it could overflow: each adds at most (2^b - 1) * 127, and
  // the fold adds the two chunk lanes in int16 too (hence the factor 2).
  int sub_steps() const {
    int64_t per_step = 2 * ((int64_t{1} << bits) - 1) * 127;
    int64_t s = 32767 / per_step;
    return static_cast<int>(s < 1 ? 1 : s);
  }
};

inline int accumulator_row(int a, int j) { return 16 * (a / 2) + 8 * (j & 1) + 4 * (a & 1) + j / 2; }

// Where the nibble (slab, lane-byte i, h) of a unit lives: which row of the unit and which plane.
inline void slab_position(int bits, int slab, int i, int h, int* row, int* plane) {
  if (slab < (bits / 2) * 2) {
    *plane = 2 * (slab / 2) + (i & 1);
    *row = accumulator_row(2 * (slab % 2) + h, i >> 1);
  } else {
    *plane = bits - 1;
    *row = accumulator_row(2 * h + (i & 1), i >> 1);
  }
}

// Byte offset of (row-in-unit, plane, chunk-in-group) inside one group's block, with its nibble.
inline void nibble_address(int bits, int row, int plane, int64_t chunk, int64_t* offset, int* h) {
  // invert accumulator_row: row = 16 (a/2) + 8 (j%2) + 4 (a%2) + j/2
  const int a = 2 * (row / 16) + ((row >> 2) & 1), j = 2 * (row & 3) + ((row >> 3) & 1);
  int slab, i;
  if (plane < (bits / 2) * 2) {
    slab = 2 * (plane / 2) + a / 2;
    *h = a & 1;
    i = 2 * j + (plane & 1);
  } else {
    slab = bits - 1;
    *h = a / 2;
    i = 2 * j + (a & 1);
  }
  int64_t step = chunk / 2;
  int lane = static_cast<int>(chunk & 1);
  *offset = step * bits * kSlabBytes + slab * kSlabBytes + lane * 16 + i;
}

}  // namespace lut
}  // namespace frugalnn
