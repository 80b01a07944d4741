// Bindings of the delta-inference engine: `_core.delta.Engine`. A program is built layer by layer
// (add_layer, add_conv, add_identity, add_mean), checked by finish(), then run frame by frame
// (reset, push). Every size, index and value is checked here; a wrong one raises ValueError or
// TypeError naming it.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "common/arrays.h"
#include "delta/driver.h"

namespace frugalnn {
namespace {

constexpr int64_t kMaxElements = int64_t(1) << 30;  // flat indices are int32

std::string s(int64_t v) { return std::to_string(v); }

class PyEngine {
 public:
  int64_t add_layer(int64_t c, int64_t h, int64_t w, bool relu, std::optional<Array> step, double threshold,
                    std::optional<Array> bias) {
    if (finished_) throw nb::value_error("add_layer: the program is finished");
    if (c < 1 || h < 1 || w < 1)
      throw nb::value_error(("add_layer: expected c, h, w >= 1, got " + s(c) + ", " + s(h) + ", " + s(w)).c_str());
    const int64_t n = checked_product({c, h, w}, "add_layer: c x h x w");
    if (n > kMaxElements) throw nb::value_error(("add_layer: " + s(n) + " elements, at most 2^30").c_str());
    if (!(std::isfinite(threshold) && threshold >= 0))
      throw nb::value_error(("threshold: expected a finite value >= 0, got " + std::to_string(threshold)).c_str());
    delta::Layer L;
    L.c = c;
    L.h = h;
    L.w = w;
    L.relu = relu;
    L.threshold = threshold;
    if (step) {
      const double* q = typed<double>(*step, "step", {c});
      for (int64_t i = 0; i < c; ++i)
        if (!(std::isfinite(q[i]) && q[i] > 0))
          throw nb::value_error(("step: expected finite values > 0, got " + std::to_string(q[i]) + " at " + s(i)).c_str());
      L.step.assign(q, q + c);
    }
    if (bias) {
      const double* b = typed<double>(*bias, "bias", {c});
      for (int64_t i = 0; i < c; ++i)
        if (!std::isfinite(b[i])) throw nb::value_error(("bias: non-finite value at " + s(i)).c_str());
      L.bias.assign(b, b + c);
    }
    if (layers().empty() && bias) throw nb::value_error("bias: the input layer (layer 0) takes none");
    layers().push_back(std::move(L));
    return static_cast<int64_t>(layers().size()) - 1;
  }

  void add_conv(int64_t dst, int64_t src, Array weight, int64_t stride, int64_t pad) {
    delta::Edge e = edge(dst, src, delta::EdgeKind::Conv);
    const delta::Layer &S = layers()[src], &D = layers()[dst];
    if (weight.ndim() != 4) throw nb::value_error(("weight: expected [k, k, cin, cout], got " + shape_string(weight)).c_str());
    const int64_t k = static_cast<int64_t>(weight.shape(0));
    const float* w = typed<float>(weight, "weight", {k, k, S.c, D.c});
    if (k < 1 || k > 64 || stride < 1 || pad < 0 || pad >= k)
      throw nb::value_error(("conv: expected 1 <= k <= 64, stride >= 1, 0 <= pad < k, got k=" + s(k) + ", stride=" + s(stride) +
                             ", pad=" + s(pad)).c_str());
    const int64_t ho = (S.h + 2 * pad - k) / stride + 1, wo = (S.w + 2 * pad - k) / stride + 1;
    if (S.h + 2 * pad < k || S.w + 2 * pad < k || ho != D.h || wo != D.w)
      throw nb::value_error(("conv: a " + s(S.h) + "x" + s(S.w) + " input with k=" + s(k) + ", stride=" + s(stride) +
                             ", pad=" + s(pad) + " gives " + s(ho) + "x" + s(wo) + ", layer " + s(dst) + " is " +
                             s(D.h) + "x" + s(D.w)).c_str());
    const int64_t n = checked_product({k, k, S.c, D.c}, "weight size");
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(w[i])) throw nb::value_error(("weight: non-finite value at flat index " + s(i)).c_str());
    e.k = k;
    e.stride = stride;
    e.pad = pad;
    e.cin = S.c;
    e.cout = D.c;
    e.w.assign(w, w + n);
    layers()[dst].in.push_back(std::move(e));
  }

  void add_identity(int64_t dst, int64_t src) {
    delta::Edge e = edge(dst, src, delta::EdgeKind::Identity);
    const delta::Layer &S = layers()[src], &D = layers()[dst];
    if (S.c != D.c || S.h != D.h || S.w != D.w)
      throw nb::value_error(("identity: layer " + s(src) + " and layer " + s(dst) + " differ in shape").c_str());
    layers()[dst].in.push_back(std::move(e));
  }

  void add_mean(int64_t dst, int64_t src) {
    delta::Edge e = edge(dst, src, delta::EdgeKind::Mean);
    const delta::Layer &S = layers()[src], &D = layers()[dst];
    if (D.h != 1 || D.w != 1 || D.c != S.c)
      throw nb::value_error(("mean: layer " + s(dst) + " must be 1x1 with the " + s(S.c) + " channels of layer " + s(src)).c_str());
    layers()[dst].in.push_back(std::move(e));
  }

  void finish() {
    if (layers().size() < 2) throw nb::value_error("finish: a program needs an input layer and at least one more");
    for (size_t l = 1; l < layers().size(); ++l)
      if (layers()[l].in.empty()) throw nb::value_error(("finish: layer " + s(l) + " has no inputs").c_str());
    finished_ = true;
    engine_.reset();
  }

  void reset() {
    require_finished();
    engine_.reset();
  }

  void push(Array frame, OutArray out, int64_t threads_arg, bool dense) {
    require_finished();
    const delta::Layer &I = layers()[0], &O = layers().back();
    const float* f = typed<float>(frame, "frame", {I.c, I.h, I.w});
    float* o = typed<float>(out, "out", {O.size()});
    require_disjoint(frame, out, "frame", "out");
    const int threads = resolve_threads(threads_arg);
    for (int64_t i = 0; i < I.size(); ++i)
      if (!std::isfinite(f[i])) throw nb::value_error(("frame: non-finite value at flat index " + s(i)).c_str());
    nb::gil_scoped_release release;
    engine_.push(f, o, threads, dense);
  }

  std::vector<int64_t> macs() const {
    std::vector<int64_t> r;
    for (const auto& L : engine_.layers) r.push_back(L.macs);
    return r;
  }
  std::vector<int64_t> nonzeros() const {
    std::vector<int64_t> r;
    for (const auto& L : engine_.layers) r.push_back(L.out.n);
    return r;
  }
  int64_t n_layers() const { return static_cast<int64_t>(engine_.layers.size()); }

 private:
  delta::Engine engine_;
  bool finished_ = false;

  std::vector<delta::Layer>& layers() { return engine_.layers; }
  void require_finished() const {
    if (!finished_) throw nb::value_error("the program is not finished (call finish() first)");
  }
  delta::Edge edge(int64_t dst, int64_t src, delta::EdgeKind kind) {
    if (finished_) throw nb::value_error("the program is finished");
    const int64_t n = static_cast<int64_t>(layers().size());
    if (dst < 1 || dst >= n) throw nb::value_error(("dst: expected a layer 1.." + s(n - 1) + ", got " + s(dst)).c_str());
    if (src < 0 || src >= dst) throw nb::value_error(("src: expected an earlier layer 0.." + s(dst - 1) + ", got " + s(src)).c_str());
    delta::Edge e;
    e.kind = kind;
    e.src = static_cast<int>(src);
    return e;
  }
};

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_delta(nanobind::module_& m) {
  using namespace frugalnn;
  auto sub = m.def_submodule("delta", "Delta inference engine: sparse temporal deltas through conv/linear/relu/pool/residual.");
  nb::class_<PyEngine>(sub, "Engine")
      .def(nb::init<>())
      .def("add_layer", &PyEngine::add_layer, nb::arg("c"), nb::arg("h"), nb::arg("w"), nb::arg("relu"),
           nb::arg("step").none(), nb::arg("threshold"), nb::arg("bias").none())
      .def("add_conv", &PyEngine::add_conv, nb::arg("dst"), nb::arg("src"), nb::arg("weight"), nb::arg("stride"),
           nb::arg("pad"))
      .def("add_identity", &PyEngine::add_identity, nb::arg("dst"), nb::arg("src"))
      .def("add_mean", &PyEngine::add_mean, nb::arg("dst"), nb::arg("src"))
      .def("finish", &PyEngine::finish)
      .def("reset", &PyEngine::reset)
      .def("push", &PyEngine::push, nb::arg("frame"), nb::arg("out"), nb::arg("threads") = -1, nb::arg("dense") = false)
      .def("macs", &PyEngine::macs)
      .def("nonzeros", &PyEngine::nonzeros)
      .def("n_layers", &PyEngine::n_layers);
}
