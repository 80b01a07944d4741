// Bindings for the T-MAC lookup-table kernels (layouts in layout.h, driver in driver.h).
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <string>

#include <nanobind/stl/tuple.h>

#include "common/arrays.h"
#include "lut/driver.h"

namespace frugalnn {
namespace {

using lut::Shape;

using lut::make_shape;  // layout.h: validates the shape and that its sizes fit int64

nb::tuple layout_sizes(int64_t m, int64_t k, int64_t group, int64_t bits) {
  Shape s = make_shape(m, k, group, bits);
  return nb::make_tuple(s.units(), s.groups(), s.packed_bytes(), s.table_bytes());
}

void transform(Array codes, int64_t bits, int64_t group, OutArray packed, int64_t threads) {
  const uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  Shape s = make_shape(codes.shape(0), codes.shape(1), group, bits);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {s.packed_bytes()});
  require_disjoint(codes, packed, "codes", "packed");
  const int nthreads = resolve_threads(threads);
  const int64_t count = s.m * s.k;
  for (int64_t i = 0; i < count; ++i)
    if (cp[i] >> bits)
      throw nb::value_error(("codes: value " + std::to_string(cp[i]) + " at row " + std::to_string(i / s.k) +
                             " does not fit in " + std::to_string(bits) + " bits").c_str());
  nb::gil_scoped_release release;
  lut::transform(cp, s, pp, nthreads);
}

void untransform(Array packed, int64_t bits, int64_t group, OutArray codes, int64_t threads) {
  uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  Shape s = make_shape(codes.shape(0), codes.shape(1), group, bits);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {s.packed_bytes()});
  require_disjoint(codes, packed, "codes", "packed");
  const int nthreads = resolve_threads(threads);
  nb::gil_scoped_release release;
  lut::untransform(pp, s, cp, nthreads);
}

void build_tables(Array x, int64_t group, OutArray tables, OutArray ts, OutArray isum) {
  const float* xp = typed<float>(x, "x", {-1});
  Shape s = make_shape(0, x.shape(0), group, 1);
  int8_t* tp = typed<int8_t>(tables, "tables", {s.table_bytes()});
  float* sp = typed<float>(ts, "ts", {s.groups()});
  int32_t* ip = typed<int32_t>(isum, "isum", {s.groups()});
  require_disjoint(x, tables, "x", "tables");
  require_disjoint(x, ts, "x", "ts");
  require_disjoint(x, isum, "x", "isum");
  require_disjoint(tables, ts, "tables", "ts");
  require_disjoint(tables, isum, "tables", "isum");
  require_disjoint(ts, isum, "ts", "isum");
  for (int64_t k = 0; k < s.k; ++k)
    if (lut::is_special(xp[k]))
      throw nb::value_error(("x: element " + std::to_string(k) + " is NaN/inf or beyond 2^125 (tables exclude it)").c_str());
  nb::gil_scoped_release release;
  lut::build_tables(xp, s, tp, sp, ip);
}

// The register-block and tiling arguments both GEMMs take, checked.
lut::Config tile_config(int64_t units, int64_t cols, int64_t col_block, int64_t prefetch) {
  if (units < 1 || units > 4) throw nb::value_error(("units: expected 1..4, got " + std::to_string(units)).c_str());
  if (cols < 1 || cols > 4) throw nb::value_error(("cols: expected 1..4, got " + std::to_string(cols)).c_str());
  if (col_block < 1) throw nb::value_error(("col_block: expected >= 1, got " + std::to_string(col_block)).c_str());
  if (prefetch < 0 || prefetch > (1 << 20))
    throw nb::value_error(("prefetch: expected 0..1048576 bytes, got " + std::to_string(prefetch)).c_str());
  return lut::Config{static_cast<int>(units), static_cast<int>(cols), col_block, prefetch};
}

void matmul(Array x, Array packed, Array ws, Array zt, int64_t m, int64_t bits, int64_t group, bool has_zero,
            OutArray out, int64_t threads, int64_t units, int64_t cols, int64_t col_block, int64_t prefetch) {
  const float* xp = typed<float>(x, "x", {-1, -1});
  const int64_t n = x.shape(0);
  Shape s = make_shape(m, x.shape(1), group, bits);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {s.packed_bytes()});
  const float* wp = typed<float>(ws, "ws", {s.units(), s.groups(), lut::kUnitRows});
  const float* zp = typed<float>(zt, "zt", {s.units(), s.groups(), lut::kUnitRows});
  float* op = typed<float>(out, "out", {n, m});
  require_disjoint(x, out, "x", "out");
  require_disjoint(packed, out, "packed", "out");
  require_disjoint(ws, out, "ws", "out");
  require_disjoint(zt, out, "zt", "out");
  const lut::Config cfg = tile_config(units, cols, col_block, prefetch);
  const int nthreads = resolve_threads(threads);
  lut::Weights w{pp, wp, zp, has_zero};
  nb::gil_scoped_release release;
  lut::matmul(xp, n, w, s, op, nthreads, cfg);
}

// Two-level (K-quant) weights: codes in the layout with group = super-block, sub-block scale bytes
// sc/mn [units][groups][group/sub][32] uint8 (1-d, unread, for the "one" format), d/dmin fp16 bits [units][groups][32] uint16 (layout.h).
void matmul_kq(Array x, Array packed, Array sc, Array mn, Array d, Array dmin, int64_t m, int64_t bits, int64_t group,
               int64_t format, int64_t sub, int64_t zero, bool has_min, OutArray out, int64_t threads, int64_t units,
               int64_t cols, int64_t col_block, int64_t prefetch) {
  const float* xp = typed<float>(x, "x", {-1, -1});
  const int64_t n = x.shape(0);
  Shape s = make_shape(m, x.shape(1), group, bits);
  if (format < lut::kScaleU8 || format > lut::kScaleOne)
    throw nb::value_error(("format: expected 0 (u8), 1 (nibbles), 2 (i8) or 3 (one), got " + std::to_string(format)).c_str());
  if (sub < 8 || sub > 64 || sub % 8 || group % sub)
    throw nb::value_error(("sub: expected a multiple of 8 up to 64 dividing group_size " + std::to_string(group) +
                           ", got " + std::to_string(sub)).c_str());
  const int64_t top = (int64_t{1} << bits) - 1;
  if (zero < 0 || zero > top)
    throw nb::value_error(("zero: expected 0.." + std::to_string(top) + " for " + std::to_string(bits) + " bits, got " +
                           std::to_string(zero)).c_str());
  if (has_min && format == lut::kScaleI8) throw nb::value_error("has_min: the i8 scale format has no mins");
  const int64_t nsub = group / sub;
  lut::KQuant kq;
  kq.format = static_cast<int>(format);
  kq.sub = static_cast<int>(sub);
  kq.zero = static_cast<int>(zero);
  kq.has_min = has_min;
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {s.packed_bytes()});
  if (format == lut::kScaleOne) {  // no sub-scale bytes: sc and mn are not read
    typed<uint8_t>(sc, "sc", {-1});
    typed<uint8_t>(mn, "mn", {-1});
  } else {
    kq.sc = typed<uint8_t>(sc, "sc", {s.units(), s.groups(), nsub, lut::kUnitRows});
    kq.mn = typed<uint8_t>(mn, "mn", {s.units(), s.groups(), nsub, lut::kUnitRows});
  }
  kq.d = typed<uint16_t>(d, "d", {s.units(), s.groups(), lut::kUnitRows});
  kq.dmin = typed<uint16_t>(dmin, "dmin", {s.units(), s.groups(), lut::kUnitRows});
  float* op = typed<float>(out, "out", {n, m});
  require_disjoint(x, out, "x", "out");
  require_disjoint(packed, out, "packed", "out");
  require_disjoint(sc, out, "sc", "out");
  require_disjoint(mn, out, "mn", "out");
  require_disjoint(d, out, "d", "out");
  require_disjoint(dmin, out, "dmin", "out");
  const lut::Config cfg = tile_config(units, cols, col_block, prefetch);
  const int nthreads = resolve_threads(threads);
  lut::Weights w{pp, nullptr, nullptr, false, &kq};
  nb::gil_scoped_release release;
  lut::matmul(xp, n, w, s, op, nthreads, cfg);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_lut(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("lut", "T-MAC lookup-table low-bit GEMV/GEMM (layout: csrc/lut/layout.h).");
  s.attr("UNIT_ROWS") = lut::kUnitRows;
  s.attr("SPECIAL_MAGNITUDE") = lut::kSpecialMagnitude;
  s.attr("MAX_GROUP") = lut::kMaxGroup;
  s.def("layout_sizes", &layout_sizes, nb::arg("m"), nb::arg("k"), nb::arg("group_size"), nb::arg("bits"),
        "(units, groups, packed bytes, table bytes per column)");
  s.def("transform", &transform, nb::arg("codes"), nb::arg("bits"), nb::arg("group_size"), nb::arg("packed"),
        nb::arg("threads") = -1);
  s.def("untransform", &untransform, nb::arg("packed"), nb::arg("bits"), nb::arg("group_size"), nb::arg("codes"),
        nb::arg("threads") = -1);
  s.def("build_tables", &build_tables, nb::arg("x"), nb::arg("group_size"), nb::arg("tables"), nb::arg("ts"),
        nb::arg("isum"));
  s.def("matmul", &matmul, nb::arg("x"), nb::arg("packed"), nb::arg("ws"), nb::arg("zt"), nb::arg("m"),
        nb::arg("bits"), nb::arg("group_size"), nb::arg("has_zero"), nb::arg("out"), nb::arg("threads") = -1,
        nb::arg("units") = 1, nb::arg("cols") = 1, nb::arg("col_block") = 32, nb::arg("prefetch") = 0);
  s.def("matmul_kq", &matmul_kq, nb::arg("x"), nb::arg("packed"), nb::arg("sc"), nb::arg("mn"), nb::arg("d"),
        nb::arg("dmin"), nb::arg("m"), nb::arg("bits"), nb::arg("group_size"), nb::arg("format"), nb::arg("sub"),
        nb::arg("zero"), nb::arg("has_min"), nb::arg("out"), nb::arg("threads") = -1, nb::arg("units") = 1,
        nb::arg("cols") = 1, nb::arg("col_block") = 32, nb::arg("prefetch") = 0);
}
