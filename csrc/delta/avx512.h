// Delta inference kernels, AVX-512: the gathered conv update of one output position (gather) on 8-double zmm
// registers (the float32 weights are held widened to double, layout.h); up to four zmm (32 outputs) of the state
// row stay in registers across all its updates. The activation of a band of positions on 8 lanes
// (quantize8: avx2's checked reciprocal; block8: emission by in-register compress). The same bits as
// serial.h and avx2.h: every update is a multiply then an add (no FMA), in the same order per output;
// the quantization equals the division's rounding.
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against:
// frugalnn/kernels/delta_ref.py, and bit for bit against the serial and avx2 backends
// (tests/kernels/test_delta.py and tests/delta/test_video.py under the avx512 backend; skipped
// with "CPU lacks AVX-512" elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/avx512.h
#pragma once

#include <cstring>

#include "common/cpu.h"
#include "delta/avx2.h"
#include "delta/layout.h"
#include "delta/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace delta {
namespace avx512 {

FRUGALNN_AVX512 inline __m512d widen(const double* w) { return _mm512_loadu_pd(w); }

// Up to B zmm (8 B outputs at o) of the state row take every update of the tap runs, in order.
template <int B>
FRUGALNN_AVX512 inline void gather_block(double* s, const double* const* w, const int32_t* const* ch,
                                         const double* const* v, const int32_t* len, int64_t nt, int64_t n, int64_t o) {
  __m512d acc[B];
  for (int b = 0; b < B; ++b) acc[b] = _mm512_loadu_pd(s + o + 8 * b);
  for (int64_t t = 0; t < nt; ++t) {
    const double* wt = w[t] + o;
    const int32_t* c = ch[t];
    const double* vt = v[t];
    for (int32_t j = 0; j < len[t]; ++j) {
      const __m512d dv = _mm512_set1_pd(vt[j]);
      const double* wr = wt + static_cast<int64_t>(c[j]) * n;
      for (int b = 0; b < B; ++b) acc[b] = _mm512_add_pd(acc[b], _mm512_mul_pd(widen(wr + 8 * b), dv));
    }
  }
  for (int b = 0; b < B; ++b) _mm512_storeu_pd(s + o + 8 * b, acc[b]);
}

FRUGALNN_AVX512 inline void gather(double* s, const double* const* w, const int32_t* const* ch, const double* const* v,
                                   const int32_t* len, int64_t nt, int64_t n) {
  int64_t o = 0;
  for (; o + 32 <= n; o += 32) gather_block<4>(s, w, ch, v, len, nt, n, o);
  if (o + 16 <= n) {
    gather_block<2>(s, w, ch, v, len, nt, n, o);
    o += 16;
  }
  if (o + 8 <= n) {
    gather_block<1>(s, w, ch, v, len, nt, n, o);
    o += 8;
  }
  for (; o < n; ++o) {
    double a = s[o];
    for (int64_t t = 0; t < nt; ++t)
      for (int32_t j = 0; j < len[t]; ++j) a += w[t][static_cast<int64_t>(ch[t][j]) * n + o] * v[t][j];
    s[o] = a;
  }
}

// serial::scatter_run's bits: this file's gather, one tap per output row.
FRUGALNN_AVX512 inline void scatter_run(double* const* rows, const double* const* w, int64_t nr, const int32_t* ch,
                                 const double* v, int32_t len, int64_t n) {
  for (int64_t i = 0; i < nr; ++i) gather(rows[i], w + i, &ch, &v, &len, 1, n);
}

// avx2::quantize4 on 8 lanes, the same bound and fallback (vrndscalepd with scale 0 and round to
// nearest even rounds as vroundpd does; the maskz forms only avoid a GCC 12 false warning).
FRUGALNN_AVX512 inline __m512d quantize8(__m512d a, __m512d qv, __m512d rqv) {
  const __m512d t = _mm512_mul_pd(a, rqv);
  __m512d r = _mm512_maskz_roundscale_pd(0xFF, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512d dist = _mm512_abs_pd(_mm512_sub_pd(_mm512_abs_pd(_mm512_sub_pd(t, r)), _mm512_set1_pd(0.5)));
  const __mmask8 ok = _mm512_cmp_pd_mask(dist, _mm512_mul_pd(_mm512_abs_pd(t), _mm512_set1_pd(0x1p-50)), _CMP_GT_OQ);
  if (ok != 0xFF) r = _mm512_maskz_roundscale_pd(0xFF, _mm512_div_pd(a, qv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_mul_pd(qv, r);
}

// avx2::block4 on 8 lanes: the changed lanes are compressed in registers (vcompresspd to memory is
// slow on Zen 4) and stored as 8 lanes at out.n (lanes past the count are scratch: out.n <= f).
FRUGALNN_AVX512 inline void block8(const double* s, double* e, int64_t f, bool quant, __m512d qv, __m512d rqv, bool relu,
                                   double threshold, bool dense, int32_t ch0, bool one_channel, Emit& out) {
  const __m512d zero = _mm512_setzero_pd();
  __m512d a = _mm512_loadu_pd(s + f);
  if (relu) a = _mm512_maskz_max_pd(0xFF, a, zero);  // as avx2: max(a, 0), NaN -> 0 (maskz: GCC 12 warns on the unmasked form)
  if (quant) a = quantize8(a, qv, rqv);
  const __m512d d = _mm512_sub_pd(a, _mm512_loadu_pd(e + f));
  const __mmask8 m = dense ? __mmask8(0xFF)
                           : threshold > 0.0 ? _mm512_cmp_pd_mask(_mm512_abs_pd(d), _mm512_set1_pd(threshold), _CMP_GT_OQ)
                                             : _mm512_cmp_pd_mask(d, zero, _CMP_NEQ_UQ);  // serial::activate1's rule
  _mm512_mask_storeu_pd(e + f, m, a);
  _mm512_storeu_pd(out.val + out.n, _mm512_maskz_compress_pd(m, d));
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i idx = _mm256_maskz_compress_epi32(m, _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(f)), iota));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.idx + out.n), idx);
  const int count = __builtin_popcount(static_cast<unsigned>(m));
  if (one_channel) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.ch + out.n), _mm256_setzero_si256());
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.run_pos + out.nruns), idx);
    for (int j = 0, k = 0; j < 8; ++j) {  // every position gets its run entry (len 0 or 1)
      const int bit = (m >> j) & 1;
      out.run_start[f + j] = static_cast<int32_t>(out.n + k);
      out.run_len[f + j] = bit;
      k += bit;
    }
    out.nruns += count;
  } else {
    const __m256i ch = _mm256_maskz_compress_epi32(m, _mm256_add_epi32(_mm256_set1_epi32(ch0), iota));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.ch + out.n), ch);
  }
  out.n += count;
}

// serial::activate_rows' bits, as avx2::activate_rows with 8 lanes (its 4-lane and scalar tails).
FRUGALNN_AVX512 inline void activate_rows(const double* s, double* e, uint8_t* dirty, const double* q, const double* rq,
                                          int64_t c, bool relu, double threshold, bool dense, int64_t lo, int64_t hi,
                                          Emit& out) {
  if (c == 1) {
    const __m512d qv = _mm512_set1_pd(q ? q[0] : 1.0), rqv = _mm512_set1_pd(q ? rq[0] : 1.0);
    int64_t p = lo;
    for (; p + 8 <= hi; p += 8) {
      uint64_t d8;
      std::memcpy(&d8, dirty + p, 8);
      if (d8 == 0x0101010101010101ull) {
        std::memset(dirty + p, 0, 8);
        block8(s, e, p, q != nullptr, qv, rqv, relu, threshold, dense, 0, true, out);
      } else {
        serial::activate_rows(s, e, dirty, q, rq, c, relu, threshold, dense, p, p + 8, out);
      }
    }
    return avx2::activate_rows(s, e, dirty, q, rq, c, relu, threshold, dense, p, hi, out);
  }
  const __m512d zero = _mm512_setzero_pd();
  const __m256d zero4 = _mm256_setzero_pd();
  for (int64_t p = lo; p < hi; ++p) {
    if (!dirty[p]) continue;
    dirty[p] = 0;
    const int64_t before = out.n, base = p * c;
    int64_t ch = 0;
    for (; ch + 8 <= c; ch += 8)
      block8(s, e, base + ch, q != nullptr, q ? _mm512_loadu_pd(q + ch) : zero, q ? _mm512_loadu_pd(rq + ch) : zero,
             relu, threshold, dense, static_cast<int32_t>(ch), false, out);
    for (; ch + 4 <= c; ch += 4)
      avx2::block4(s, e, base + ch, q != nullptr, q ? _mm256_loadu_pd(q + ch) : zero4,
                   q ? _mm256_loadu_pd(rq + ch) : zero4, relu, threshold, dense, static_cast<int32_t>(ch), false, out);
    for (; ch < c; ++ch) {
      double d;
      if (serial::activate1(s[base + ch], e + base + ch, q ? q + ch : nullptr, relu, threshold, dense, &d))
        serial::emit(out, static_cast<int32_t>(base + ch), static_cast<int32_t>(ch), d);
    }
    serial::close_run(out, p, before);
  }
}

}  // namespace avx512
}  // namespace delta
}  // namespace frugalnn
#endif
