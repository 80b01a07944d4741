// Group-wise k-bit quantization and packing, AVX2 + BMI2 variant. Same layout and same float32
// operation order as serial.h (which documents both), so results are bit-identical.
//   bits 1/2/4: 32 codes per step with byte shuffles / maddubs / movemask
//   bits 3/5/6/7: 8 codes per step with pext/pdep (8 codes <-> exactly `bits` bytes)
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/pack_ref.py bit for
// bit, as serial.h is (tests/kernels/test_pack.py under the avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/pack/avx2.h
#pragma once

#include "common/cpu.h"
#include "pack/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace pack {
namespace avx2 {

FRUGALNN_AVX2 inline uint64_t lane_mask(int bits) {
  return 0x0101010101010101ull * ((1ull << bits) - 1ull);
}

FRUGALNN_AVX2 inline void pack_row(const uint8_t* codes, int64_t k, int bits, uint8_t* out) {
  if (bits == 8) {
    std::memcpy(out, codes, static_cast<size_t>(k));
    return;
  }
  int64_t i = 0;
  uint8_t* o = out;
  const __m256i low = _mm256_set1_epi8(static_cast<char>((1 << bits) - 1));
  if (bits == 1) {
    for (; i + 32 <= k; i += 32, o += 4) {
      __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), low);
      uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(v, 7)));
      std::memcpy(o, &m, 4);
    }
  } else if (bits == 2) {
    // bytes c0..c3 -> c0 + 4 c1 (int16) -> (c0 + 4 c1) + 16 (c2 + 4 c3) (int32) -> one byte
    const __m256i w12 = _mm256_set1_epi16(0x0401), w16 = _mm256_set1_epi32(0x00100001);
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (; i + 32 <= k; i += 32, o += 8) {
      __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), low);
      __m256i b = _mm256_shuffle_epi8(_mm256_madd_epi16(_mm256_maddubs_epi16(v, w12), w16), gather);
      uint32_t lo = static_cast<uint32_t>(_mm256_extract_epi32(b, 0));
      uint32_t hi = static_cast<uint32_t>(_mm256_extract_epi32(b, 4));
      std::memcpy(o, &lo, 4);
      std::memcpy(o + 4, &hi, 4);
    }
  } else if (bits == 4) {
    const __m256i w12 = _mm256_set1_epi16(0x1001);
    for (; i + 32 <= k; i += 32, o += 16) {
      __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), low);
      __m256i pairs = _mm256_maddubs_epi16(v, w12);  // c0 + 16 c1 per int16, <= 255
      __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(pairs, pairs), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(b));
    }
  } else {
    const uint64_t mask = lane_mask(bits);
    for (; i + 8 <= k; i += 8, o += bits) {
      uint64_t v;
      std::memcpy(&v, codes + i, 8);
      uint64_t p = _pext_u64(v, mask);
      std::memcpy(o, &p, static_cast<size_t>(bits));
    }
  }
  if (i < k) serial::pack_row(codes + i, k - i, bits, o);  // i * bits is a multiple of 8 here
}

FRUGALNN_AVX2 inline void unpack_row(const uint8_t* packed, int64_t k, int bits, uint8_t* codes) {
  if (bits == 8) {
    std::memcpy(codes, packed, static_cast<size_t>(k));
    return;
  }
  int64_t i = 0;
  const uint8_t* p = packed;
  if (bits == 4) {
    const __m128i nib = _mm_set1_epi8(0x0F);
    for (; i + 32 <= k; i += 32, p += 16) {
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      __m128i lo = _mm_and_si128(b, nib), hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm_unpacklo_epi8(lo, hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i + 16), _mm_unpackhi_epi8(lo, hi));
    }
  } else {
    const uint64_t mask = lane_mask(bits);
    for (; i + 8 <= k; i += 8, p += bits) {
      uint64_t v = 0;
      std::memcpy(&v, p, static_cast<size_t>(bits));
      uint64_t c = _pdep_u64(v, mask);
      std::memcpy(codes + i, &c, 8);
    }
  }
  if (i < k) serial::unpack_row(p, k - i, bits, codes + i);
}

FRUGALNN_AVX2 inline bool group_stats(const float* w, int64_t n, float* lo, float* hi, float* amax) {
  int64_t i = 0;
  const __m256i abs_bits = _mm256_set1_epi32(0x7fffffff);
  const __m256 inf = _mm256_set1_ps(INFINITY);
  __m256 mn = _mm256_set1_ps(w[0]), mx = mn, am = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(w + i);
    __m256 a = _mm256_and_ps(v, _mm256_castsi256_ps(abs_bits));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));  // |v| >= inf or NaN
    mn = _mm256_min_ps(mn, v);
    mx = _mm256_max_ps(mx, v);
    am = _mm256_max_ps(am, a);
  }
  if (_mm256_movemask_ps(bad)) return false;
  alignas(32) float m0[8], m1[8], m2[8];
  _mm256_store_ps(m0, mn);
  _mm256_store_ps(m1, mx);
  _mm256_store_ps(m2, am);
  float fmn = m0[0], fmx = m1[0], fam = m2[0];
  for (int j = 1; j < 8; ++j) {
    fmn = m0[j] < fmn ? m0[j] : fmn;
    fmx = m1[j] > fmx ? m1[j] : fmx;
    fam = m2[j] > fam ? m2[j] : fam;
  }
  if (i < n) {
    float tl, th, ta;
    if (!serial::group_stats(w + i, n - i, &tl, &th, &ta)) return false;
    fmn = tl < fmn ? tl : fmn;
    fmx = th > fmx ? th : fmx;
    fam = ta > fam ? ta : fam;
  }
  *lo = fmn;
  *hi = fmx;
  *amax = fam;
  return true;
}

FRUGALNN_AVX2 inline void quantize_group(const float* w, int64_t n, const GroupParams& p, bool symmetric,
                                         int bits, uint8_t* codes) {
  int64_t i = 0;
  const __m256 inv = _mm256_set1_ps(p.inv_scale), bias = _mm256_set1_ps(p.bias), off = _mm256_set1_ps(p.offset);
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(static_cast<float>((1 << bits) - 1));
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(w + i);
    __m256 t = symmetric ? _mm256_add_ps(_mm256_mul_ps(v, inv), bias) : _mm256_mul_ps(_mm256_sub_ps(v, off), inv);
    __m256 q = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, zero), top);
    __m256i qi = _mm256_cvtps_epi32(q);
    __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), _mm_packus_epi16(w16, w16));
  }
  if (i < n) serial::quantize_group(w + i, n - i, p, symmetric, bits, codes + i);
}

FRUGALNN_AVX2 inline void dequantize_group(const uint8_t* codes, int64_t n, float scale, float offset, float* out) {
  int64_t i = 0;
  const __m256 s = _mm256_set1_ps(scale), o = _mm256_set1_ps(offset);
  for (; i + 8 <= n; i += 8) {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i));
    __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_mul_ps(q, s), o));
  }
  if (i < n) serial::dequantize_group(codes + i, n - i, scale, offset, out + i);
}

}  // namespace avx2
}  // namespace pack
}  // namespace frugalnn
#endif  // FRUGALNN_X86
