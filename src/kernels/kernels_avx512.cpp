// AVX-512 (F/BW/DQ/VL + VNNI) kernels; only called when cpuid says so. Never AMX.
// The F32/F16 dots use ggml's AVX-512 vec_dot accumulation order (4 x 16 lanes over steps of 64,
// pairwise reduction, leftovers in double).
#include <immintrin.h>

// GCC 12's AVX-512 headers build some results from _mm512_undefined_*(), which -Wuninitialized
// reports at every use (a known false positive); nothing here reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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

}  // namespace

void fill_avx512(KernelTable& t) {
  t.vec_dot[static_cast<int>(GgmlType::F32)] = dot_f32;
  t.vec_dot[static_cast<int>(GgmlType::F16)] = dot_f16;
  t.dot_i8 = dot_i8;
  t.dot_i8_4 = dot_i8_4;
}

}  // namespace dcq::kernels
