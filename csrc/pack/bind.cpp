// Bindings for group-wise k-bit quantization and packing (layout documented in serial.h).
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <string>

#include "common/arrays.h"
#include "pack/driver.h"

namespace frugalnn {
namespace {

void check_bits(int64_t bits) {
  if (bits < 1 || bits > 8)
    throw nb::value_error(("bits: expected 1..8, got " + std::to_string(bits)).c_str());
}

// packed_row_bytes(k, bits) = ceil(k bits / 8), with k from a caller (or an empty array's axis,
// which numpy lets reach 2^60): checked so it cannot wrap (common/checked.h).
int64_t packed_row_bytes(int64_t k, int64_t bits) {
  if (k < 0) throw nb::value_error(("k: expected >= 0, got " + std::to_string(k)).c_str());
  check_bits(bits);
  return checked_add(checked_mul(k, bits, "K x bits"), 7, "K x bits") / 8;
}


int64_t check_group(int64_t k, int64_t group) {
  if (group < 1) throw nb::value_error(("group_size: expected >= 1, got " + std::to_string(group)).c_str());
  if (k % group != 0)
    throw nb::value_error(("group_size: " + std::to_string(group) + " does not divide K = " + std::to_string(k)).c_str());
  return k / group;
}

// Quantizes w [N, K] into packed codes, scales and offsets. Raises ValueError naming the first
// (row, group) holding NaN/inf or a range float32 cannot scale.
void quantize_pack(Array w, int64_t bits, int64_t group, bool symmetric, OutArray packed, OutArray scales,
                   OutArray offsets, int64_t threads) {
  check_bits(bits);
  const float* wp = typed<float>(w, "w", {-1, -1});
  const int64_t n = w.shape(0), k = w.shape(1), groups = check_group(k, group);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  float* sp = typed<float>(scales, "scales", {n, groups});
  float* op = typed<float>(offsets, "offsets", {n, groups});
  require_disjoint(w, packed, "w", "packed");
  require_disjoint(w, scales, "w", "scales");
  require_disjoint(w, offsets, "w", "offsets");
  require_disjoint(packed, scales, "packed", "scales");  // outputs must not overlap one another either
  require_disjoint(packed, offsets, "packed", "offsets");
  require_disjoint(scales, offsets, "scales", "offsets");
  const int nthreads = resolve_threads(threads);
  if (is_empty(w)) return;  // (2^40, 0) rows of nothing: return rather than loop over them
  int64_t first_bad;
  {
    nb::gil_scoped_release release;
    first_bad = pack::quantize_pack(wp, n, k, group, static_cast<int>(bits), symmetric, pp, sp, op, nthreads);
  }
  if (first_bad >= 0) {
    int64_t r = first_bad / groups, g = first_bad % groups;
    throw nb::value_error(("w: row " + std::to_string(r) + ", group " + std::to_string(g) +
                           " holds NaN/inf or a range too wide for float32 scales")
                              .c_str());
  }
}

void dequantize_unpack(Array packed, Array scales, Array offsets, int64_t bits, int64_t group, OutArray out,
                       int64_t threads) {
  check_bits(bits);
  float* dst = typed<float>(out, "out", {-1, -1});
  const int64_t n = out.shape(0), k = out.shape(1), groups = check_group(k, group);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  const float* sp = typed<float>(scales, "scales", {n, groups});
  const float* op = typed<float>(offsets, "offsets", {n, groups});
  require_disjoint(out, packed, "out", "packed");
  require_disjoint(out, scales, "out", "scales");
  require_disjoint(out, offsets, "out", "offsets");
  const int nthreads = resolve_threads(threads);
  if (is_empty(out)) return;
  nb::gil_scoped_release release;
  pack::dequantize_unpack(pp, sp, op, n, k, group, static_cast<int>(bits), dst, nthreads);
}

void pack_codes(Array codes, int64_t bits, OutArray packed, int64_t threads) {
  check_bits(bits);
  const uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  const int nthreads = resolve_threads(threads);
  if (is_empty(codes)) return;
  nb::gil_scoped_release release;
  pack::pack_codes(cp, n, k, static_cast<int>(bits), pp, nthreads);
}

void unpack_codes(Array packed, int64_t bits, OutArray codes, int64_t threads) {
  check_bits(bits);
  uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  const int nthreads = resolve_threads(threads);
  if (is_empty(codes)) return;
  nb::gil_scoped_release release;
  pack::unpack_codes(pp, n, k, static_cast<int>(bits), cp, nthreads);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_pack(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("pack", "Group-wise k-bit quantization and bit packing.");
  s.def("packed_row_bytes", &packed_row_bytes, nb::arg("k"), nb::arg("bits"));
  s.def("quantize_pack", &quantize_pack, nb::arg("w"), nb::arg("bits"), nb::arg("group_size"),
        nb::arg("symmetric"), nb::arg("packed"), nb::arg("scales"), nb::arg("offsets"), nb::arg("threads") = -1);
  s.def("dequantize_unpack", &dequantize_unpack, nb::arg("packed"), nb::arg("scales"), nb::arg("offsets"),
        nb::arg("bits"), nb::arg("group_size"), nb::arg("out"), nb::arg("threads") = -1);
  s.def("pack_codes", &pack_codes, nb::arg("codes"), nb::arg("bits"), nb::arg("packed"), nb::arg("threads") = -1);
  s.def("unpack_codes", &unpack_codes, nb::arg("packed"), nb::arg("bits"), nb::arg("codes"), nb::arg("threads") = -1);
}
