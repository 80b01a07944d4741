// Bindings for the DFP16 GEMM (semantics in serial.h, blocking and backend choice in driver.h). The output is
// allocated by frugalnn/kernels/dfp.py and passed in.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include <atomic>
#include <ctime>
#include <optional>
#include <string>
#include <utility>

#include "common/arrays.h"
#include "dfp/driver.h"

namespace frugalnn {
namespace {

constexpr int64_t kInt32Max = 2147483647;

// Largest chunk whose int32 sums cannot overflow for operands bounded by max_a, max_b.
int64_t safe_chunk(uint32_t max_a, uint32_t max_b) {
  const uint64_t worst = static_cast<uint64_t>(max_a) * max_b;
  return worst == 0 ? INT64_MAX : static_cast<int64_t>(static_cast<uint64_t>(kInt32Max) / worst);
}

// max |x| over n int16 values, split over threads (the check is a pass over both operands).
uint32_t max_abs(const int16_t* x, int64_t n, int threads) {
  std::atomic<uint32_t> result{0};
  parallel_range(n, threads, int64_t(1) << 18, [&](int64_t lo, int64_t hi) {
    const uint32_t local = dfp::max_abs(x + lo, hi - lo);
    uint32_t seen = result.load();
    while (local > seen && !result.compare_exchange_weak(seen, local)) {
    }
  });
  return result.load();
}

// out = sum over K-chunks of float(int32 chunk sum) * 2^(ea + eb) (+ bias); a [M, K] int16,
// b [K, N] int16 (or [N, K] with transpose_b), bias [N] float32 or None, out [M, N] float32.
// Unless allow_overflow, a chunk that could overflow int32 for these operands is refused.
void gemm(Array a, Array b, int64_t ea, int64_t eb, int64_t chunk, bool transpose_b, std::optional<Array> bias,
          OutArray out, int64_t threads_arg, bool allow_overflow) {
  const int16_t* ap = typed<int16_t>(a, "a", {-1, -1});
  const int64_t m = a.shape(0), k = a.shape(1);
  const int16_t* bp = transpose_b ? typed<int16_t>(b, "b", {-1, k}) : typed<int16_t>(b, "b", {k, -1});
  const int64_t n = transpose_b ? b.shape(0) : b.shape(1);
  float* op = typed<float>(out, "out", {m, n});
  const float* biasp = bias ? typed<float>(*bias, "bias", {n}) : nullptr;
  if (chunk < 1) throw nb::value_error(("chunk: expected >= 1, got " + std::to_string(chunk)).c_str());
  int64_t scale_exp;
  if (__builtin_add_overflow(ea, eb, &scale_exp))
    throw nb::value_error(("ea + eb overflows int64: ea = " + std::to_string(ea) + ", eb = " + std::to_string(eb)).c_str());
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  if (bias) require_disjoint(*bias, out, "bias", "out");
  const int threads = resolve_threads(threads_arg);
  if (is_empty(out)) return;  // e.g. a (2^40, 0): nothing to write, and no rows to loop over
  const bool avx2 = dfp::gemm_uses_avx2();
  if (avx2 && m && n && dfp::packed_words(m, n, k, chunk) < 0)
    throw nb::value_error(("a " + shape_string(a) + ", b " + shape_string(b) + ": packed operand size overflows").c_str());

  // chunk 1 never overflows (one product is at most 2^30); otherwise the operands' maxima decide
  if (!allow_overflow && k > 0 && m > 0 && n > 0 && std::min(chunk, k) > 1) {
    uint32_t max_a, max_b;
    {
      nb::gil_scoped_release release;
      max_a = max_abs(ap, m * k, threads);
      max_b = max_abs(bp, k * n, threads);
    }
    const int64_t safe = safe_chunk(max_a, max_b), effective = std::min(chunk, k);
    if (effective > safe)
      throw nb::value_error(("chunk: " + std::to_string(chunk) + " can overflow int32 with these operands (max|a| = " +
                             std::to_string(max_a) + ", max|b| = " + std::to_string(max_b) + ", K = " +
                             std::to_string(k) + "); the largest safe chunk for them is " + std::to_string(safe) +
                             " (pass allow_overflow=True for int32 wrap-around)")
                                .c_str());
  }

  nb::gil_scoped_release release;
  dfp::run_gemm(ap, bp, op, m, n, k, chunk, transpose_b, scale_exp, biasp, threads, avx2);
}

template <class A>
void require_shape_of(const Array& x, const A& m, const char* x_name, const char* m_name) {
  bool same = x.ndim() == m.ndim();
  for (size_t i = 0; same && i < x.ndim(); ++i) same = x.shape(i) == m.shape(i);
  if (!same)
    throw nb::value_error((std::string(m_name) + ": expected the shape of " + x_name + " " + shape_string(x) +
                           ", got " + shape_string(m)).c_str());
}

// m = DFP mantissas of x (per tensor, round to nearest even; serial.h); returns (exponent, index
// of the first inf/NaN in C order or -1). x float32, m int16 (bits 16) or int8 (bits 8), same shape.
std::pair<int32_t, int64_t> quantize(Array x, int64_t bits, int64_t headroom, OutArray m, int64_t threads_arg) {
  if (bits != 16 && bits != 8) throw nb::value_error(("bits: expected 16 or 8, got " + std::to_string(bits)).c_str());
  if (headroom < 0 || headroom > bits - 2)
    throw nb::value_error(("headroom: expected 0.." + std::to_string(bits - 2) + ", got " + std::to_string(headroom)).c_str());
  require_dtype<float>(x, "x");
  require_c_contiguous(x, "x");
  if (bits == 16) require_dtype<int16_t>(m, "m"); else require_dtype<int8_t>(m, "m");
  require_c_contiguous(m, "m");
  require_shape_of(x, m, "x", "m");
  require_disjoint(x, m, "x", "m");
  const int threads = resolve_threads(threads_arg);
  const float* xp = static_cast<const float*>(x.data());
  const int64_t n = static_cast<int64_t>(x.size());
  nb::gil_scoped_release release;
  constexpr int64_t kMinChunk = int64_t(1) << 16;
  std::atomic<uint32_t> amax{0};
  parallel_range(n, threads, kMinChunk, [&](int64_t lo, int64_t hi) {
    const uint32_t local = dfp::max_abs_bits(xp + lo, hi - lo);
    uint32_t seen = amax.load();
    while (local > seen && !amax.compare_exchange_weak(seen, local)) {
    }
  });
  if (amax.load() >= 0x7F800000u) return {0, dfp::serial::first_non_finite(xp, n)};
  const int32_t e = dfp::serial::exponent_for(amax.load(), static_cast<int>(bits), static_cast<int>(headroom));
  parallel_range(n, threads, kMinChunk, [&](int64_t lo, int64_t hi) {
    if (bits == 8) return dfp::quantize(xp + lo, hi - lo, e, 8, static_cast<int8_t*>(m.data()) + lo);
    dfp::quantize(xp + lo, hi - lo, e, 16, static_cast<int16_t*>(m.data()) + lo);
  });
  return {e, -1};
}

// Multiply-accumulates per second one core sustains in registers: kind "fp32_fma" (8-lane FMA)
// or "int16_madd" (vpmaddwd + vpaddd, the GEMM's inner loop), measured for about `seconds` of
// this thread's CPU time.
double peak_macs(const std::string& kind, double seconds) {
  if (kind != "fp32_fma" && kind != "int16_madd")
    throw nb::value_error(("kind: expected 'fp32_fma' or 'int16_madd', got '" + kind + "'").c_str());
  if (!(seconds > 0 && seconds <= 10))
    throw nb::value_error(("seconds: expected (0, 10], got " + std::to_string(seconds)).c_str());
#if FRUGALNN_X86
  if (!cpu_supports_avx2()) throw nb::value_error("peak_macs: this CPU lacks AVX2/FMA");
  nb::gil_scoped_release release;
  const bool fma = kind == "fp32_fma";
  auto run = [&](int64_t iters) { return dfp::probe_macs(fma, iters); };
  // thread CPU time: a sample during which the scheduler ran someone else is not counted short
  auto now = [] {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  };
  int64_t iters = 1 << 16;
  double best = 0;
  const double start = now();
  while (now() - start < seconds) {
    const double t0 = now();
    const double macs = run(iters) * static_cast<double>(iters);
    const double dt = now() - t0;
    if (dt < 2e-3) {
      iters *= 2;
      continue;
    }
    best = std::max(best, macs / dt);  // the best sample: cache and frequency interference only slow it down
  }
  return best;
#else
  throw nb::value_error("peak_macs: x86 only");
#endif
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_dfp(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("dfp", "DFP16 GEMM: int16 x int16 with int32 chunk sums, float32 out.");
  s.def("gemm", &gemm, nb::arg("a"), nb::arg("b"), nb::arg("ea"), nb::arg("eb"), nb::arg("chunk"),
        nb::arg("transpose_b"), nb::arg("bias").none(), nb::arg("out"), nb::arg("threads") = -1,
        nb::arg("allow_overflow") = false);
  s.def("quantize", &quantize, nb::arg("x"), nb::arg("bits"), nb::arg("headroom"), nb::arg("m"),
        nb::arg("threads") = -1);
  s.def("peak_macs", &peak_macs, nb::arg("kind"), nb::arg("seconds") = 0.2);
  s.def("safe_chunk", &safe_chunk, nb::arg("max_a"), nb::arg("max_b"),
        "Largest chunk whose int32 sums cannot overflow for |a| <= max_a, |b| <= max_b.");
}
