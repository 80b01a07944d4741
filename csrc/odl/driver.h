// ODL driver: the matmul entry (serial or an AVX2 tile kernel, columns split over threads) and the
// batch-1 training engine `Engine<T>`: a list of layer nodes run forward, backward and SGD in one
// call, so a training step pays no per-op dispatch (what torch eager spends most of a batch-1
// step on). Semantics of every op: serial.h; geometry: layout.h.
//
// The engine keeps activations of every node (needed by the backward pass), recomputes im2col in
// the backward pass instead of keeping one col buffer per layer (as an MCU would: memory over
// MACs; the copy is small beside the matmul), and accumulates gradients of values with several
// consumers (a residual branch point) in node order. Gradients of the network input are computed
// only when asked (input_grad), so the first layer's input-grad matmul is skipped: the paper's
// step count.
//
// Role: driver (matmul dispatch and threads, the engine's buffers and node loop). Checked against:
// torch autograd (tests/odl/test_engine.py), frugalnn/kernels/odl_ref.py (tests/kernels/test_odl_kernel.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/odl/driver.h
#pragma once

#include <algorithm>
#include <ctime>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "odl/avx2.h"
#include "odl/layout.h"
#include "odl/serial.h"

namespace frugalnn {
namespace odl {

// C[M, N] = A . B (strides as in serial::matmul) with kernel `id` (0 = serial loops); kernels other
// than 0 need the avx2 backend, else the serial loops run.
template <class T>
void matmul(const T* a, int64_t sam, int64_t sak, const T* b, int64_t sbk, int64_t sbn, T* c, int64_t m, int64_t n,
            int64_t k, bool acc16, int id, int threads) {
  if (m == 0 || n == 0) return;
#if FRUGALNN_X86
  if (id == kDotKernel && use_avx2()) {
    if constexpr (sizeof(T) == 4) {
      if (sak == 1 && sbk == 1 && k >= 8) {
        parallel_range(n, threads, 16, [&](int64_t lo, int64_t hi) {
          avx2::dot_cols(reinterpret_cast<const float*>(a), sam, reinterpret_cast<const float*>(b), sbn,
                         reinterpret_cast<float*>(c), m, n, k, lo, hi);
        });
        return;
      }
    }
    id = kDefaultKernel;
  }
  if (id > 0 && id < kNumTiles && use_avx2()) {
    const int64_t mr = kTiles[id].mr, nr = kTiles[id].nv * 8;
    const int64_t m_pad = (m + mr - 1) / mr * mr;
    thread_local std::vector<float> apk;
    apk.resize(static_cast<size_t>(m_pad * std::max<int64_t>(k, 1)));
    for (int64_t i0 = 0; i0 < m; i0 += mr)
      avx2::pack(a, sam, sak, i0, std::min<int64_t>(mr, m - i0), mr, k, apk.data() + i0 * k);
    const int64_t strips = (n + nr - 1) / nr;
    const float* ap = apk.data();
    parallel_range(strips, threads, 1, [&](int64_t lo, int64_t hi) {
      thread_local std::vector<float> bbuf, tiles;
      bbuf.resize(static_cast<size_t>(nr * avx2::kKC));
      tiles.resize(static_cast<size_t>(m_pad * nr));
      avx2::matmul_cols(ap, b, sbk, sbn, c, m, n, k, id, acc16, lo * nr, std::min(n, hi * nr), bbuf.data(),
                        tiles.data());
    });
    return;
  }
#endif
  parallel_range(n, threads, 16, [&](int64_t lo, int64_t hi) {
    serial::matmul(a, sam, sak, b, sbk, sbn, c, m, n, k, acc16, lo, hi);
  });
}

// The input gradient of a stride-1 conv as the paper writes it: one matmul
//   dX[Cin, H*W] = blocktranspose(W)[Cin, Cout*Kh*Kw] . im2col(dY, flipped padding)
// where blocktranspose swaps Cin / Cout and rotates each kernel by 180 degrees, and dY is padded by
// (Kh-1-top, Kw-1-left, Kh-1-bottom, Kw-1-right). Same MACs as W^T . dY + col2im, but with the
// forward's good shape (K = Cout*Kh*Kw instead of K = Cout) and no scattered col2im adds.
inline Geom transposed_geom(const Geom& g) {
  Geom t;
  t.cin = g.cout, t.h = g.ho(), t.w = g.wo(), t.cout = g.cin, t.kh = g.kh, t.kw = g.kw, t.stride = 1;
  t.pt = g.kh - 1 - g.pt, t.pl = g.kw - 1 - g.pl, t.pb = g.kh - 1 - g.pb, t.pr = g.kw - 1 - g.pr;
  return t;
}
inline bool igrad_as_conv(const Geom& g) { return g.stride == 1 && !g.depthwise() && !g.identity_col(); }

template <class T>
void blocktranspose(const T* w, const Geom& g, T* wt) {
  const int64_t taps = g.kh * g.kw;
  for (int64_t o = 0; o < g.cout; ++o)
    for (int64_t c = 0; c < g.cin; ++c)
      for (int64_t t = 0; t < taps; ++t) wt[(c * g.cout + o) * taps + (taps - 1 - t)] = w[(o * g.cin + c) * taps + t];
}

enum class Kind : int { Conv = 0, Linear = 1, Relu = 2, AvgPool = 3, MaxPool = 4, Add = 5 };

struct Node {
  Kind kind = Kind::Relu;
  int in0 = -1, in1 = -1, out = -1, param = -1;
  Geom g;                      // conv; pools use kh, kw, stride of it
  int kernel[3] = {kDefaultKernel, kDefaultKernel, kDefaultKernel};  // forward, weight grad, input grad
};

struct Shape {
  int64_t c = 0, h = 1, w = 1;
  int64_t size() const { return c * h * w; }
};

// One matmul of a step, for the tuner: which node and step, M, N, K and operand transposes.
struct MatmulShape {
  int node, step;
  int64_t m, n, k;
  bool trans_a, trans_b;
};

template <class T>
class Engine {
 public:
  struct Value {
    Shape s;
    std::vector<T> data, grad;
    bool needs_grad = true;
  };
  struct Param {
    int64_t w_size = 0, b_size = 0;
    std::vector<T> w, b, gw, gb, vw, vb;
  };

  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<Param> params;
  bool acc16 = false, input_grad = false;
  int threads = 1, loss_value = -1;

  explicit Engine(Shape input) { add_value(input, false); }

  int add_value(Shape s, bool needs_grad = true) {
    Value v;
    v.s = s;
    v.data.assign(static_cast<size_t>(s.size()), T(0));
    v.grad.assign(static_cast<size_t>(s.size()), T(0));
    v.needs_grad = needs_grad;
    values.push_back(std::move(v));
    return static_cast<int>(values.size()) - 1;
  }
  int add_param(int64_t w_size, int64_t b_size) {
    Param p;
    p.w_size = w_size;
    p.b_size = b_size;
    for (auto* v : {&p.w, &p.gw, &p.vw}) v->assign(static_cast<size_t>(w_size), T(0));
    for (auto* v : {&p.b, &p.gb, &p.vb}) v->assign(static_cast<size_t>(b_size), T(0));
    params.push_back(std::move(p));
    return static_cast<int>(params.size()) - 1;
  }

  // One float plane (a depthwise output, or a padded input of the wide-row kernels); three are kept.
  int64_t plane_floats() const {
    int64_t most = 1;
    for (const Value& v : values) most = std::max(most, v.s.h * v.s.w);
    for (const Node& nd : nodes)
      if (nd.kind == Kind::Conv && nd.g.depthwise()) most = std::max(most, serial::Wide(nd.g).padded_floats());
    return most;
  }

  int64_t col_floats() const {
    int64_t most = 0;
    for (const Node& nd : nodes)
      if (nd.kind == Kind::Conv) {
        most = std::max(most, nd.g.cin * nd.g.kh * nd.g.kw * nd.g.p());
        if (igrad_as_conv(nd.g))
          most = std::max({most, nd.g.cout * nd.g.kh * nd.g.kw * nd.g.h * nd.g.w, nd.g.cin * nd.g.h * nd.g.w});
      }
      else if (nd.kind == Kind::Linear) most = std::max(most, values[nd.in0].s.size());
    return most;
  }

  std::vector<MatmulShape> matmul_shapes() const {
    std::vector<MatmulShape> out;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const Node& nd = nodes[i];
      const int id = static_cast<int>(i);
      if (nd.kind == Kind::Conv && !nd.g.depthwise()) {
        const int64_t co = nd.g.cout, k = nd.g.k(), p = nd.g.p();
        out.push_back({id, 0, co, p, k, false, false});
        out.push_back({id, 1, co, k, p, false, true});
        if (values[nd.in0].needs_grad || input_grad) {
          if (igrad_as_conv(nd.g)) out.push_back({id, 2, nd.g.cin, nd.g.h * nd.g.w, k * co / nd.g.cin, false, false});
          else out.push_back({id, 2, k, p, co, true, false});
        }
      } else if (nd.kind == Kind::Linear) {
        const int64_t o = values[nd.out].s.size(), in = values[nd.in0].s.size();
        out.push_back({id, 0, o, 1, in, false, false});
        out.push_back({id, 1, o, in, 1, false, false});
        if (values[nd.in0].needs_grad || input_grad) out.push_back({id, 2, in, 1, o, true, false});
      }
    }
    return out;
  }

  // Per-node seconds of the last step (forward, backward) when `timing` is on.
  bool timing = false;
  std::vector<double> t_fwd, t_bwd;

  // this thread's CPU time: on a shared machine wall time counts other processes' turns
  static double now() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  }

  void forward() {
    scratch.resize(static_cast<size_t>(std::max<int64_t>(col_floats(), 1)));
    plane.resize(static_cast<size_t>(3 * plane_floats()));
    t_fwd.assign(nodes.size(), 0.0);
    for (size_t ni = 0; ni < nodes.size(); ++ni) {
      const Node& nd = nodes[ni];
      const double t0 = timing ? now() : 0.0;
      const Value& x = values[nd.in0];
      Value& y = values[nd.out];
      switch (nd.kind) {
        case Kind::Conv: {
          const Geom& g = nd.g;
          const Param& p = params[nd.param];
          if (g.depthwise() && g.stride == 1) {
            serial::dw_forward_wide(x.data.data(), p.w.data(), g, y.data.data(), acc16, plane.data(),
                                    plane.data() + plane_floats());
          } else if (g.depthwise()) {
            serial::im2col(x.data.data(), g, scratch.data());
            serial::dw_forward(scratch.data(), p.w.data(), g, y.data.data(), acc16, plane.data());
          } else {
            const T* col = x.data.data();
            if (!g.identity_col()) {
              serial::im2col(x.data.data(), g, scratch.data());
              col = scratch.data();
            }
            matmul(p.w.data(), g.k(), 1, col, g.p(), 1, y.data.data(), g.cout, g.p(), g.k(), acc16, nd.kernel[0], threads);
          }
          if (p.b_size) serial::bias_add(y.data.data(), p.b.data(), g.cout, g.p());
          break;
        }
        case Kind::Linear: {
          const Param& p = params[nd.param];
          const int64_t o = y.s.size(), in = x.s.size();
          matmul(p.w.data(), in, 1, x.data.data(), 1, 1, y.data.data(), o, 1, in, acc16, nd.kernel[0], threads);
          if (p.b_size) serial::bias_add(y.data.data(), p.b.data(), o, 1);
          break;
        }
        case Kind::Relu: serial::relu(x.data.data(), x.s.size(), y.data.data()); break;
        case Kind::AvgPool:
          serial::avgpool(x.data.data(), x.s.c, x.s.h, x.s.w, nd.g.kh, nd.g.kw, nd.g.stride, y.data.data());
          break;
        case Kind::MaxPool:
          serial::maxpool(x.data.data(), x.s.c, x.s.h, x.s.w, nd.g.kh, nd.g.kw, nd.g.stride, y.data.data());
          break;
        case Kind::Add: serial::add(x.data.data(), values[nd.in1].data.data(), x.s.size(), y.data.data()); break;
      }
      if (timing) t_fwd[ni] = now() - t0;
    }
  }

  // Gradients of every parameter (and of the input with input_grad), from the loss value's grad.
  void backward() {
    scratch.resize(static_cast<size_t>(std::max<int64_t>(col_floats(), 1)));
    dscratch.resize(scratch.size());
    plane.resize(static_cast<size_t>(3 * plane_floats()));
    for (size_t i = 0; i < values.size(); ++i)
      if (static_cast<int>(i) != loss_value) std::fill(values[i].grad.begin(), values[i].grad.end(), T(0));
    t_bwd.assign(nodes.size(), 0.0);
    for (size_t ni = nodes.size(); ni-- > 0;) {
      const double t0 = timing ? now() : 0.0;
      const Node& nd = nodes[ni];
      Value& x = values[nd.in0];
      const Value& y = values[nd.out];
      const bool dx_wanted = x.needs_grad || (nd.in0 == 0 && input_grad);
      switch (nd.kind) {
        case Kind::Conv: {
          const Geom& g = nd.g;
          Param& p = params[nd.param];
          if (p.b_size) serial::bias_grad(y.grad.data(), g.cout, g.p(), p.gb.data());
          if (g.depthwise() && g.stride == 1) {
            float* pl = plane.data();
            const int64_t n = plane_floats();
            serial::dw_backward_wide(x.data.data(), p.w.data(), y.grad.data(), g, p.gw.data(),
                                     dx_wanted ? x.grad.data() : static_cast<T*>(nullptr), acc16, pl, pl + n, pl + 2 * n);
            break;
          }
          if (g.depthwise()) {
            serial::im2col(x.data.data(), g, scratch.data());
            serial::dw_wgrad(scratch.data(), y.grad.data(), g, p.gw.data(), acc16);
            if (dx_wanted) {
              serial::dw_igrad_col(p.w.data(), y.grad.data(), g, dscratch.data());
              serial::col2im_add(dscratch.data(), g, x.grad.data());
            }
            break;
          }
          const T* col = x.data.data();
          if (!g.identity_col()) {
            serial::im2col(x.data.data(), g, scratch.data());
            col = scratch.data();
          }
          const int64_t co = g.cout, k = g.k(), pp = g.p();
          matmul(y.grad.data(), pp, 1, col, 1, pp, p.gw.data(), co, k, pp, acc16, nd.kernel[1], threads);
          if (dx_wanted && igrad_as_conv(g)) {
            const Geom t = transposed_geom(g);
            wt.resize(static_cast<size_t>(co * k));
            blocktranspose(p.w.data(), g, wt.data());
            serial::im2col(y.grad.data(), t, scratch.data());
            matmul(wt.data(), t.k(), 1, scratch.data(), t.p(), 1, dscratch.data(), g.cin, t.p(), t.k(), acc16,
                   nd.kernel[2], threads);
            serial::add_into(dscratch.data(), x.s.size(), x.grad.data());
          } else if (dx_wanted) {
            matmul(p.w.data(), 1, k, y.grad.data(), pp, 1, dscratch.data(), k, pp, co, acc16, nd.kernel[2], threads);
            if (g.identity_col()) serial::add_into(dscratch.data(), x.s.size(), x.grad.data());
            else serial::col2im_add(dscratch.data(), g, x.grad.data());
          }
          break;
        }
        case Kind::Linear: {
          Param& p = params[nd.param];
          const int64_t o = y.s.size(), in = x.s.size();
          if (p.b_size) serial::bias_grad(y.grad.data(), o, 1, p.gb.data());
          matmul(y.grad.data(), 1, 1, x.data.data(), 1, 1, p.gw.data(), o, in, 1, acc16, nd.kernel[1], threads);
          if (dx_wanted) {
            matmul(p.w.data(), 1, in, y.grad.data(), 1, 1, dscratch.data(), in, 1, o, acc16, nd.kernel[2], threads);
            serial::add_into(dscratch.data(), in, x.grad.data());
          }
          break;
        }
        case Kind::Relu:
          if (dx_wanted) serial::relu_grad_add(y.data.data(), y.grad.data(), y.s.size(), x.grad.data());
          break;
        case Kind::AvgPool:
          if (dx_wanted)
            serial::avgpool_grad_add(y.grad.data(), x.s.c, x.s.h, x.s.w, nd.g.kh, nd.g.kw, nd.g.stride, x.grad.data());
          break;
        case Kind::MaxPool:
          if (dx_wanted)
            serial::maxpool_grad_add(x.data.data(), y.grad.data(), x.s.c, x.s.h, x.s.w, nd.g.kh, nd.g.kw, nd.g.stride,
                                     x.grad.data());
          break;
        case Kind::Add: {
          if (dx_wanted) serial::add_into(y.grad.data(), y.s.size(), x.grad.data());
          Value& x1 = values[nd.in1];
          if (x1.needs_grad || (nd.in1 == 0 && input_grad)) serial::add_into(y.grad.data(), y.s.size(), x1.grad.data());
          break;
        }
      }
      if (timing) t_bwd[ni] = now() - t0;
    }
  }

  // Forward, loss; if finite, backward and SGD (lr 0 keeps the weights). Returns the loss.
  float step(int64_t label, float lr, float momentum, bool update) {
    forward();
    Value& z = values[loss_value];
    const float loss = serial::cross_entropy(z.data.data(), z.s.size(), label, z.grad.data());
    if (!std::isfinite(loss)) return loss;
    backward();
    if (update)
      for (Param& p : params) {
        serial::sgd(p.w.data(), p.gw.data(), p.vw.data(), p.w_size, lr, momentum);
        if (p.b_size) serial::sgd(p.b.data(), p.gb.data(), p.vb.data(), p.b_size, lr, momentum);
      }
    return loss;
  }

  // Bytes the engine holds for a step: values and their grads, parameters with grads and
  // momentum, and the two col scratch buffers.
  int64_t bytes(bool momentum) const {
    int64_t n = 0;
    for (const Value& v : values) n += 2 * v.s.size();
    for (const Param& p : params) n += (momentum ? 3 : 2) * (p.w_size + p.b_size);
    n += 2 * col_floats();
    int64_t wt_most = 0;  // the blocktransposed weight, sized for the largest stride-1 conv
    for (const Node& nd : nodes)
      if (nd.kind == Kind::Conv && igrad_as_conv(nd.g)) wt_most = std::max(wt_most, nd.g.cout * nd.g.k());
    n += wt_most;
    return n * static_cast<int64_t>(sizeof(T)) + 3 * plane_floats() * 4;
  }

 private:
  std::vector<T> scratch, dscratch, wt;  // wt: the blocktransposed weight of a stride-1 input grad
  std::vector<float> plane;  // depthwise sums of one channel
};

}  // namespace odl
}  // namespace frugalnn
