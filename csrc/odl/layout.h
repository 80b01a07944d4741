// ODL (PULP-TrainLib, Nadalini et al. 2023): batch-1 CHW training primitives. The shapes the
// kernels, the engine and the numpy reference (frugalnn/kernels/odl_ref.py) agree on.
//
// Conv geometry: input [Cin, H, W], weight [Cout, Cin/groups, Kh, Kw], output [Cout, Ho, Wo],
// padding (top, left, bottom, right) may be asymmetric (TF "same" at stride 2: 0 top/left, 1
// bottom/right). Ho = (H + top + bottom - Kh) / stride + 1.
// im2col: col [Cin*Kh*Kw, Ho*Wo], row (c, i, j) in C order, zero where the window is in the padding.
// Every conv step is one matmul (groups == 1):
//   forward      Y[Cout, P]   = W[Cout, K] . col[K, P]            (K = Cin*Kh*Kw, P = Ho*Wo)
//   weight grad  dW[Cout, K]  = dY[Cout, P] . col[K, P]^T
//   input grad   stride 1: dX[Cin, H*W] = blocktranspose(W)[Cin, Cout*Kh*Kw] . im2col(dY, flipped pads)
//                (the paper's form; driver.h transposed_geom), then added into dX;
//                stride > 1: dcol[K, P] = W[Cout, K]^T . dY[Cout, P], then col2im adds dcol into dX
//                (the same MACs, and no dilated dY).
// Depthwise (groups == Cin == Cout) runs per channel: wide-row loops at stride 1, im2col otherwise.
//
// Role: layout (conv geometry, storage types, the kernel family's tile table; no arithmetic).
// Checked against: frugalnn/kernels/odl_ref.py and torch autograd (tests/odl/test_primitives.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/odl/layout.h
#pragma once

#include <cstdint>

namespace frugalnn {
namespace odl {

// Storage: float32, or IEEE binary16 held as uint16 bits.
enum class DType : int { F32 = 0, F16 = 1 };

struct Geom {
  int64_t cin = 0, h = 0, w = 0, cout = 0, kh = 1, kw = 1, stride = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0, groups = 1;
  int64_t ho() const { return (h + pt + pb - kh) / stride + 1; }
  int64_t wo() const { return (w + pl + pr - kw) / stride + 1; }
  int64_t k() const { return (cin / groups) * kh * kw; }
  int64_t p() const { return ho() * wo(); }
  bool depthwise() const { return groups > 1; }
  // 1x1, stride 1, no padding: col is the input itself (no im2col copy).
  bool identity_col() const { return kh == 1 && kw == 1 && stride == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0; }
};

// The matmul kernel family: register tiles of MR rows x NV vectors of 8 floats (AVX2). Index 0 is
// the serial loop (always valid); the tuner picks an index per (layer, step, dtype, shape).
struct Tile {
  int mr, nv;
};
constexpr Tile kTiles[] = {{0, 0}, {1, 1}, {4, 1}, {8, 1}, {2, 2}, {4, 2}, {6, 2}, {3, 3}, {4, 3}, {1, 4}};
constexpr int kNumTiles = sizeof(kTiles) / sizeof(kTiles[0]);
// One more member: the AVX2 dot-product kernel for fp32 operands that are both contiguous along K
// (avx2.h dot_cols); for any other call it runs as kDefaultKernel.
constexpr int kDotKernel = kNumTiles;
constexpr int kNumKernels = kNumTiles + 1;
constexpr int kDefaultKernel = 5;  // 4 x 16: a good all-rounder before tuning

}  // namespace odl
}  // namespace frugalnn
