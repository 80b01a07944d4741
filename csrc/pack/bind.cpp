// Bindings for group-wise k-bit quantization and packing (layout documented in serial.h).
#include <mutex>
#include <string>
#include <vector>

#include "common/arrays.h"
#include "common/cpu.h"
#include "pack/avx2.h"
#include "pack/serial.h"

namespace frugalnn {
namespace {

struct SerialPack {
  static void pack_row(const uint8_t* c, int64_t k, int b, uint8_t* o) { serial::pack_row(c, k, b, o); }
  static void unpack_row(const uint8_t* p, int64_t k, int b, uint8_t* c) { serial::unpack_row(p, k, b, c); }
  static bool stats(const float* w, int64_t n, float* lo, float* hi, float* am) { return serial::group_stats(w, n, lo, hi, am); }
  static void quantize(const float* w, int64_t n, const GroupParams& p, bool s, int b, uint8_t* c) { serial::quantize_group(w, n, p, s, b, c); }
  static void dequantize(const uint8_t* c, int64_t n, float s, float o, float* out) { serial::dequantize_group(c, n, s, o, out); }
};

#if FRUGALNN_X86
struct Avx2Pack {
  static void pack_row(const uint8_t* c, int64_t k, int b, uint8_t* o) { avx2::pack_row(c, k, b, o); }
  static void unpack_row(const uint8_t* p, int64_t k, int b, uint8_t* c) { avx2::unpack_row(p, k, b, c); }
  static bool stats(const float* w, int64_t n, float* lo, float* hi, float* am) { return avx2::group_stats(w, n, lo, hi, am); }
  static void quantize(const float* w, int64_t n, const GroupParams& p, bool s, int b, uint8_t* c) { avx2::quantize_group(w, n, p, s, b, c); }
  static void dequantize(const uint8_t* c, int64_t n, float s, float o, float* out) { avx2::dequantize_group(c, n, s, o, out); }
};
#endif

template <class F>
void dispatch(F&& f) {
#if FRUGALNN_X86
  if (use_avx2()) return f(Avx2Pack{});
#endif
  f(SerialPack{});
}

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
  int64_t first_bad = -1;
  std::mutex bad_mutex;
  {
    nb::gil_scoped_release release;
    dispatch([&](auto ops) {
      using Ops = decltype(ops);
      parallel_range(n, threads, 1, [&](int64_t r0, int64_t r1) {
        std::vector<uint8_t> codes(static_cast<size_t>(k));
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = wp + r * k;
          for (int64_t g = 0; g < groups; ++g) {
            float lo, hi, amax;
            GroupParams p{};
            if (!Ops::stats(row + g * group, group, &lo, &hi, &amax) ||
                !group_params(lo, hi, amax, bits, symmetric, &p)) {
              std::lock_guard<std::mutex> lock(bad_mutex);
              int64_t where = r * groups + g;
              if (first_bad < 0 || where < first_bad) first_bad = where;
              p = GroupParams{0.0f, 0.0f, 0.0f, 0.0f};
            }
            sp[r * groups + g] = p.scale;
            op[r * groups + g] = p.offset;
            Ops::quantize(row + g * group, group, p, symmetric, bits, codes.data() + g * group);
          }
          Ops::pack_row(codes.data(), k, bits, pp + r * packed_row_bytes(k, bits));
        }
      });
    });
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
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 1, [&](int64_t r0, int64_t r1) {
      std::vector<uint8_t> codes(static_cast<size_t>(k));
      for (int64_t r = r0; r < r1; ++r) {
        Ops::unpack_row(pp + r * packed_row_bytes(k, bits), k, bits, codes.data());
        for (int64_t g = 0; g < groups; ++g)
          Ops::dequantize(codes.data() + g * group, group, sp[r * groups + g], op[r * groups + g],
                          dst + r * k + g * group);
      }
    });
  });
}

void pack_codes(Array codes, int bits, OutArray packed, int threads) {
  check_bits(bits);
  const uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) Ops::pack_row(cp + r * k, k, bits, pp + r * packed_row_bytes(k, bits));
    });
  });
}

void unpack_codes(Array packed, int bits, OutArray codes, int threads) {
  check_bits(bits);
  uint8_t* cp = typed<uint8_t>(codes, "codes", {-1, -1});
  const int64_t n = codes.shape(0), k = codes.shape(1);
  const uint8_t* pp = typed<uint8_t>(packed, "packed", {n, packed_row_bytes(k, bits)});
  require_disjoint(codes, packed, "codes", "packed");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) Ops::unpack_row(pp + r * packed_row_bytes(k, bits), k, bits, cp + r * k);
    });
  });
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
