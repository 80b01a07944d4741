// Delta inference driver: the Engine holds a program (layout.h) and runs it one frame at a time.
//
// push(frame): the input layer takes the frame (CHW -> channels last) and activates every position;
// then each layer in order takes its sources' deltas through its edges. Conv edges by bands of
// output rows over threads: the outputs the deltas reach are found from the source's runs (marking
// the runs' taps when the runs are few, else scanning the band), then each gathers its receptive
// field's delta runs in one kernel call (the state row in registers); every output element is
// updated by one thread, in a fixed order, so results do not depend on the thread count. Then the
// layer activates the positions that received something (bands of rows over threads; one kernel call
// per band activates, quantizes, emits the deltas and builds the run index its consumers read; bands'
// deltas appended in band order: raster order overall).
// The first frame after reset() activates every position of every layer (a dense frame), and so
// does every frame in `dense` mode (every element treated as changed: the engine's own dense baseline). MACs are
// counted per conv update (cout per tap that lands inside the output).
//
// Backend choice, per push: use_avx512() takes avx512.h's kernels, use_avx2() avx2.h's, else the
// serial ones.
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
  void (*gather)(double*, const double* const*, const int32_t* const*, const double* const*, const int32_t*, int64_t,
                 int64_t);
  void (*activate_rows)(const double*, double*, uint8_t*, const double*, const double*, int64_t, bool, double, bool,
                        int64_t, int64_t, Emit&);
  void (*scatter_run)(double* const*, const double* const*, int64_t, const int32_t*, const double*, int32_t, int64_t);
};

inline Kernels pick_kernels() {
#if FRUGALNN_X86
  if (use_avx512()) return Kernels{&avx512::gather, &avx512::activate_rows, &avx512::scatter_run};
  if (use_avx2()) return Kernels{&avx2::gather, &avx2::activate_rows, &avx2::scatter_run};
#endif
  return Kernels{&serial::gather, &serial::activate_rows, &serial::scatter_run};
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
      L.rstep.resize(L.step.size());
      for (size_t ch = 0; ch < L.step.size(); ++ch) L.rstep[ch] = 1.0 / L.step[ch];
      L.dirty.assign(pos, 0);
      L.mark.assign(pos, 0);
      L.run_start.assign(pos, 0);
      L.run_len.assign(pos, 0);
      L.out.allocate(n, pos);
      L.parts.clear();
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
    if (d.n == 0) return;
    if (e.kind == EdgeKind::Identity) {
      for (int64_t r = 0; r < d.nruns; ++r) {
        const int32_t p = d.run_pos[r];
        dst.dirty[p] = 1;
        for (int64_t i = src.run_start[p], end = i + src.run_len[p]; i < end; ++i) dst.state[d.idx[i]] += d.val[i];
      }
      return;
    }
    if (e.kind == EdgeKind::Mean) {
      const double inv = 1.0 / static_cast<double>(src.h * src.w);
      for (int64_t i = 0; i < d.n; ++i) dst.state[d.ch[i]] += d.val[i] * inv;
      dst.dirty[0] = 1;
      return;
    }
    // Per band of output rows: the output positions the source's delta runs reach, then each gathers
    // every (tap, channel) delta of its receptive field straight from the source's run index (per tap:
    // the weight block, and the run's channels and values) in one kernel call, its state row held in
    // registers: one load and one store of the row per position per frame. The reached positions come
    // from marking the runs' taps when the runs are few, else from scanning every output position of
    // the band (a position no run reaches gathers nothing). When the deltas are very few per output,
    // each run is pushed into the outputs it reaches instead (scatter_run: the same per-element order).
    // Each element's updates come in a fixed order (taps in raster order, then channels), independent
    // of the path, thread count and backend.
    const int bands = bands_for(dst.h, threads);
    std::vector<int64_t> macs(bands, 0);
    parallel_for(bands, bands, [&](int64_t b) {
      const int64_t lo = dst.h * b / bands, hi = dst.h * (b + 1) / bands;
      const int64_t k = e.k, cin = e.cin, cout = e.cout, stride = e.stride, pad = e.pad;
      const size_t kk = static_cast<size_t>(k * k);
      std::vector<const double*> wt_buf(kk), vp_buf(kk);
      std::vector<const int32_t*> cp_buf(kk);
      std::vector<int32_t> ln_buf(kk);
      // raw pointers in locals: stores into the tap lists could alias the vectors' members, which
      // made the compiler reload every data pointer per tap
      const double** wt = wt_buf.data();
      const double** vp = vp_buf.data();
      const int32_t** cp = cp_buf.data();
      int32_t* ln = ln_buf.data();
      const int32_t *run_len = src.run_len.data(), *run_start = src.run_start.data(), *dch = d.ch.data();
      const double *dval = d.val.data(), *w0 = e.w.data();
      double* state = dst.state.data();
      uint8_t* dirty = dst.dirty.data();
      const int64_t sh = src.h, sw = src.w, dw = dst.w, tap_size = cin * cout;
      int64_t mm = 0;
      auto gather_at = [&](int64_t op) {
        const int64_t oy = op / dw, ox = op - oy * dw;
        int64_t nt = 0, m = 0;
        // the taps inside the source: iy = oy * stride + ky - pad in [0, sh), the same for x
        const int64_t y0 = oy * stride - pad, x0 = ox * stride - pad;
        const int64_t ky0 = std::max<int64_t>(0, -y0), ky1 = std::min<int64_t>(k, sh - y0);
        const int64_t kx0 = std::max<int64_t>(0, -x0), kx1 = std::min<int64_t>(k, sw - x0);
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const int64_t prow = (y0 + ky) * sw + x0;
          const double* wrow = w0 + ky * k * tap_size;
          for (int64_t kx = kx0; kx < kx1; ++kx) {
            // written whether or not a run is there, kept when one is (no branch: a mispredicted
            // one cost more than the writes at typical densities)
            const int64_t p = prow + kx;
            const int32_t len = run_len[p];
            const int64_t st = run_start[p];
            wt[nt] = wrow + kx * tap_size;
            cp[nt] = dch + st;
            vp[nt] = dval + st;
            ln[nt] = len;
            nt += len != 0;
            m += len;
          }
        }
        if (!nt) return;
        dirty[op] = 1;
        K.gather(state + op * cout, wt, cp, vp, ln, nt, cout);
        mm += m * cout;
      };
      const int64_t reach = (k + stride - 1) / stride;  // output rows (and columns) one input position feeds
      const int64_t outputs = (hi - lo) * dst.w;
      if (d.n * reach * reach < 2 * outputs) {
        // under ~2 (delta, tap) pairs per output: push each run into the outputs it reaches (one kernel
        // call per run instead of one per output; measured: 11% faster at MAC density 0.035, neutral
        // at 0.15 where gather's per-output call is shared by more deltas)
        int64_t kys[64], oys[64], kxs[64], oxs[64];  // k <= 64 (checked by the binding)
        std::vector<double*> rows(kk);
        std::vector<const double*> wr(kk);
        for (int64_t r = 0; r < d.nruns; ++r) {
          const int64_t p = d.run_pos[r], y = p / sw, x = p - y * sw;
          const int64_t ny = taps(y, e, lo, hi, kys, oys);
          if (!ny) continue;
          const int64_t nx = taps(x, e, 0, dw, kxs, oxs);
          int64_t nr = 0;
          for (int64_t a = 0; a < ny; ++a)
            for (int64_t bx = 0; bx < nx; ++bx) {
              const int64_t op = oys[a] * dw + oxs[bx];
              dirty[op] = 1;
              rows[nr] = state + op * cout;
              wr[nr++] = w0 + (kys[a] * k + kxs[bx]) * tap_size;
            }
          const int32_t len = run_len[p];
          K.scatter_run(rows.data(), wr.data(), nr, dch + run_start[p], dval + run_start[p], len, cout);
          mm += nr * len * cout;
        }
      } else if (d.nruns * reach * reach < outputs) {
        int64_t kys[64], oys[64], kxs[64], oxs[64];  // k <= 64 (checked by the binding)
        std::vector<int32_t> ops;
        for (int64_t r = 0; r < d.nruns; ++r) {
          const int64_t p = d.run_pos[r], y = p / src.w, x = p - y * src.w;
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
        for (const int32_t op : ops) {
          dst.mark[op] = 0;
          gather_at(op);
        }
      } else {
        for (int64_t op = lo * dst.w; op < hi * dst.w; ++op) gather_at(op);
      }
      macs[b] = mm;
    });
    for (int64_t m : macs) dst.macs += m;
  }

  static Emit emit_to(Deltas& out, Layer& L) {
    return Emit{out.idx.data(), out.ch.data(), out.val.data(), out.run_pos.data(), L.run_start.data(), L.run_len.data(),
                0, 0};
  }

  // Activates the dirty positions (bands of rows over threads), emitting the deltas and the run index
  // in raster order: one band writes straight into L.out; several write their own buffers, then
  // these are appended in band order and their run starts shifted.
  static void activate_layer(Layer& L, const Kernels& K, int threads, bool dense) {
    Deltas& out = L.out;
    for (int64_t r = 0; r < out.nruns; ++r) L.run_len[out.run_pos[r]] = 0;  // forget the last frame's run index
    out.n = out.nruns = 0;
    const int bands = bands_for(L.h, threads);
    const double* q = L.step.empty() ? nullptr : L.step.data();
    const double* rq = L.step.empty() ? nullptr : L.rstep.data();
    auto run = [&](int64_t b, Deltas& dst) {
      Emit em = emit_to(dst, L);
      K.activate_rows(L.state.data(), L.emitted.data(), L.dirty.data(), q, rq, L.c, L.relu, L.threshold, dense,
                      L.h * b / bands * L.w, L.h * (b + 1) / bands * L.w, em);
      dst.n = em.n;
      dst.nruns = em.nruns;
    };
    if (bands == 1) {
      run(0, out);
      return;
    }
    if (static_cast<int>(L.parts.size()) != bands) {
      L.parts.assign(bands, Deltas{});
      for (auto& part : L.parts) part.allocate(L.size(), L.h * L.w);
    }
    parallel_for(bands, bands, [&](int64_t b) { run(b, L.parts[b]); });
    for (const Deltas& part : L.parts) {
      std::memcpy(out.idx.data() + out.n, part.idx.data(), sizeof(int32_t) * part.n);
      std::memcpy(out.ch.data() + out.n, part.ch.data(), sizeof(int32_t) * part.n);
      std::memcpy(out.val.data() + out.n, part.val.data(), sizeof(double) * part.n);
      for (int64_t r = 0; r < part.nruns; ++r) {
        L.run_start[part.run_pos[r]] += static_cast<int32_t>(out.n);
        out.run_pos[out.nruns++] = part.run_pos[r];
      }
      out.n += part.n;
    }
  }
};

}  // namespace delta
}  // namespace frugalnn
