// Delta inference driver: the Engine holds a program (layout.h) and runs it one frame at a time.
//
// push(frame): the input layer takes the frame (CHW -> channels last) and activates every position;
// then each layer in order takes its sources' deltas through its edges. Conv edges by bands of
// output rows over threads: the outputs the deltas reach are found from the source's runs (a
// position's channels), then each gathers its receptive field's deltas in one kernel call (the state
// row in registers); every output element is updated by one thread, in a fixed order, so results do
// not depend on the thread count. Then the layer activates the positions that received something
// (bands of rows over threads, each band's deltas appended in band order: raster order overall),
// and indexes its deltas by position (runs) for its consumers.
// The first frame after reset() activates every position of every layer (a dense frame), and so
// does every frame in `dense` mode (every element treated as changed: the engine's own dense baseline). MACs are
// counted per conv update (cout per tap that lands inside the output).
//
// Backend choice, per push: use_avx512() takes avx512.h's gather (and AVX2's activation),
// use_avx2() the AVX2 kernels, else the serial ones.
//
// Role: driver (the frame loop, bands over threads, backend choice, counters). Checked against:
// frugalnn/kernels/delta_ref.py, outputs and counters per frame, for 1 and 3 threads, on both
// backends (tests/kernels/test_delta.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/driver.h
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "delta/avx2.h"
#include "delta/avx512.h"
#include "delta/layout.h"
#include "delta/serial.h"

namespace frugalnn {
namespace delta {

struct Kernels {
  void (*axpy)(double*, const double*, double, int64_t);
  void (*gather)(double*, const double* const*, const double*, int64_t, int64_t);
  int64_t (*activate)(const double*, double*, const double*, int64_t, bool, double, bool, int32_t, Deltas&);
};

inline Kernels pick_kernels() {
#if FRUGALNN_X86
  if (use_avx512()) return Kernels{&avx2::axpy, &avx512::gather, &avx2::activate};
  if (use_avx2()) return Kernels{&avx2::axpy, &avx2::gather, &avx2::activate};
#endif
  return Kernels{&serial::axpy, &serial::gather, &serial::activate};
}

class Engine {
 public:
  std::vector<Layer> layers;
  bool fresh = true;  // the next frame is the first after reset: dense

  void reset() {
    for (auto& L : layers) {
      const int64_t n = L.size(), pos = L.h * L.w;
      L.state.assign(n, 0.0);
      for (int64_t p = 0; p < pos; ++p)
        for (int64_t ch = 0; ch < L.c; ++ch) L.state[p * L.c + ch] = L.bias.empty() ? 0.0 : L.bias[ch];
      L.emitted.assign(n, 0.0);
      L.dirty.assign(pos, 0);
      L.mark.assign(pos, 0);
      L.run_start.assign(pos, 0);
      L.run_len.assign(pos, 0);
      L.out.clear();
      L.macs = 0;
    }
    fresh = true;
  }

  // frame: CHW float32 of the input layer's shape; out: the last layer's emitted values, CHW.
  void push(const float* frame, float* out, int threads, bool dense) {
    const Kernels K = pick_kernels();
    Layer& in = layers[0];
    const int64_t pos0 = in.h * in.w;
    for (int64_t ch = 0; ch < in.c; ++ch)
      for (int64_t p = 0; p < pos0; ++p) in.state[p * in.c + ch] = frame[ch * pos0 + p];
    std::fill(in.dirty.begin(), in.dirty.end(), uint8_t(1));
    activate_layer(in, K, threads, dense);
    for (size_t l = 1; l < layers.size(); ++l) {
      Layer& L = layers[l];
      L.macs = 0;
      for (const Edge& e : L.in) scatter(e, layers[e.src], L, K, threads);
      if (fresh || dense) std::fill(L.dirty.begin(), L.dirty.end(), uint8_t(1));
      activate_layer(L, K, threads, dense);
    }
    fresh = false;
    const Layer& last = layers.back();
    const int64_t pos = last.h * last.w;
    for (int64_t ch = 0; ch < last.c; ++ch)
      for (int64_t p = 0; p < pos; ++p) out[ch * pos + p] = static_cast<float>(last.emitted[p * last.c + ch]);
  }

 private:
  static int bands_for(int64_t rows, int threads) {
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(rows, threads)));
  }

  // The taps t (and output coordinates o) of a conv edge that input coordinate y feeds, with o in
  // [lo, hi): o * stride + t - pad = y. Returns how many (at most k).
  static int64_t taps(int64_t y, const Edge& e, int64_t lo, int64_t hi, int64_t* t_out, int64_t* o_out) {
    const int64_t r = y + e.pad, s = e.stride;
    int64_t t = r % s, o = r / s, n = 0;  // t = r - o * s
    for (; t < e.k && o >= 0; t += s, --o)
      if (o >= lo && o < hi) {
        t_out[n] = t;
        o_out[n++] = o;
      }
    return n;
  }

  static void scatter(const Edge& e, const Layer& src, Layer& dst, const Kernels& K, int threads) {
    const Deltas& d = src.out;
    const int64_t n = static_cast<int64_t>(d.idx.size());
    if (n == 0) return;
    if (e.kind == EdgeKind::Identity) {
      for (int64_t i = 0; i < n; ++i) {
        dst.state[d.idx[i]] += d.val[i];
        dst.dirty[d.idx[i] / dst.c] = 1;
      }
      return;
    }
    if (e.kind == EdgeKind::Mean) {
      const double inv = 1.0 / static_cast<double>(src.h * src.w);
      for (int64_t i = 0; i < n; ++i) dst.state[d.idx[i] % src.c] += d.val[i] * inv;
      dst.dirty[0] = 1;
      return;
    }
    // Two passes per band of output rows. 1: the output positions the source's delta runs reach
    // (marked once each). 2: each such position gathers every (tap, channel) delta of its receptive
    // field from the source's run index (activate_layer built it) and takes them in one kernel call,
    // its state row held in registers: one load and one store of the row per position per frame,
    // however many deltas reach it. Each element's updates come in a fixed order (taps in raster
    // order, then channels), independent of thread count and backend.
    const int bands = bands_for(dst.h, threads);
    std::vector<int64_t> macs(bands, 0);
    parallel_for(bands, bands, [&](int64_t b) {
      const int64_t lo = dst.h * b / bands, hi = dst.h * (b + 1) / bands;
      const int64_t k = e.k, cin = e.cin, cout = e.cout, stride = e.stride, pad = e.pad;
      int64_t kys[64], oys[64], kxs[64], oxs[64];  // k <= 64 (checked by the binding)
      std::vector<int32_t> ops;
      for (int64_t i = 0; i < n;) {
        const int64_t yx = d.idx[i] / cin, y = yx / src.w, x = yx - y * src.w;
        i += src.run_len[yx];  // the whole run of this position
        const int64_t ny = taps(y, e, lo, hi, kys, oys);
        if (!ny) continue;
        const int64_t nx = taps(x, e, 0, dst.w, kxs, oxs);
        for (int64_t a = 0; a < ny; ++a)
          for (int64_t bx = 0; bx < nx; ++bx) {
            const int64_t op = oys[a] * dst.w + oxs[bx];
            if (!dst.mark[op]) {
              dst.mark[op] = 1;
              ops.push_back(static_cast<int32_t>(op));
            }
          }
      }
      std::vector<const double*> wrow(static_cast<size_t>(k * k * cin));
      std::vector<double> val(static_cast<size_t>(k * k * cin));
      int64_t mm = 0;
      for (const int32_t op : ops) {
        dst.mark[op] = 0;
        dst.dirty[op] = 1;
        const int64_t oy = op / dst.w, ox = op - oy * dst.w;
        int64_t m = 0;
        for (int64_t ky = 0; ky < k; ++ky) {
          const int64_t iy = oy * stride + ky - pad;
          if (iy < 0 || iy >= src.h) continue;
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t ix = ox * stride + kx - pad;
            if (ix < 0 || ix >= src.w) continue;
            const int64_t p = iy * src.w + ix, len = src.run_len[p];
            if (!len) continue;
            const int64_t st = src.run_start[p];
            const double* base = e.w.data() + (ky * k + kx) * cin * cout;
            for (int64_t j = 0; j < len; ++j) {
              wrow[m] = base + (d.idx[st + j] - p * cin) * cout;
              val[m++] = d.val[st + j];
            }
          }
        }
        K.gather(dst.state.data() + op * cout, wrow.data(), val.data(), m, cout);
        mm += m * cout;
      }
      macs[b] = mm;
    });
    for (int64_t m : macs) dst.macs += m;
  }

  static void activate_layer(Layer& L, const Kernels& K, int threads, bool dense) {
    for (const int32_t f : L.out.idx) L.run_len[f / L.c] = 0;  // forget the last frame's run index
    L.out.clear();
    const int bands = bands_for(L.h, threads);
    const double* q = L.step.empty() ? nullptr : L.step.data();
    auto run = [&](int64_t lo, int64_t hi, Deltas& out) {
      for (int64_t p = lo * L.w; p < hi * L.w; ++p) {
        if (!L.dirty[p]) continue;
        L.dirty[p] = 0;
        K.activate(L.state.data() + p * L.c, L.emitted.data() + p * L.c, q, L.c, L.relu, L.threshold, dense,
                   static_cast<int32_t>(p * L.c), out);
      }
    };
    if (bands == 1) {
      run(0, L.h, L.out);
    } else {
      std::vector<Deltas> parts(bands);
      parallel_for(bands, bands, [&](int64_t b) { run(L.h * b / bands, L.h * (b + 1) / bands, parts[b]); });
      for (auto& part : parts) {
        L.out.idx.insert(L.out.idx.end(), part.idx.begin(), part.idx.end());
        L.out.val.insert(L.out.val.end(), part.val.begin(), part.val.end());
      }
    }
    // the run index (raster order: one position's channels are consecutive), for the conv edges
    const int64_t n = static_cast<int64_t>(L.out.idx.size());
    for (int64_t i = 0; i < n; ++i) {
      const int32_t p = L.out.idx[i] / static_cast<int32_t>(L.c);
      if (!L.run_len[p]) L.run_start[p] = static_cast<int32_t>(i);
      ++L.run_len[p];
    }
  }
};

}  // namespace delta
}  // namespace frugalnn
