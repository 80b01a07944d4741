// Bindings for the ODL primitives: `matmul` (one kernel of the family, for tests and the tuner)
// and `Net`, the batch-1 training engine (driver.h) that frugalnn.odl.compile builds from a torch
// model. Every argument is checked here; the engine itself assumes a consistent graph.
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/arrays.h"
#include "common/checked.h"
#include "odl/driver.h"

namespace frugalnn {
namespace {

using odl::Engine;
using odl::Geom;
using odl::Kind;
using odl::Node;
using odl::Shape;

std::string s(int64_t v) { return std::to_string(v); }

bool is_f16(const Array& a) { return a.dtype() == nb::dtype<uint16_t>(); }

int kernel_arg(int64_t kernel) {
  if (kernel == -1) return odl::kDefaultKernel;
  if (kernel < 0 || kernel >= odl::kNumKernels)
    throw nb::value_error(("kernel: expected -1 or 0.." + s(odl::kNumKernels - 1) + ", got " + s(kernel)).c_str());
  return static_cast<int>(kernel);
}

// out[M, N] = op(a) . op(b); a [M, K] ([K, M] with trans_a), b [K, N] ([N, K] with trans_b); all
// float32, or all uint16 holding fp16 bits.
template <class T>
void matmul_t(Array a, Array b, OutArray out, bool ta, bool tb, bool acc16, int kernel, int threads) {
  const T* ap = typed<T>(a, "a", {-1, -1});
  const int64_t m = ta ? a.shape(1) : a.shape(0), k = ta ? a.shape(0) : a.shape(1);
  const T* bp = tb ? typed<T>(b, "b", {-1, k}) : typed<T>(b, "b", {k, -1});
  const int64_t n = tb ? b.shape(0) : b.shape(1);
  T* op = typed<T>(out, "out", {m, n});
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  if (is_empty(out)) return;
  nb::gil_scoped_release release;
  odl::matmul(ap, ta ? 1 : k, ta ? m : 1, bp, tb ? 1 : n, tb ? k : 1, op, m, n, k, acc16, kernel, threads);
}

void matmul(Array a, Array b, OutArray out, bool trans_a, bool trans_b, bool acc16, int64_t kernel, int64_t threads) {
  const int id = kernel_arg(kernel);
  const int t = resolve_threads(threads);
  if (is_f16(a)) return matmul_t<uint16_t>(a, b, out, trans_a, trans_b, acc16, id, t);
  if (acc16) throw nb::value_error("acc16: fp16 accumulation needs fp16 (uint16) operands");
  matmul_t<float>(a, b, out, trans_a, trans_b, false, id, t);
}

nb::ndarray<nb::numpy, float> to_numpy(std::vector<float>&& v) {
  auto* data = new std::vector<float>(std::move(v));
  nb::capsule owner(data, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return nb::ndarray<nb::numpy, float>(data->data(), {data->size()}, owner);
}

class Net {
 private:
  std::unique_ptr<Engine<float>> f32_;
  std::unique_ptr<Engine<uint16_t>> f16_;

  template <class F>
  auto visit(F&& f) {
    return f32_ ? f(*f32_) : f(*f16_);
  }

  static Shape shape(int64_t c, int64_t h, int64_t w, const char* what) {
    if (c < 1 || h < 1 || w < 1 || c > (int64_t(1) << 24) || h > (int64_t(1) << 16) || w > (int64_t(1) << 16))
      throw nb::value_error((std::string(what) + ": expected 1 <= C <= 2^24 and 1 <= H, W <= 2^16, got " + s(c) + "x" +
                             s(h) + "x" + s(w)).c_str());
    if (checked_mul(checked_mul(c, h, what), w, what) > (int64_t(1) << 28))
      throw nb::value_error((std::string(what) + ": more than 2^28 elements (" + s(c) + "x" + s(h) + "x" + s(w) + ")").c_str());
    return Shape{c, h, w};
  }

  Shape value(int64_t v) {
    return visit([&](auto& e) {
      if (v < 0 || v >= static_cast<int64_t>(e.values.size()))
        throw nb::value_error(("value: expected an id 0.." + s(static_cast<int64_t>(e.values.size()) - 1) + ", got " + s(v)).c_str());
      return e.values[v].s;
    });
  }

  size_t param_index(int64_t i) {
    const int64_t n = n_params();
    if (i < 0 || i >= n) throw nb::value_error(("param: expected 0.." + s(n - 1) + ", got " + s(i)).c_str());
    return static_cast<size_t>(i);
  }

  void load_input(const Array& x) {
    visit([&](auto& e) {
      if (e.loss_value < 0) throw nb::value_error("Net: set_loss() was not called");
      const Shape in = e.values[0].s;
      const float* xp = typed<float>(x, "x", {in.c, in.h, in.w});
      using T = typename std::decay_t<decltype(e.values[0].data)>::value_type;
      for (int64_t j = 0; j < in.size(); ++j) {
        if (!std::isfinite(xp[j]))
          throw nb::value_error(("x: non-finite value " + std::to_string(xp[j]) + " at flat index " + s(j)).c_str());
        e.values[0].data[j] = odl::st<T>(xp[j]);
      }
    });
  }

 public:
  Net(const std::string& dtype, int64_t c, int64_t h, int64_t w, bool acc16, int64_t threads) {
    if (dtype != "fp32" && dtype != "fp16")
      throw nb::value_error(("dtype: expected 'fp32' or 'fp16', got '" + dtype + "'").c_str());
    if (acc16 && dtype != "fp16") throw nb::value_error("acc16: fp16 accumulation needs dtype 'fp16'");
    const Shape in = shape(c, h, w, "input");
    if (dtype == "fp32") f32_ = std::make_unique<Engine<float>>(in);
    else f16_ = std::make_unique<Engine<uint16_t>>(in);
    visit([&](auto& e) { e.acc16 = acc16; });
    set_threads(threads);
  }

  std::string dtype() const { return f32_ ? "fp32" : "fp16"; }
  void set_threads(int64_t t) { visit([&](auto& e) { e.threads = resolve_threads(t); }); }

  int conv(int64_t x, int64_t cout, int64_t kh, int64_t kw, int64_t stride, int64_t pt, int64_t pl, int64_t pb,
           int64_t pr, int64_t groups, bool bias) {
    const Shape in = value(x);
    Geom g;
    g.cin = in.c, g.h = in.h, g.w = in.w, g.cout = cout, g.kh = kh, g.kw = kw, g.stride = stride;
    g.pt = pt, g.pl = pl, g.pb = pb, g.pr = pr, g.groups = groups;
    if (cout < 1 || kh < 1 || kw < 1 || stride < 1 || kh > 64 || kw > 64 || stride > 64)
      throw nb::value_error(("conv: expected cout, kernel, stride >= 1 (kernel, stride <= 64), got cout " + s(cout) +
                             ", kernel " + s(kh) + "x" + s(kw) + ", stride " + s(stride)).c_str());
    if (pt < 0 || pl < 0 || pb < 0 || pr < 0 || pt >= kh || pb >= kh || pl >= kw || pr >= kw)
      throw nb::value_error(("conv: padding must be in 0..kernel-1, got (top, left, bottom, right) = (" + s(pt) + ", " +
                             s(pl) + ", " + s(pb) + ", " + s(pr) + ") for kernel " + s(kh) + "x" + s(kw)).c_str());
    if (groups != 1 && !(groups == in.c && cout == in.c))
      throw nb::value_error(("conv: groups must be 1 or equal in and out channels (depthwise), got groups " +
                             s(groups) + " with " + s(in.c) + " -> " + s(cout) + " channels").c_str());
    if (in.h + pt + pb < kh || in.w + pl + pr < kw)
      throw nb::value_error(("conv: kernel " + s(kh) + "x" + s(kw) + " larger than the padded input " +
                             s(in.h + pt + pb) + "x" + s(in.w + pl + pr)).c_str());
    const int64_t k = checked_mul(checked_mul(in.c / groups, kh, "conv K"), kw, "conv K");
    checked_mul(checked_mul(k, g.ho(), "conv col"), g.wo(), "conv col");
    const int64_t w_size = checked_mul(cout, k, "conv weight");
    const Shape out = shape(cout, g.ho(), g.wo(), "conv output");
    return visit([&](auto& e) {
      Node nd;
      nd.kind = Kind::Conv;
      nd.g = g;
      nd.in0 = static_cast<int>(x);
      nd.param = e.add_param(w_size, bias ? cout : 0);
      nd.out = e.add_value(out);
      e.nodes.push_back(nd);
      return nd.out;
    });
  }

  int linear(int64_t x, int64_t out, bool bias) {
    const Shape in = value(x);
    const Shape o = shape(out, 1, 1, "linear output");
    const int64_t w_size = checked_mul(out, in.size(), "linear weight");
    return visit([&](auto& e) {
      Node nd;
      nd.kind = Kind::Linear;
      nd.in0 = static_cast<int>(x);
      nd.param = e.add_param(w_size, bias ? out : 0);
      nd.out = e.add_value(o);
      e.nodes.push_back(nd);
      return nd.out;
    });
  }

  int unary(Kind kind, int64_t x, Shape out, Geom g = Geom()) {
    return visit([&](auto& e) {
      Node nd;
      nd.kind = kind;
      nd.in0 = static_cast<int>(x);
      nd.g = g;
      nd.out = e.add_value(out);
      e.nodes.push_back(nd);
      return nd.out;
    });
  }

  int relu(int64_t x) { return unary(Kind::Relu, x, value(x)); }

  int pool(bool max, int64_t x, int64_t kh, int64_t kw, int64_t stride) {
    const Shape in = value(x);
    if (kh < 1 || kw < 1 || stride < 1 || kh > in.h || kw > in.w)
      throw nb::value_error(("pool: expected 1 <= window <= input and stride >= 1, got window " + s(kh) + "x" + s(kw) +
                             ", stride " + s(stride) + " on " + s(in.h) + "x" + s(in.w)).c_str());
    Geom g;
    g.kh = kh, g.kw = kw, g.stride = stride;
    return unary(max ? Kind::MaxPool : Kind::AvgPool, x, Shape{in.c, (in.h - kh) / stride + 1, (in.w - kw) / stride + 1}, g);
  }

  int add(int64_t a, int64_t b) {
    const Shape sa = value(a), sb = value(b);
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
      throw nb::value_error(("add: shapes differ: " + s(sa.c) + "x" + s(sa.h) + "x" + s(sa.w) + " and " + s(sb.c) + "x" +
                             s(sb.h) + "x" + s(sb.w)).c_str());
    return visit([&](auto& e) {
      Node nd;
      nd.kind = Kind::Add;
      nd.in0 = static_cast<int>(a);
      nd.in1 = static_cast<int>(b);
      nd.out = e.add_value(sa);
      e.nodes.push_back(nd);
      return nd.out;
    });
  }

  void set_loss(int64_t v) {
    value(v);
    visit([&](auto& e) { e.loss_value = static_cast<int>(v); });
  }

  std::tuple<int64_t, int64_t, int64_t> value_shape(int64_t v) {
    const Shape sh = value(v);
    return {sh.c, sh.h, sh.w};
  }

  int64_t n_params() { return visit([](auto& e) { return static_cast<int64_t>(e.params.size()); }); }

  std::tuple<int64_t, int64_t> param_sizes(int64_t i) {
    return visit([&](auto& e) {
      auto& p = e.params.at(param_index(i));
      return std::tuple<int64_t, int64_t>{p.w_size, p.b_size};
    });
  }

  // Weights in, as float32 (rounded to the storage type); b empty for a layer without bias.
  void set_param(int64_t i, Array w, Array b) {
    const size_t idx = param_index(i);
    visit([&](auto& e) {
      auto& p = e.params[idx];
      const float* wp = typed<float>(w, "w", {p.w_size});
      const float* bp = typed<float>(b, "b", {p.b_size});
      using T = typename std::decay_t<decltype(e.params[0].w)>::value_type;
      for (int64_t j = 0; j < p.w_size; ++j) p.w[j] = odl::st<T>(wp[j]);
      for (int64_t j = 0; j < p.b_size; ++j) p.b[j] = odl::st<T>(bp[j]);
      std::fill(p.vw.begin(), p.vw.end(), T(0));
      std::fill(p.vb.begin(), p.vb.end(), T(0));
    });
  }

  // (w, b) or their last gradients (grad) as flat float32 arrays.
  std::tuple<nb::ndarray<nb::numpy, float>, nb::ndarray<nb::numpy, float>> get_param(int64_t i, bool grad) {
    const size_t idx = param_index(i);
    std::vector<float> w, b;
    visit([&](auto& e) {
      auto& p = e.params[idx];
      for (auto v : grad ? p.gw : p.w) w.push_back(odl::ld(v));
      for (auto v : grad ? p.gb : p.b) b.push_back(odl::ld(v));
    });
    return {to_numpy(std::move(w)), to_numpy(std::move(b))};
  }

  nb::ndarray<nb::numpy, float> forward(Array x) {
    load_input(x);
    std::vector<float> out;
    visit([&](auto& e) {
      {
        nb::gil_scoped_release release;
        e.forward();
      }
      for (auto v : e.values[e.loss_value].data) out.push_back(odl::ld(v));
    });
    return to_numpy(std::move(out));
  }

  float step(Array x, int64_t label, double lr, double momentum, bool update) {
    load_input(x);
    if (!std::isfinite(lr) || lr < 0) throw nb::value_error(("lr: expected a finite value >= 0, got " + std::to_string(lr)).c_str());
    if (!(momentum >= 0 && momentum < 1))
      throw nb::value_error(("momentum: expected 0 <= momentum < 1, got " + std::to_string(momentum)).c_str());
    return visit([&](auto& e) {
      const int64_t classes = e.values[e.loss_value].s.size();
      if (label < 0 || label >= classes)
        throw nb::value_error(("label: expected 0.." + s(classes - 1) + ", got " + s(label)).c_str());
      float loss;
      {
        nb::gil_scoped_release release;
        loss = e.step(label, static_cast<float>(lr), static_cast<float>(momentum), update);
      }
      if (!std::isfinite(loss))
        throw nb::value_error(("loss is not finite (" + std::to_string(loss) +
                               "): the step was not applied (lower the learning rate, or fp16 overflowed)").c_str());
      return loss;
    });
  }

  void set_input_grad(bool on) { visit([&](auto& e) { e.input_grad = on; }); }

  nb::ndarray<nb::numpy, float> input_grad() {
    std::vector<float> out;
    visit([&](auto& e) {
      if (!e.input_grad) throw nb::value_error("input_grad: call set_input_grad(True) before step()");
      for (auto v : e.values[0].grad) out.push_back(odl::ld(v));
    });
    return to_numpy(std::move(out));
  }

  std::vector<std::tuple<int, int, int64_t, int64_t, int64_t, bool, bool>> matmul_shapes() {
    std::vector<std::tuple<int, int, int64_t, int64_t, int64_t, bool, bool>> out;
    visit([&](auto& e) {
      for (const auto& m : e.matmul_shapes()) out.emplace_back(m.node, m.step, m.m, m.n, m.k, m.trans_a, m.trans_b);
    });
    return out;
  }

  void set_kernel(int64_t node, int64_t step, int64_t kernel) {
    const int id = kernel_arg(kernel);
    if (step < 0 || step > 2) throw nb::value_error(("step: expected 0, 1 or 2, got " + s(step)).c_str());
    visit([&](auto& e) {
      if (node < 0 || node >= static_cast<int64_t>(e.nodes.size()))
        throw nb::value_error(("node: expected 0.." + s(static_cast<int64_t>(e.nodes.size()) - 1) + ", got " + s(node)).c_str());
      e.nodes[node].kernel[step] = id;
    });
  }

  // [(kind, forward seconds, backward seconds)] per node of the last step; turns timing on.
  std::vector<std::tuple<int, double, double>> node_times() {
    std::vector<std::tuple<int, double, double>> out;
    visit([&](auto& e) {
      for (size_t i = 0; i < e.nodes.size(); ++i)
        out.emplace_back(static_cast<int>(e.nodes[i].kind), i < e.t_fwd.size() ? e.t_fwd[i] : 0.0,
                         i < e.t_bwd.size() ? e.t_bwd[i] : 0.0);
    });
    return out;
  }
  void set_timing(bool on) { visit([&](auto& e) { e.timing = on; }); }

  int64_t bytes(bool momentum) { return visit([&](auto& e) { return e.bytes(momentum); }); }

};

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_odl(nanobind::module_& m) {
  using namespace frugalnn;
  auto o = m.def_submodule("odl", "ODL: batch-1 CHW training primitives in fp32/fp16 (PULP-TrainLib).");
  o.def("matmul", &matmul, nb::arg("a"), nb::arg("b"), nb::arg("out"), nb::arg("trans_a") = false,
        nb::arg("trans_b") = false, nb::arg("acc16") = false, nb::arg("kernel") = -1, nb::arg("threads") = 1);
  o.attr("num_kernels") = odl::kNumKernels;
  o.attr("default_kernel") = odl::kDefaultKernel;
  nb::class_<Net>(o, "Net")
      .def(nb::init<const std::string&, int64_t, int64_t, int64_t, bool, int64_t>(), nb::arg("dtype"), nb::arg("c"),
           nb::arg("h"), nb::arg("w"), nb::arg("acc16") = false, nb::arg("threads") = 1)
      .def_prop_ro("dtype", &Net::dtype)
      .def("set_threads", &Net::set_threads, nb::arg("threads"))
      .def("conv", &Net::conv, nb::arg("x"), nb::arg("cout"), nb::arg("kh"), nb::arg("kw"), nb::arg("stride"),
           nb::arg("pt"), nb::arg("pl"), nb::arg("pb"), nb::arg("pr"), nb::arg("groups"), nb::arg("bias"))
      .def("linear", &Net::linear, nb::arg("x"), nb::arg("out"), nb::arg("bias"))
      .def("relu", &Net::relu, nb::arg("x"))
      .def("avgpool", [](Net& n, int64_t x, int64_t kh, int64_t kw, int64_t st) { return n.pool(false, x, kh, kw, st); },
           nb::arg("x"), nb::arg("kh"), nb::arg("kw"), nb::arg("stride"))
      .def("maxpool", [](Net& n, int64_t x, int64_t kh, int64_t kw, int64_t st) { return n.pool(true, x, kh, kw, st); },
           nb::arg("x"), nb::arg("kh"), nb::arg("kw"), nb::arg("stride"))
      .def("add", &Net::add, nb::arg("a"), nb::arg("b"))
      .def("set_loss", &Net::set_loss, nb::arg("value"))
      .def("value_shape", &Net::value_shape, nb::arg("value"))
      .def("n_params", &Net::n_params)
      .def("param_sizes", &Net::param_sizes, nb::arg("i"))
      .def("set_param", &Net::set_param, nb::arg("i"), nb::arg("w"), nb::arg("b"))
      .def("get_param", &Net::get_param, nb::arg("i"), nb::arg("grad") = false)
      .def("forward", &Net::forward, nb::arg("x"))
      .def("step", &Net::step, nb::arg("x"), nb::arg("label"), nb::arg("lr"), nb::arg("momentum") = 0.0,
           nb::arg("update") = true)
      .def("set_input_grad", &Net::set_input_grad, nb::arg("on"))
      .def("input_grad", &Net::input_grad)
      .def("matmul_shapes", &Net::matmul_shapes)
      .def("set_kernel", &Net::set_kernel, nb::arg("node"), nb::arg("step"), nb::arg("kernel"))
      .def("node_times", &Net::node_times)
      .def("set_timing", &Net::set_timing, nb::arg("on"))
      .def("bytes", &Net::bytes, nb::arg("momentum") = false);
}
