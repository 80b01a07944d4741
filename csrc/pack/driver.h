// Group-wise k-bit quantization and packing driver: rows split over threads, backend choice.
// Layout and float32 operation order: serial.h. A row is the unit of work (its codes are packed
// as one bit stream), so results do not depend on the thread count.
//
// Role: driver (threads, backend choice). Checked against: the numpy reference bit for bit, and
// identical results for any thread count (tests/kernels/test_pack.py on both backends).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/pack/driver.h
#pragma once

#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "pack/avx2.h"
#include "pack/serial.h"

namespace frugalnn {
namespace pack {

// The kernels of one backend under one set of names, for the loops below.
struct SerialOps {
  static void pack_row(const uint8_t* c, int64_t k, int b, uint8_t* o) { serial::pack_row(c, k, b, o); }
  static void unpack_row(const uint8_t* p, int64_t k, int b, uint8_t* c) { serial::unpack_row(p, k, b, c); }
  static bool stats(const float* w, int64_t n, float* lo, float* hi, float* am) { return serial::group_stats(w, n, lo, hi, am); }
  static void quantize(const float* w, int64_t n, const GroupParams& p, bool s, int b, uint8_t* c) { serial::quantize_group(w, n, p, s, b, c); }
  static void dequantize(const uint8_t* c, int64_t n, float s, float o, float* out) { serial::dequantize_group(c, n, s, o, out); }
};

#if FRUGALNN_X86
struct Avx2Ops {
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
  if (use_avx2()) return f(Avx2Ops{});
#endif
  f(SerialOps{});
}

// w [N, K] -> packed codes, scales and offsets [N, K / group]. Returns the first (row * groups +
// group) holding NaN/inf or a range float32 cannot scale (its scale and offset are written as 0),
// or -1 when there is none.
inline int64_t quantize_pack(const float* wp, int64_t n, int64_t k, int64_t group, int bits, bool symmetric,
                             uint8_t* pp, float* sp, float* op, int threads) {
  const int64_t groups = k / group;
  int64_t first_bad = -1;
  std::mutex bad_mutex;
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 1, [&](int64_t r0, int64_t r1) {
      std::vector<uint8_t> codes(static_cast<size_t>(k));
      for (int64_t r = r0; r < r1; ++r) {
        const float* row = wp + r * k;
        for (int64_t g = 0; g < groups; ++g) {
          float lo, hi, amax;
          GroupParams p{};
          const bool ok = Ops::stats(row + g * group, group, &lo, &hi, &amax) &&
                          group_params(lo, hi, amax, bits, symmetric, &p);
          if (!ok) {
            std::lock_guard<std::mutex> lock(bad_mutex);
            int64_t where = r * groups + g;
            if (first_bad < 0 || where < first_bad) first_bad = where;
            p = GroupParams{0.0f, 0.0f, 0.0f, 0.0f};
          }
          sp[r * groups + g] = p.scale;
          op[r * groups + g] = p.offset;
          if (ok) {
            Ops::quantize(row + g * group, group, p, symmetric, bits, codes.data() + g * group);
          } else {  // zero codes; quantizing NaN would convert NaN to an integer (undefined)
            std::memset(codes.data() + g * group, 0, static_cast<size_t>(group));
          }
        }
        Ops::pack_row(codes.data(), k, bits, pp + r * packed_row_bytes(k, bits));
      }
    });
  });
  return first_bad;
}

// packed codes, scales, offsets -> out [N, K].
inline void dequantize_unpack(const uint8_t* pp, const float* sp, const float* op, int64_t n, int64_t k,
                              int64_t group, int bits, float* dst, int threads) {
  const int64_t groups = k / group;
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

// codes [N, K] -> packed [N, packed_row_bytes(K, bits)].
inline void pack_codes(const uint8_t* cp, int64_t n, int64_t k, int bits, uint8_t* pp, int threads) {
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) Ops::pack_row(cp + r * k, k, bits, pp + r * packed_row_bytes(k, bits));
    });
  });
}

// packed [N, packed_row_bytes(K, bits)] -> codes [N, K].
inline void unpack_codes(const uint8_t* pp, int64_t n, int64_t k, int bits, uint8_t* cp, int threads) {
  dispatch([&](auto ops) {
    using Ops = decltype(ops);
    parallel_range(n, threads, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) Ops::unpack_row(pp + r * packed_row_bytes(k, bits), k, bits, cp + r * k);
    });
  });
}

}  // namespace pack
}  // namespace frugalnn
