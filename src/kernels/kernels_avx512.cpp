// AVX-512 (F/BW/DQ/VL + VNNI) kernels; only called when cpuid says so. Never AMX.
// The F32/F16 dots use ggml's AVX-512 vec_dot accumulation order (4 x 16 lanes over steps of 64,
// pairwise reduction, leftovers in double).
#include <immintrin.h>

// GCC 12's AVX-512 headers build some results from _mm512_undefined_*(), which -Wuninitialized
// reports at every use (a known false positive); nothing here reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Keep `sum + d * isum` unfused, as in the scalar twins (explicit fmadd calls are unaffected).
#pragma GCC optimize("fp-contract=off")

#include <utility>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline __m512 load_f16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// ggml's vec_dot: 4 accumulators over steps of 64, pairwise reduction, leftovers summed in double.
template <typename Load, typename Tail>
float dot_ggml_order(int64_t n, Load load, Tail tail) {
  const int64_t np = n & ~int64_t(63);
  __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t i = 0; i < np; i += 64)
    for (int j = 0; j < 4; ++j) {
      const auto [a, b] = load(i + 16 * j);
      s[j] = _mm512_fmadd_ps(a, b, s[j]);
    }
  s[0] = _mm512_add_ps(s[0], s[2]);
  s[1] = _mm512_add_ps(s[1], s[3]);
  s[0] = _mm512_add_ps(s[0], s[1]);
  double sum = _mm512_reduce_add_ps(s[0]);
  for (int64_t i = np; i < n; ++i) sum += tail(i);
  return static_cast<float>(sum);
}

float dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  auto load = [&](int64_t i) { return std::pair{_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)}; };
  return dot_ggml_order(n, load, [&](int64_t i) { return double(x[i] * y[i]); });
}

// F16 weights times F16 activations: each product is exact in float (11 x 11 significant bits), so
// summing the products in double makes the result independent of the order, i.e. equal to the
// scalar twin; this tracks llama.cpp's perplexities closest on the stories260K files.
float dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 p = _mm512_mul_ps(load_f16x16(x + i), load_f16x16(y + i));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p), 1))));
  }
  double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; i < n; ++i) sum += double(_cvtsh_ss(x[i]) * _cvtsh_ss(y[i]));
  return static_cast<float>(sum);
}

// dcq I8 codes, as the AVX2 twin with 16 lanes; a group's last group % 16 elements go through
// masked loads (zeros elsewhere), so any width works without a scalar tail.
inline __m512 widen16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 widen16_masked(const int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

template <int T>
inline void dot_i8_rows(int64_t n, const int8_t* w, const float* const* x, const float* scales, int64_t group,
                        float* out) {
  __m512 total[T];
  for (int i = 0; i < T; ++i) total[i] = _mm512_setzero_ps();
  const int64_t vec = group & ~int64_t(15);
  const __mmask16 m = static_cast<__mmask16>((1u << (group & 15)) - 1);
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    __m512 part[T];
    for (int i = 0; i < T; ++i) part[i] = _mm512_setzero_ps();
    for (int64_t k = g0; k < g0 + vec; k += 16) {
      const __m512 wf = widen16(w + k);
      for (int i = 0; i < T; ++i) part[i] = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x[i] + k), part[i]);
    }
    if (m) {
      const int64_t k = g0 + vec;
      const __m512 wf = widen16_masked(w + k, m);
      for (int i = 0; i < T; ++i) part[i] = _mm512_fmadd_ps(wf, _mm512_maskz_loadu_ps(m, x[i] + k), part[i]);
    }
    const __m512 sc = _mm512_set1_ps(scales[g]);
    for (int i = 0; i < T; ++i) total[i] = _mm512_fmadd_ps(sc, part[i], total[i]);
  }
  for (int i = 0; i < T; ++i) out[i] = _mm512_reduce_add_ps(total[i]);
}

float dot_i8(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group) {
  float out;
  dot_i8_rows<1>(n, w, &x, scales, group, &out);
  return out;
}

void dot_i8_4(int64_t n, const int8_t* w, const float* const x[4], const float* scales, int64_t group, float out[4]) {
  dot_i8_rows<4>(n, w, x, scales, group, out);
}

// ---------------------------------------------------------------- Q8_0-activation dots, VNNI
// Four dots at once (w[i] with a[i]), bit-identical with the scalar twin: every block's integer
// sum is exact, and each row's float chain is sum += (dx * dy) * float(isum) in block order,
// unfused. vpdpbusd multiplies unsigned by signed bytes, so the weight levels go in with an
// offset (Q8_0: level + 128, Q4_0: the raw nibble = level + 8) and the accumulator starts at
// -offset * sum(y), computed once per activation block pair.

inline __m512i load_pair(const int8_t* p0, const int8_t* p1) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1)), 1);
}
// 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in 16..31 (ggml order).
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0F));
}

struct Q8_0Levels {
  using Block = BlockQ8_0;
  static constexpr int kShift = 7;  // offset 128
  static __m512i pair(const BlockQ8_0& b0, const BlockQ8_0& b1) {
    return _mm512_xor_si512(load_pair(b0.qs, b1.qs), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static __m512i signed_pair(const BlockQ8_0& b0, const BlockQ8_0& b1) { return load_pair(b0.qs, b1.qs); }
  static __m256i one(const BlockQ8_0& b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};

struct Q4_0Levels {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;  // offset 8
  static __m512i pair(const BlockQ4_0& b0, const BlockQ4_0& b1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(nibbles(b0.qs)), nibbles(b1.qs), 1);
  }
  static __m512i signed_pair(const BlockQ4_0& b0, const BlockQ4_0& b1) {
    return _mm512_sub_epi8(pair(b0, b1), _mm512_set1_epi8(8));
  }
  static __m256i one(const BlockQ4_0& b) { return nibbles(b.qs); }
};

constexpr int kPrefetchBytes = 1024;

template <typename L>
void dot4_vnni(int64_t n, const void* const w[4], const void* const a[4], float out[4]) {
  using Block = typename L::Block;
  const Block* x[4] = {static_cast<const Block*>(w[0]), static_cast<const Block*>(w[1]),
                       static_cast<const Block*>(w[2]), static_cast<const Block*>(w[3])};
  const BlockQ8_0* y[4] = {static_cast<const BlockQ8_0*>(a[0]), static_cast<const BlockQ8_0*>(a[1]),
                           static_cast<const BlockQ8_0*>(a[2]), static_cast<const BlockQ8_0*>(a[3])};
  // One token against four rows (generation) shares the activation work.
  const bool one_act = a[0] == a[1] && a[0] == a[2] && a[0] == a[3];
  const bool one_w = w[0] == w[1] && w[0] == w[2] && w[0] == w[3];
  const __m512i ones = _mm512_set1_epi8(1);
  const int64_t nb = n / QK;
  __m128 sum = _mm_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    // Generation streams every weight from memory once per token: ask for the rows' blocks a
    // few cache lines ahead (four rows are four streams; the hardware prefetcher lags on them).
    for (int i = 0; i < 4; ++i) _mm_prefetch(reinterpret_cast<const char*>(x[i] + b) + kPrefetchBytes, _MM_HINT_T0);
    __m512i acc[4];
    if (one_w) {
      // One row against four tokens (prompt batches): the row's signs move onto each token's
      // bytes, so vpdpbusd sees |level| (exact, -128 included) and no offset correction is needed.
      const __m512i q = L::signed_pair(x[0][b], x[0][b + 1]);
      const __m512i aq = _mm512_abs_epi8(q);
      const __mmask64 neg = _mm512_movepi8_mask(q);
      for (int i = 0; i < 4; ++i) {
        const __m512i yv = load_pair(y[i][b].qs, y[i][b + 1].qs);
        acc[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aq, _mm512_mask_sub_epi8(yv, neg, _mm512_setzero_si512(), yv));
      }
    } else {
      __m512i yv[4];
      for (int i = 0; i < 4; ++i) {
        if (i > 0 && one_act) {
          yv[i] = yv[0];
          acc[i] = acc[0];
          continue;
        }
        yv[i] = load_pair(y[i][b].qs, y[i][b + 1].qs);
        const __m512i ysum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, yv[i]);
        acc[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(ysum, L::kShift));
      }
      for (int i = 0; i < 4; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], L::pair(x[i][b], x[i][b + 1]), yv[i]);
    }
    // Transpose-reduce: 128-bit lanes 0-1 hold block b, lanes 2-3 block b + 1.
    const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[0], acc[1]), _mm512_unpackhi_epi32(acc[0], acc[1]));
    const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[2], acc[3]), _mm512_unpackhi_epi32(acc[2], acc[3]));
    const __m512i r = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    const __m512i even = _mm512_shuffle_i64x2(r, r, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i odd = _mm512_shuffle_i64x2(r, r, _MM_SHUFFLE(3, 1, 3, 1));
    const __m256 isum = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm512_castsi512_si256(even), _mm512_castsi512_si256(odd)));
    __m256 dx;
    if (one_w) {
      dx = _mm256_set_m128(_mm_set1_ps(_cvtsh_ss(x[0][b + 1].d)), _mm_set1_ps(_cvtsh_ss(x[0][b].d)));
    } else {
      dx = _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(x[0][b].d), static_cast<short>(x[1][b].d),
                                          static_cast<short>(x[2][b].d), static_cast<short>(x[3][b].d),
                                          static_cast<short>(x[0][b + 1].d), static_cast<short>(x[1][b + 1].d),
                                          static_cast<short>(x[2][b + 1].d), static_cast<short>(x[3][b + 1].d)));
    }
    __m256 dy;
    if (one_act) {
      dy = _mm256_set_m128(_mm_set1_ps(_cvtsh_ss(y[0][b + 1].d)), _mm_set1_ps(_cvtsh_ss(y[0][b].d)));
    } else {
      dy = _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(y[0][b].d), static_cast<short>(y[1][b].d),
                                          static_cast<short>(y[2][b].d), static_cast<short>(y[3][b].d),
                                          static_cast<short>(y[0][b + 1].d), static_cast<short>(y[1][b + 1].d),
                                          static_cast<short>(y[2][b + 1].d), static_cast<short>(y[3][b + 1].d)));
    }
    const __m256 prod = _mm256_mul_ps(_mm256_mul_ps(dx, dy), isum);
    sum = _mm_add_ps(sum, _mm256_castps256_ps128(prod));
    sum = _mm_add_ps(sum, _mm256_extractf128_ps(prod, 1));
  }
  _mm_storeu_ps(out, sum);
  if (b < nb) {  // an odd block count: the last block row by row
    for (int i = 0; i < 4; ++i) {
      const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i][b].qs));
      const __m256i ysum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), yv);
      const __m256i acc = _mm256_dpbusd_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(ysum, L::kShift)),
                                              L::one(x[i][b]), yv);
      __m128i t = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
      t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
      const float d = _cvtsh_ss(x[i][b].d) * _cvtsh_ss(y[i][b].d);
      out[i] = out[i] + d * static_cast<float>(_mm_cvtsi128_si32(t));
    }
  }
}

// Four rows x four tokens: each row's levels and each token's offset correction are prepared
// once per block pair and used four times; per output the same integers and float chain as
// dot4_vnni (hence as the scalar twin).
template <typename L>
void gemm4x4_vnni(int64_t n, const void* const w[4], const void* const a[4], float out[16]) {
  using Block = typename L::Block;
  const Block* x[4] = {static_cast<const Block*>(w[0]), static_cast<const Block*>(w[1]),
                       static_cast<const Block*>(w[2]), static_cast<const Block*>(w[3])};
  const BlockQ8_0* y[4] = {static_cast<const BlockQ8_0*>(a[0]), static_cast<const BlockQ8_0*>(a[1]),
                           static_cast<const BlockQ8_0*>(a[2]), static_cast<const BlockQ8_0*>(a[3])};
  const __m512i ones = _mm512_set1_epi8(1);
  const int64_t nb = n / QK;
  __m128 sum[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};  // per token
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    __m512i u[4], yv[4], corr[4];
    for (int r = 0; r < 4; ++r) u[r] = L::pair(x[r][b], x[r][b + 1]);
    for (int t = 0; t < 4; ++t) {
      yv[t] = load_pair(y[t][b].qs, y[t][b + 1].qs);
      const __m512i ysum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, yv[t]);
      corr[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(ysum, L::kShift));
    }
    const __m256 dx = _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(x[0][b].d), static_cast<short>(x[1][b].d),
                                                     static_cast<short>(x[2][b].d), static_cast<short>(x[3][b].d),
                                                     static_cast<short>(x[0][b + 1].d), static_cast<short>(x[1][b + 1].d),
                                                     static_cast<short>(x[2][b + 1].d), static_cast<short>(x[3][b + 1].d)));
    for (int t = 0; t < 4; ++t) {
      __m512i acc[4];
      for (int r = 0; r < 4; ++r) acc[r] = _mm512_dpbusd_epi32(corr[t], u[r], yv[t]);
      const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[0], acc[1]), _mm512_unpackhi_epi32(acc[0], acc[1]));
      const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[2], acc[3]), _mm512_unpackhi_epi32(acc[2], acc[3]));
      const __m512i rr = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
      const __m512i even = _mm512_shuffle_i64x2(rr, rr, _MM_SHUFFLE(2, 0, 2, 0));
      const __m512i odd = _mm512_shuffle_i64x2(rr, rr, _MM_SHUFFLE(3, 1, 3, 1));
      const __m256 isum = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm512_castsi512_si256(even), _mm512_castsi512_si256(odd)));
      const __m256 dy = _mm256_set_m128(_mm_set1_ps(_cvtsh_ss(y[t][b + 1].d)), _mm_set1_ps(_cvtsh_ss(y[t][b].d)));
      const __m256 prod = _mm256_mul_ps(_mm256_mul_ps(dx, dy), isum);
      sum[t] = _mm_add_ps(sum[t], _mm256_castps256_ps128(prod));
      sum[t] = _mm_add_ps(sum[t], _mm256_extractf128_ps(prod, 1));
    }
  }
  for (int t = 0; t < 4; ++t) _mm_storeu_ps(out + 4 * t, sum[t]);
  if (b < nb) {  // an odd block count: the last block output by output
    for (int t = 0; t < 4; ++t) {
      const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].qs));
      const __m256i ysum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), yv);
      const __m256i corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(ysum, L::kShift));
      for (int r = 0; r < 4; ++r) {
        const __m256i acc = _mm256_dpbusd_epi32(corr, L::one(x[r][b]), yv);
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
        const float d = _cvtsh_ss(x[r][b].d) * _cvtsh_ss(y[t][b].d);
        out[4 * t + r] = out[4 * t + r] + d * static_cast<float>(_mm_cvtsi128_si32(s));
      }
    }
  }
}

}  // namespace

void fill_avx512(KernelTable& t) {
  t.vec_dot[static_cast<int>(GgmlType::F32)] = dot_f32;
  t.vec_dot[static_cast<int>(GgmlType::F16)] = dot_f16;
  t.dot_i8 = dot_i8;
  t.dot_i8_4 = dot_i8_4;
  t.vec_dot4[static_cast<int>(GgmlType::Q8_0)] = dot4_vnni<Q8_0Levels>;
  t.vec_dot4[static_cast<int>(GgmlType::Q4_0)] = dot4_vnni<Q4_0Levels>;
  t.gemm4x4[static_cast<int>(GgmlType::Q8_0)] = gemm4x4_vnni<Q8_0Levels>;
  t.gemm4x4[static_cast<int>(GgmlType::Q4_0)] = gemm4x4_vnni<Q4_0Levels>;
}

}  // namespace dcq::kernels
