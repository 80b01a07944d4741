// Bindings for group-wise k-bit quantization and packing (layout documented in serial.h).
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <string>

#include "common/arrays.h"
#include "pack/driver.h"

namespace frugalnn {
namespace {

using pack::packed_row_bytes;

void check_bits(int bits) {
  if (bits < 1 || bits > 8)
    throw nb::value_error(("bits: expected 1..8, got " + std::to_string(bits)).c_str());
}

int64_t check_group(int64_t k, int64_t group) {
  if (group < 1) throw nb::value_error(("group_size: expected >= 1, got " + std::to_string(group)).c_str());
  if (k % group != 0)
    throw nb::value_error(("group_size: " + std::to_string(group) + " does not divide K = " + std::to_string(k)).c_str());
  return k / group;
}

// Quantizes w [N, K] into packed codes, scales and offsets. Raises ValueError naming the first
// (row, group) holding NaN/inf or a range float32 cannot scale.
void quantize_pack(Array w, int bits, int64_t group, bool symmetric, OutArray packed, OutArray scales,
                   OutArray offsets, int threads) {
  check_bits(bits);
  const float* wp = typed<float>(w, "w", {-1, -1});
  const int64_t n = w.shape(0), k = w.shape(1), groups = check_group(k, group);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  float* sp = typed<float>(scales, "scales", {n, groups});
  float* op = typed<float>(offsets, "offsets", {n, groups});
  require_disjoint(w, packed, "w", "packed");
  require_disjoint(w, scales, "w", "scales");
  require_disjoint(w, offsets, "w", "offsets");
  threads = resolve_threads(threads);
  int64_t first_bad;
  {
    nb::gil_scoped_release release;
    first_bad = pack::quantize_pack(wp, n, k, group, bits, symmetric, pp, sp, op, threads);
  }
  if (first_bad >= 0) {
    int64_t r = first_bad / groups, g = first_bad % groups;
    throw nb::value_error(("w: row " + std::to_string(r) + ", group " + std::to_string(g) +
                           " holds NaN/inf or a range too wide for float32 scales")
                              .c_str());
  }
}

void dequantize_unpack(Array packed, Array scales, Array offsets, int bits, int64_t group, OutArray out,
                       int threads) {
  check_bits(bits);
  float* dst = typed<float>(out, "out", {-1, -1});
  const int64_t n = out.shape(0), k = out.shape(1), groups = check_group(k, group);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  const float* sp = typed<float>(scales, "scales", {n, groups});
  const float* op = typed<float>(offsets, "offsets", {n, groups});
  require_disjoint(out, packed, "out", "packed");
  require_disjoint(out, scales, "out", "scales");
  require_disjoint(out, offsets, "out", "offsets");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  pack::dequantize_unpack(pp, sp, op, n, k, group, bits, dst, threads);
}

void pack_codes(Array codes, int bits, OutArray packed, int threads) {
  check_bits(bits);
  const uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  pack::pack_codes(cp, n, k, bits, pp, threads);
}

void unpack_codes(Array packed, int bits, OutArray codes, int threads) {
  check_bits(bits);
  uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  pack::unpack_codes(pp, n, k, bits, cp, threads);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_pack(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("pack", "Group-wise k-bit quantization and bit packing.");
  s.def("packed_row_bytes", &pack::packed_row_bytes, nb::arg("k"), nb::arg("bits"));
  s.def("quantize_pack", &quantize_pack, nb::arg("w"), nb::arg("bits"), nb::arg("group_size"),
        nb::arg("symmetric"), nb::arg("packed"), nb::arg("scales"), nb::arg("offsets"), nb::arg("threads") = -1);
  s.def("dequantize_unpack", &dequantize_unpack, nb::arg("packed"), nb::arg("scales"), nb::arg("offsets"),
        nb::arg("bits"), nb::arg("group_size"), nb::arg("out"), nb::arg("threads") = -1);
  s.def("pack_codes", &pack_codes, nb::arg("codes"), nb::arg("bits"), nb::arg("packed"), nb::arg("threads") = -1);
  s.def("unpack_codes", &unpack_codes, nb::arg("packed"), nb::arg("bits"), nb::arg("codes"), nb::arg("threads") = -1);
}
