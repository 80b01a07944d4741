// Delta inference: the network program that the kernels (serial.h, avx2.h), the driver and the
// numpy reference (frugalnn/kernels/delta_ref.py) agree on. No arithmetic here.
//
// A program is a list of layers in execution order. Layer 0 is the input (no edges; each frame is
// copied into its state). Every other layer's pre-activation state starts at its bias and receives
// the sparse deltas of its source layers through edges:
//   Conv      dst[oy, ox, o] += W[ky, kx, c, o] * d   for the delta d at src (y, x, c) and every tap
//             with oy * stride + ky - pad = y (same for x); W float32 [k, k, Cin, Cout]. A linear
//             layer is a 1x1 conv on a 1x1 map.
//   Identity  dst[y, x, c] += d   (a residual add; same shape)
//   Mean      dst[0, 0, c] += d * (1 / (H * W))   (global average pooling)
// After its edges, a layer activates every position that received something (every position on
// the first frame after reset): a = state; a = max(a, 0) if relu; a = step[c] * round(a / step[c])
// if it quantizes (round half to even); d = a - emitted. It emits (d, and sets emitted = a) when
// d != 0 (exact mode, threshold 0) or |d| > threshold (the DeltaCNN-style threshold mode: below
// it the change is kept as a residual, emitted stays). `dense` mode emits every visited element.
//
// Storage: channels last (index (y * W + x) * C + c), state and emitted in float64 so that the
// sum of deltas tracks a dense evaluation to ~1e-16 and the rounding decisions agree with it.
// Deltas: parallel arrays of flat indices (int32) and values (float64), in raster order.
//
// Role: layout (the program, its storage and the semantics every implementation follows; no kernels).
// Checked against: frugalnn/kernels/delta_ref.py (dense evaluation and the same delta algorithm),
// tests/kernels/test_delta.py on both backends.
//
// compile check: g++ -std=c++17 -fsyntax-only -I csrc csrc/delta/layout.h
#pragma once

#include <cstdint>
#include <vector>

namespace frugalnn {
namespace delta {

enum class EdgeKind : int { Conv = 0, Identity = 1, Mean = 2 };

struct Edge {
  EdgeKind kind = EdgeKind::Conv;
  int src = 0;
  int64_t k = 1, stride = 1, pad = 0, cin = 0, cout = 0;
  // [k, k, cin, cout] for Conv: the float32 weights held widened to double (exact), so the kernels'
  // inner loops skip a conversion per multiply
  std::vector<double> w;
};

struct Deltas {
  std::vector<int32_t> idx;
  std::vector<double> val;
  void clear() {
    idx.clear();
    val.clear();
  }
};

struct Layer {
  int64_t c = 0, h = 0, w = 0;
  bool relu = false;
  std::vector<double> step;  // per channel, empty: no quantization
  double threshold = 0.0;
  std::vector<double> bias;  // per channel
  std::vector<Edge> in;
  // run-time
  std::vector<double> state, emitted;
  std::vector<uint8_t> dirty;  // per position
  Deltas out;
  // driver scratch: per position, where this layer's deltas there start in `out` and how many (a
  // run: deltas are in raster order), and a mark for the outputs a conv edge into it touches
  std::vector<int32_t> run_start, run_len;
  std::vector<uint8_t> mark;
  int64_t macs = 0;            // MACs the edges into this layer did on the last frame
  int64_t size() const { return c * h * w; }
};

}  // namespace delta
}  // namespace frugalnn
