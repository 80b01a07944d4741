// Binding of the one-token Llama decoder (driver.h). Python (frugalnn/llm/fast.py) builds one
// from a torch Llama: norms, linear parts (float32 or LUT), the cache, then `step`.
// The decoder keeps a reference to every array it reads or writes, so none can be freed under it,
// and checks every shape once, at build time; `step` only checks its own arguments.
// Role: bind (argument checks, then calls into driver.h with the GIL released). LUT parts are
// checked against the T-MAC layout (csrc/lut/layout.h, which driver.h brings in with lut/driver.h).
#include <cmath>
#include <mutex>
#include <string>

#include <nanobind/stl/string.h>

#include "common/arrays.h"
#include "llama/driver.h"

namespace frugalnn {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

struct PyDecoder {
  llama::Decoder dec;
  std::vector<Array> keep;  // owners of every buffer `dec` points into
  std::vector<Span> spans;  // their memory: nothing the decoder writes may overlap it
  OutArray k_cache, v_cache;
  bool have_cache = false, finished = false;
  std::mutex busy;  // one step at a time: the scratch buffers are shared

  explicit PyDecoder(const llama::Dims& d) : dec(d) {}

  llama::Linear& slot(int64_t layer, const std::string& name, int64_t* k_expected) {
    const llama::Dims& d = dec.d_;
    if (name == "head") {
      *k_expected = d.dim;
      return dec.head;
    }
    if (layer < 0 || layer >= d.n_layers)
      throw nb::value_error(("layer: expected 0.." + str(d.n_layers - 1) + ", got " + str(layer)).c_str());
    llama::Layer& L = dec.layers_[static_cast<size_t>(layer)];
    if (name == "qkv" || name == "gate_up") {
      *k_expected = d.dim;
      return name == "qkv" ? L.qkv : L.gate_up;
    }
    if (name == "o") {
      *k_expected = d.n_heads * d.head_dim;
      return L.o;
    }
    if (name == "down") {
      *k_expected = d.ffn;
      return L.down;
    }
    throw nb::value_error(("slot: expected qkv, o, gate_up, down or head, got '" + name + "'").c_str());
  }

  void not_finished() {
    if (finished) throw nb::value_error("decoder: already finished; build a new one to change its weights");
  }

  void hold(std::initializer_list<Array> arrays) {
    for (const Array& a : arrays) {
      keep.push_back(a);
      spans.push_back(Span::of(a));
    }
  }

  // An array the decoder writes (logits, the caches) must not overlap anything it reads.
  template <class A>
  void require_not_held(const A& out, const char* name) const {
    const Span o = Span::of(out);
    for (const Span& sp : spans)
      if (o.overlaps(sp))
        throw nb::value_error((std::string(name) + " shares memory with one of the decoder's weights "
                               "(embedding, norms, rope table or a linear layer)").c_str());
  }
};

int check_threads(int64_t threads) { return resolve_threads(threads); }

// No Llama has more layers; the decoder allocates one slot per layer up front, before any array
// bounds the count (every other size is bounded by the arrays finish() checks).
constexpr int64_t kMaxLayers = 1 << 16;

llama::Dims make_dims(int64_t dim, int64_t n_layers, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                      int64_t rope_dim, int64_t ffn, int64_t vocab, int64_t max_pos, float eps) {
  const std::pair<const char*, int64_t> positive[] = {{"dim", dim},           {"n_layers", n_layers},
                                                      {"n_heads", n_heads},   {"n_kv_heads", n_kv_heads},
                                                      {"head_dim", head_dim}, {"ffn_dim", ffn},
                                                      {"vocab", vocab},       {"max_pos", max_pos}};
  for (const auto& [name, v] : positive)
    if (v < 1) throw nb::value_error((std::string(name) + ": expected >= 1, got " + str(v)).c_str());
  if (n_layers > kMaxLayers)
    throw nb::value_error(("n_layers: expected at most " + str(kMaxLayers) + ", got " + str(n_layers)).c_str());
  if (n_heads % n_kv_heads)
    throw nb::value_error(("n_heads (" + str(n_heads) + ") is not a multiple of n_kv_heads (" + str(n_kv_heads) + ")").c_str());
  if (rope_dim < 0 || rope_dim % 2 || rope_dim > head_dim)
    throw nb::value_error(("rope_dim: expected an even number in [0, " + str(head_dim) + "], got " + str(rope_dim)).c_str());
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    throw nb::value_error(("eps: expected a finite number >= 0, got " + std::to_string(eps)).c_str());
  // Every size the decoder derives from these (scratch, the rows finish() expects): wrapping here
  // let n_heads = 2^62 pass every check and write out of bounds (issue 19).
  const int64_t qkv_heads = checked_add(n_heads, checked_mul(2, n_kv_heads, "2 x n_kv_heads"), "n_heads + 2 n_kv_heads");
  checked_mul(qkv_heads, head_dim, "qkv rows ((n_heads + 2 n_kv_heads) x head_dim)");
  checked_mul(n_heads, head_dim, "attention width (n_heads x head_dim)");
  checked_mul(2, ffn, "gate_up rows (2 x ffn_dim)");
  return llama::Dims{dim, n_layers, n_heads, n_kv_heads, head_dim, rope_dim, ffn, vocab, max_pos, eps};
}

void init(PyDecoder* self, int64_t dim, int64_t n_layers, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
          int64_t rope_dim, int64_t ffn, int64_t vocab, int64_t max_pos, float eps, Array embedding, Array rope,
          Array out_norm, int64_t threads) {
  llama::Dims d = make_dims(dim, n_layers, n_heads, n_kv_heads, head_dim, rope_dim, ffn, vocab, max_pos, eps);
  // [vocab, dim], or [0, dim] for a model that gives each step its embedding row (step_row)
  const float* e = typed<float>(embedding, "embedding", {-1, dim});
  if (embedding.shape(0) != 0 && embedding.shape(0) != vocab)
    throw nb::value_error(("embedding: expected " + str(vocab) + " or 0 rows, got " + shape_string(embedding)).c_str());
  if (embedding.shape(0) == 0) e = nullptr;
  const float* r = typed<float>(rope, "rope", {max_pos, rope_dim / 2, 2});
  const float* n = typed<float>(out_norm, "out_norm", {dim});
  const int nthreads = check_threads(threads);
  new (self) PyDecoder(d);
  self->dec.embedding = e;
  self->dec.rope = r;
  self->dec.out_norm = n;
  self->dec.threads = nthreads;
  self->hold({embedding, rope, out_norm});
}

void set_norms(PyDecoder& self, int64_t layer, Array attn_norm, Array ffn_norm) {
  self.not_finished();
  const llama::Dims& d = self.dec.d_;
  if (layer < 0 || layer >= d.n_layers)
    throw nb::value_error(("layer: expected 0.." + str(d.n_layers - 1) + ", got " + str(layer)).c_str());
  llama::Layer& L = self.dec.layers_[static_cast<size_t>(layer)];
  L.attn_norm = typed<float>(attn_norm, "attn_norm", {d.dim});
  L.ffn_norm = typed<float>(ffn_norm, "ffn_norm", {d.dim});
  self.hold({attn_norm, ffn_norm});
}

void add_dense(PyDecoder& self, int64_t layer, const std::string& slot, Array w, int64_t threads) {
  self.not_finished();
  int64_t k = 0;
  llama::Linear& lin = self.slot(layer, slot, &k);
  llama::Part p;
  p.dense = typed<float>(w, "w", {-1, k});
  p.rows = w.shape(0);
  p.k = k;
  p.threads = check_threads(threads);
  lin.parts.push_back(p);
  self.hold({w});
}

void add_lut(PyDecoder& self, int64_t layer, const std::string& slot, Array packed, Array ws, Array zt, int64_t m,
             int64_t bits, int64_t group, bool has_zero, int64_t threads, int64_t units, int64_t cols, int64_t col_block,
             int64_t prefetch) {
  self.not_finished();
  int64_t k = 0;
  llama::Linear& lin = self.slot(layer, slot, &k);
  if (bits < 1 || bits > lut::kMaxBits) throw nb::value_error(("bits: expected 1..8, got " + str(bits)).c_str());
  if (m < 1) throw nb::value_error(("m: expected >= 1, got " + str(m)).c_str());
  if (group < 4 || group % 4 || k % group)
    throw nb::value_error(("group_size: expected a multiple of 4 dividing K = " + str(k) + ", got " + str(group)).c_str());
  if (k % 4) throw nb::value_error(("K: expected a multiple of 4 for LUT weights, got " + str(k)).c_str());
  if (units < 1 || units > 4) throw nb::value_error(("units: expected 1..4, got " + str(units)).c_str());
  if (cols < 1 || cols > 4) throw nb::value_error(("cols: expected 1..4, got " + str(cols)).c_str());
  if (col_block < 1) throw nb::value_error(("col_block: expected >= 1, got " + str(col_block)).c_str());
  if (prefetch < 0 || prefetch > (1 << 20))
    throw nb::value_error(("prefetch: expected 0..1048576 bytes, got " + str(prefetch)).c_str());
  llama::Part p;
  p.shape = lut::make_shape(m, k, group, bits);  // sizes checked against int64 (lut/layout.h)
  p.rows = m;
  p.k = k;
  p.lut.packed = typed<uint8_t>(packed, "packed", {p.shape.packed_bytes()});
  p.lut.ws = typed<float>(ws, "ws", {p.shape.units(), p.shape.groups(), lut::kUnitRows});
  p.lut.zt = typed<float>(zt, "zt", {p.shape.units(), p.shape.groups(), lut::kUnitRows});
  p.lut.has_zero = has_zero;
  p.cfg = lut::Config{static_cast<int>(units), static_cast<int>(cols), col_block, prefetch};
  p.threads = check_threads(threads);
  lin.parts.push_back(p);
  self.hold({packed, ws, zt});
}

// A LUT part with two-level (K-quant) scales (csrc/lut/layout.h; the arguments of _core.lut.matmul_kq).
void add_lut_kq(PyDecoder& self, int64_t layer, const std::string& slot, Array packed, Array sc, Array mn, Array d,
                Array dmin, int64_t m, int64_t bits, int64_t group, int64_t format, int64_t sub, int64_t zero,
                bool has_min, int64_t threads) {
  self.not_finished();
  int64_t k = 0;
  llama::Linear& lin = self.slot(layer, slot, &k);
  if (bits < 1 || bits > lut::kMaxBits) throw nb::value_error(("bits: expected 1..8, got " + str(bits)).c_str());
  if (m < 1) throw nb::value_error(("m: expected >= 1, got " + str(m)).c_str());
  if (group < 8 || k % group)
    throw nb::value_error(("group_size: expected a multiple of 8 dividing K = " + str(k) + ", got " + str(group)).c_str());
  if (format < lut::kScaleU8 || format > lut::kScaleOne)
    throw nb::value_error(("format: expected 0..3, got " + str(format)).c_str());
  if (sub < 8 || sub > 64 || sub % 8 || group % sub)
    throw nb::value_error(("sub: expected a multiple of 8 up to 64 dividing group_size, got " + str(sub)).c_str());
  if (zero < 0 || zero > (int64_t{1} << bits) - 1) throw nb::value_error(("zero: out of range, got " + str(zero)).c_str());
  if (has_min && format == lut::kScaleI8) throw nb::value_error("has_min: the i8 scale format has no mins");
  llama::Part p;
  p.shape = lut::make_shape(m, k, group, bits);
  p.rows = m;
  p.k = k;
  const int64_t nsub = group / sub;
  p.lut.packed = typed<uint8_t>(packed, "packed", {p.shape.packed_bytes()});
  p.two_level = true;
  p.kq.format = static_cast<int>(format);
  p.kq.sub = static_cast<int>(sub);
  p.kq.zero = static_cast<int>(zero);
  p.kq.has_min = has_min;
  if (format == lut::kScaleOne) {
    typed<uint8_t>(sc, "sc", {-1});
    typed<uint8_t>(mn, "mn", {-1});
  } else {
    p.kq.sc = typed<uint8_t>(sc, "sc", {p.shape.units(), p.shape.groups(), nsub, lut::kUnitRows});
    p.kq.mn = typed<uint8_t>(mn, "mn", {p.shape.units(), p.shape.groups(), nsub, lut::kUnitRows});
  }
  p.kq.d = typed<uint16_t>(d, "d", {p.shape.units(), p.shape.groups(), lut::kUnitRows});
  p.kq.dmin = typed<uint16_t>(dmin, "dmin", {p.shape.units(), p.shape.groups(), lut::kUnitRows});
  p.cfg = lut::Config{1, 1, 32, 0};
  p.threads = check_threads(threads);
  lin.parts.push_back(p);
  self.hold({packed, sc, mn, d, dmin});
}

void finish(PyDecoder& self) {
  const llama::Dims& d = self.dec.d_;
  auto need = [&](const llama::Linear& lin, const std::string& what, int64_t rows) {
    if (lin.rows() != rows)
      throw nb::value_error((what + ": parts give " + str(lin.rows()) + " output rows, expected " + str(rows)).c_str());
  };
  for (int64_t l = 0; l < d.n_layers; ++l) {
    const llama::Layer& L = self.dec.layers_[static_cast<size_t>(l)];
    const std::string at = "layer " + str(l) + " ";
    if (!L.attn_norm) throw nb::value_error((at + "norms: not set").c_str());
    need(L.qkv, at + "qkv", (d.n_heads + 2 * d.n_kv_heads) * d.head_dim);  // products checked in make_dims
    need(L.o, at + "o", d.dim);
    need(L.gate_up, at + "gate_up", 2 * d.ffn);
    need(L.down, at + "down", d.dim);
  }
  need(self.dec.head, "head", d.vocab);
  // Scratch only now: every size it takes is the row count or width of an array checked above.
  self.dec.allocate();
  self.finished = true;
}

void set_cache(PyDecoder& self, OutArray k, OutArray v) {
  const llama::Dims& d = self.dec.d_;
  float* kp = typed<float>(k, "k_cache", {d.n_layers, -1, d.n_kv_heads, -1, d.head_dim});
  float* vp = typed<float>(v, "v_cache", {d.n_layers, -1, d.n_kv_heads, -1, d.head_dim});
  for (size_t i = 0; i < 5; ++i)
    if (k.shape(i) != v.shape(i))
      throw nb::value_error(("v_cache: shape " + shape_string(v) + " differs from k_cache " + shape_string(k)).c_str());
  if (k.shape(1) < 1 || k.shape(3) < 1)
    throw nb::value_error(("k_cache: expected at least one batch row and one position, got shape " + shape_string(k)).c_str());
  require_disjoint(k, v, "k_cache", "v_cache");
  self.require_not_held(k, "k_cache");
  self.require_not_held(v, "v_cache");
  std::lock_guard<std::mutex> lock(self.busy);
  self.k_cache = k;
  self.v_cache = v;
  self.dec.cache = llama::Cache{kp, vp, static_cast<int64_t>(k.shape(1)), static_cast<int64_t>(k.shape(3))};
  self.have_cache = true;
}

// The checks step() and step_row() share: finished, a cache, pos in range, logits [vocab] apart from everything.
float* check_step(PyDecoder& self, int64_t pos, OutArray& logits) {
  const llama::Dims& d = self.dec.d_;
  if (!self.finished) throw nb::value_error("decoder: call finish() before step()");
  if (!self.have_cache) throw nb::value_error("decoder: no KV cache; call set_cache() first");
  const int64_t limit = self.dec.cache.max_len < d.max_pos ? self.dec.cache.max_len : d.max_pos;
  if (pos < 0 || pos >= limit)
    throw nb::value_error(("pos: expected 0.." + str(limit - 1) + " (cache and RoPE table), got " + str(pos)).c_str());
  float* out = typed<float>(logits, "logits", {d.vocab});
  require_disjoint(logits, self.k_cache, "logits", "k_cache");
  require_disjoint(logits, self.v_cache, "logits", "v_cache");
  self.require_not_held(logits, "logits");
  // weights added after set_cache (before finish) are checked here too
  self.require_not_held(self.k_cache, "k_cache");
  self.require_not_held(self.v_cache, "v_cache");
  return out;
}

void step(PyDecoder& self, int64_t token, int64_t pos, OutArray logits) {
  const llama::Dims& d = self.dec.d_;
  if (self.dec.embedding == nullptr)
    throw nb::value_error("decoder: built without an embedding table (0 rows); call step_row with the token's row");
  if (token < 0 || token >= d.vocab)
    throw nb::index_error(("token: id " + str(token) + " is out of range for a vocabulary of " + str(d.vocab)).c_str());
  float* out = check_step(self, pos, logits);
  nb::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(self.busy);
  self.dec.step(token, pos, out);
}

void step_row(PyDecoder& self, Array x, int64_t pos, OutArray logits) {
  const float* xp = typed<float>(x, "x", {self.dec.d_.dim});
  float* out = check_step(self, pos, logits);
  require_disjoint(x, logits, "x", "logits");  // x is read before logits are written, but say so plainly
  nb::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(self.busy);
  self.dec.step_row(xp, pos, out);
}

// ---- the decode step's pieces on their own (tested against frugalnn/kernels/llama_ref.py) ----

void k_rms_norm(Array x, Array w, float eps, OutArray out) {
  const float* xp = typed<float>(x, "x", {-1});
  const int64_t n = x.shape(0);
  const float* wp = typed<float>(w, "w", {n});
  float* op = typed<float>(out, "out", {n});
  if (n < 1) throw nb::value_error("x: expected at least one element");
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    throw nb::value_error(("eps: expected a finite number >= 0, got " + std::to_string(eps)).c_str());
  require_disjoint(w, out, "w", "out");
  require_disjoint_or_same(x, out, "x", "out");
  nb::gil_scoped_release release;
  llama::rms_norm(llama::avx2_active(), xp, wp, n, eps, op);
}

void k_rope(OutArray x, int64_t rope_dim, Array cs) {
  float* xp = typed<float>(x, "x", {-1, -1});
  const int64_t heads = x.shape(0), d = x.shape(1);
  if (rope_dim < 0 || rope_dim % 2 || rope_dim > d)
    throw nb::value_error(("rope_dim: expected an even number in [0, " + str(d) + "], got " + str(rope_dim)).c_str());
  const float* cp = typed<float>(cs, "cs", {rope_dim / 2, 2});
  require_disjoint(x, cs, "x", "cs");
  if (is_empty(x) || rope_dim == 0) return;  // (2^40, 0) looped over 2^40 empty heads
  nb::gil_scoped_release release;
  llama::rope(llama::avx2_active(), xp, heads, d, rope_dim, cp);
}

void k_attend(Array q, Array keys, Array values, double scale, OutArray out) {
  const float* qp = typed<float>(q, "q", {-1, -1});
  const int64_t g = q.shape(0), d = q.shape(1);
  const float* kp = typed<float>(keys, "keys", {-1, d});
  const int64_t s = keys.shape(0);
  const float* vp = typed<float>(values, "values", {s, d});
  float* op = typed<float>(out, "out", {g, d});
  if (s < 1) throw nb::value_error("keys: expected at least one position");
  const float scale32 = static_cast<float>(scale);
  if (!std::isfinite(scale) || !std::isfinite(scale32))  // as fused_attention (attention/bind.cpp)
    throw nb::value_error(("scale: expected a finite float32 value (|scale| <= 3.4e38), got " + std::to_string(scale)).c_str());
  require_disjoint(q, out, "q", "out");
  require_disjoint(keys, out, "keys", "out");
  require_disjoint(values, out, "values", "out");
  if (is_empty(out)) return;
  nb::gil_scoped_release release;
  std::vector<float> scores(static_cast<size_t>(s));
  llama::attend(llama::avx2_active(), llama::avx512_active(), qp, kp, vp, g, s, d, scale32, scores.data(), op);
}

void k_silu_mul(Array gate, Array up, OutArray out) {
  const float* gp = typed<float>(gate, "gate", {-1});
  const int64_t n = gate.shape(0);
  const float* up_ = typed<float>(up, "up", {n});
  float* op = typed<float>(out, "out", {n});
  require_disjoint_or_same(gate, out, "gate", "out");
  require_disjoint_or_same(up, out, "up", "out");
  nb::gil_scoped_release release;
  llama::silu_mul(llama::avx2_active(), gp, up_, n, op);
}

void k_gemv(Array w, Array x, OutArray out, int64_t threads) {
  const float* wp = typed<float>(w, "w", {-1, -1});
  const int64_t m = w.shape(0), k = w.shape(1);
  const float* xp = typed<float>(x, "x", {k});
  float* op = typed<float>(out, "out", {m});
  require_disjoint(w, out, "w", "out");
  require_disjoint(x, out, "x", "out");
  const int nthreads = resolve_threads(threads);
  nb::gil_scoped_release release;
  llama::Part p;
  p.dense = wp;
  p.rows = m;
  p.k = k;
  p.threads = nthreads;
  llama::dense(p, xp, op);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_llama(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("llama", "One-token Llama decode step over a torch model's buffers (csrc/llama/driver.h).");
  nb::class_<PyDecoder>(s, "Decoder")
      .def("__init__", &init, nb::arg("dim"), nb::arg("n_layers"), nb::arg("n_heads"), nb::arg("n_kv_heads"),
           nb::arg("head_dim"), nb::arg("rope_dim"), nb::arg("ffn_dim"), nb::arg("vocab"), nb::arg("max_pos"),
           nb::arg("eps"), nb::arg("embedding"), nb::arg("rope"), nb::arg("out_norm"), nb::arg("threads") = -1)
      .def("set_norms", &set_norms, nb::arg("layer"), nb::arg("attn_norm"), nb::arg("ffn_norm"))
      .def("add_dense", &add_dense, nb::arg("layer"), nb::arg("slot"), nb::arg("w"), nb::arg("threads") = -1)
      .def("add_lut", &add_lut, nb::arg("layer"), nb::arg("slot"), nb::arg("packed"), nb::arg("ws"), nb::arg("zt"),
           nb::arg("m"), nb::arg("bits"), nb::arg("group_size"), nb::arg("has_zero"), nb::arg("threads") = -1,
           nb::arg("units") = 1, nb::arg("cols") = 1, nb::arg("col_block") = 32, nb::arg("prefetch") = 0)
      .def("add_lut_kq", &add_lut_kq, nb::arg("layer"), nb::arg("slot"), nb::arg("packed"), nb::arg("sc"),
           nb::arg("mn"), nb::arg("d"), nb::arg("dmin"), nb::arg("m"), nb::arg("bits"), nb::arg("group_size"),
           nb::arg("format"), nb::arg("sub"), nb::arg("zero"), nb::arg("has_min"), nb::arg("threads") = -1)
      .def("finish", &finish)
      .def("set_cache", &set_cache, nb::arg("k_cache"), nb::arg("v_cache"))
      .def("step", &step, nb::arg("token"), nb::arg("pos"), nb::arg("logits"),
           "Run one token at position `pos` through every layer and the head; writes logits [vocab] "
           "and the token's k/v into the cache.")
      .def("step_row", &step_row, nb::arg("x"), nb::arg("pos"), nb::arg("logits"),
           "step() from the token's embedding row x [dim] float32, for a decoder built with a 0-row embedding.")
      .def_prop_rw(
          "profile", [](PyDecoder& self) { return self.dec.profile; },
          [](PyDecoder& self, bool on) {
            std::lock_guard<std::mutex> lock(self.busy);
            self.dec.profile = on;
          })
      .def_prop_rw(
          "linear_seconds", [](PyDecoder& self) { return self.dec.linear_seconds; },
          [](PyDecoder& self, double v) {
            std::lock_guard<std::mutex> lock(self.busy);
            self.dec.linear_seconds = v;
          },
          "seconds spent in linear layers (output head included) by steps run with profile on");
  s.def("rms_norm", &k_rms_norm, nb::arg("x"), nb::arg("w"), nb::arg("eps"), nb::arg("out"));
  s.def("rope", &k_rope, nb::arg("x"), nb::arg("rope_dim"), nb::arg("cs"), "in place on x [heads, D]");
  s.def("attend", &k_attend, nb::arg("q"), nb::arg("keys"), nb::arg("values"), nb::arg("scale"), nb::arg("out"));
  s.def("silu_mul", &k_silu_mul, nb::arg("gate"), nb::arg("up"), nb::arg("out"));
  s.def("gemv", &k_gemv, nb::arg("w"), nb::arg("x"), nb::arg("out"), nb::arg("threads") = -1);
}
