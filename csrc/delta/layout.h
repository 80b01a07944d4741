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
// Deltas: parallel arrays of flat indices (int32), channels (int32) and values (float64), in raster
// order, with a run index per position (struct Deltas).
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

// A layer's emitted deltas of one frame, in raster order, in buffers sized to the layer at reset (at
// most one delta per element, so the kernels write through raw pointers without a capacity check):
// flat index, channel (idx % c, kept so consumers need no division) and value. The run index: for
// each position with at least one delta (run_pos, raster order) where its deltas start and how many
// (run_start, run_len, per position; consecutive, as a position's channels are emitted together).
struct Deltas {
  std::vector<int32_t> idx, ch;
  std::vector<double> val;
  std::vector<int32_t> run_pos;
  int64_t n = 0, nruns = 0;
  void allocate(int64_t size, int64_t positions) {
    // + 8: the SIMD kernels store whole vectors at the write position (lanes past the count are
    // scratch; they stay inside the layer's size anyway, the slack is a margin)
    idx.assign(size + 8, 0);
    ch.assign(size + 8, 0);
    val.assign(size + 8, 0.0);
    run_pos.assign(positions + 8, 0);
    n = nruns = 0;
  }
};

// Where an activation kernel writes: the deltas (at out.n on), and the run index.
struct Emit {
  int32_t *idx, *ch;
  double* val;
  int32_t* run_pos;
  int32_t *run_start, *run_len;  // indexed by position
  int64_t n, nruns;              // written so far (n: run_start's offset)
};

struct Layer {
  int64_t c = 0, h = 0, w = 0;
  bool relu = false;
  std::vector<double> step;  // per channel, empty: no quantization
  std::vector<double> rstep;  // 1 / step (rounded): the kernels' fast path, checked against the division
  double threshold = 0.0;
  std::vector<double> bias;  // per channel
  std::vector<Edge> in;
  // run-time
  std::vector<double> state, emitted;
  std::vector<uint8_t> dirty;  // per position
  Deltas out;
  // driver scratch: per position, where this layer's deltas there start in `out` and how many (a
  // run: deltas are in raster order), and a mark for the outputs a conv edge into it touches;
  // per-band delta buffers when the activation runs on more than one thread
  std::vector<int32_t> run_start, run_len;
  std::vector<uint8_t> mark;
  std::vector<Deltas> parts;
  int64_t macs = 0;            // MACs the edges into this layer did on the last frame
  int64_t size() const { return c * h * w; }
};

}  // namespace delta
}  // namespace frugalnn
