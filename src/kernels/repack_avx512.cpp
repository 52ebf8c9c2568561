// AVX-512 kernels written after kernels_avx512.cpp (which stays as it was): VNNI kernels of the
// interleaved Q8_0 / Q4_0 layout (blocks.hpp, BlockQ8_0x8 / BlockQ4_0x8) and an F32 batch tile in
// that file's dot_f32 order. Only called when cpuid reports AVX-512 F/BW/DQ/VL + VNNI.
//
// vpdpbusd multiplies unsigned by signed bytes: the weights enter as unsigned (Q8_0: level ^ 0x80
// = level + 128; Q4_0: the raw nibble = level + 8) and each accumulator starts at
// -offset * (the token's byte sums in the same lanes), so every row's block sum is the exact
// integer the scalar twin computes. The float chain per (row, token) is the twin's:
// sum += (dx * dy) * float(isum) in block order, unfused, the 8 rows in 8 lanes: bit-identical.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC optimize("fp-contract=off")

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Per 128-bit chunk of a and b: [a0+a1+a2+a3 | b.. | a.. | b..] pieces, see reduce_q8 / reduce_q4.
inline __m512i pair_sum(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}

// p[k] = 16 int32 lanes, rows 2k (lanes 0..7) and 2k + 1 (lanes 8..15) -> the 8 row sums in order.
inline __m256i reduce_q8(const __m512i p[4]) {
  const __m512i u = pair_sum(p[0], p[1]), v = pair_sum(p[2], p[3]);
  // chunk c of w: [p0, p1, p2, p3] summed over chunk c's four lanes.
  const __m512i w = _mm512_add_epi32(_mm512_unpacklo_epi64(u, v), _mm512_unpackhi_epi64(u, v));
  // chunks 0 + 1: rows 0, 2, 4, 6; chunks 2 + 3: rows 1, 3, 5, 7.
  const __m512i s = _mm512_add_epi32(w, _mm512_shuffle_i32x4(w, w, 0xB1));
  const __m512i idx = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, s));
}

template <int NT>
void group_q8_0(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ8_0x8*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m256 sum[NT];
  for (int t = 0; t < NT; ++t) sum[t] = _mm256_setzero_ps();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), ones = _mm512_set1_epi8(1);
  for (int64_t b = 0; b < n / QK; ++b) {
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1024, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1088, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1152, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1216, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1280, _MM_HINT_T0);
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].d)));
    __m512i u[4];  // rows 2k, 2k + 1 as level + 128
    for (int k = 0; k < 4; ++k) u[k] = _mm512_xor_si512(_mm512_loadu_si512(x[b].qs[2 * k]), flip);
    for (int t = 0; t < NT; ++t) {
      const __m512i yv = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].qs)));
      // -128 * (sums of 4 bytes of y) in every lane: the offset of the unsigned weights.
      const __m512i base = _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, yv), 7));
      __m512i p[4];
      for (int k = 0; k < 4; ++k) p[k] = _mm512_dpbusd_epi32(base, u[k], yv);
      const __m256 isum = _mm256_cvtepi32_ps(reduce_q8(p));
      const __m256 d = _mm256_mul_ps(dx, _mm256_set1_ps(f16(y[t][b].d)));
      sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(d, isum));
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, sum[t]);
}

// q[k] = 16 int32 lanes over the chunks [row 2k | row 2k + 4 | row 2k + 1 | row 2k + 5] (4 lanes
// each) -> the 8 row sums in order.
inline __m256i reduce_q4(const __m512i q[2]) {
  const __m512i u = pair_sum(q[0], q[1]);                      // chunk c: [q0 02, q1 02, q0 13, q1 13]
  const __m512i w = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_BADC));  // [q0, q1, q0, q1]
  // chunk 0: rows 0, 2; chunk 1: rows 4, 6; chunk 2: rows 1, 3; chunk 3: rows 5, 7.
  const __m512i idx = _mm512_setr_epi32(0, 8, 1, 9, 4, 12, 5, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, w));
}

template <int NT>
void group_q4_0(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ4_0x8*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m256 sum[NT];
  for (int t = 0; t < NT; ++t) sum[t] = _mm256_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), ones = _mm512_set1_epi8(1);
  for (int64_t b = 0; b < n / QK; ++b) {
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1024, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1088, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + b) + 1152, _MM_HINT_T0);
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].d)));
    __m512i lo[2], hi[2];  // nibbles (level + 8) of elements 0..15 and 16..31
    for (int k = 0; k < 2; ++k) {
      const __m512i v = _mm512_loadu_si512(x[b].qs[2 * k]);
      lo[k] = _mm512_and_si512(v, low4);
      hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    }
    for (int t = 0; t < NT; ++t) {
      const __m512i ylo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].qs)));
      const __m512i yhi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].qs + 16)));
      const __m512i sy = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, ylo), ones, yhi);
      const __m512i base = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sy, 3));  // -8 * sum(y)
      __m512i q[2];
      for (int k = 0; k < 2; ++k) q[k] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(base, lo[k], ylo), hi[k], yhi);
      const __m256 isum = _mm256_cvtepi32_ps(reduce_q4(q));
      const __m256 d = _mm256_mul_ps(dx, _mm256_set1_ps(f16(y[t][b].d)));
      sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(d, isum));
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, sum[t]);
}

// F32 batches: a 4 rows x 4 tokens tile whose every output is bit-identical with the AVX-512
// dot_f32 (kernels_avx512.cpp: ggml's order, four 16-lane accumulators s0..s3 over steps of 64,
// s0 + s2, s1 + s3, then their sum, _mm512_reduce_add_ps, leftovers added in double), so batched
// and token-by-token evaluation still agree. Pass j computes every output's s_j (16 register
// accumulators, each token's 16 floats loaded once for the 4 rows and each row's once for the 4
// tokens); chunks of 256 elements keep the 8 vectors' chunk (8 KiB) in L1 for the four passes.
void gemm4x4_f32(int64_t n, const void* const w[4], const void* const a[4], float out[16]) {
  const float* x[4];
  const float* y[4];
  for (int i = 0; i < 4; ++i) x[i] = static_cast<const float*>(w[i]), y[i] = static_cast<const float*>(a[i]);
  const int64_t np = n & ~int64_t(63);
  __m512 s[4][4][4];  // [pass][row][token]
  for (int j = 0; j < 4; ++j)
    for (int r = 0; r < 4; ++r)
      for (int t = 0; t < 4; ++t) s[j][r][t] = _mm512_setzero_ps();
  constexpr int64_t kChunk = 256;
  for (int64_t c = 0; c < np; c += kChunk) {
    const int64_t ce = c + kChunk < np ? c + kChunk : np;
    for (int j = 0; j < 4; ++j) {
      __m512 acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int t = 0; t < 4; ++t) acc[r][t] = s[j][r][t];
      for (int64_t i = c + 16 * j; i < ce; i += 64) {
        __m512 yv[4];
        for (int t = 0; t < 4; ++t) yv[t] = _mm512_loadu_ps(y[t] + i);
        for (int r = 0; r < 4; ++r) {
          const __m512 wv = _mm512_loadu_ps(x[r] + i);
          for (int t = 0; t < 4; ++t) acc[r][t] = _mm512_fmadd_ps(wv, yv[t], acc[r][t]);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int t = 0; t < 4; ++t) s[j][r][t] = acc[r][t];
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < 4; ++t) {
      __m512 s0 = _mm512_add_ps(s[0][r][t], s[2][r][t]);
      const __m512 s1 = _mm512_add_ps(s[1][r][t], s[3][r][t]);
      s0 = _mm512_add_ps(s0, s1);
      double sum = _mm512_reduce_add_ps(s0);
      for (int64_t i = np; i < n; ++i) sum += double(x[r][i] * y[t][i]);
      out[4 * t + r] = static_cast<float>(sum);
    }
  }
}

template <void (*K1)(int64_t, const void*, const void* const[], float*),
          void (*K2)(int64_t, const void*, const void* const[], float*),
          void (*K3)(int64_t, const void*, const void* const[], float*),
          void (*K4)(int64_t, const void*, const void* const[], float*)>
void dispatch(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  switch (n_tok) {
    case 1: return K1(n, group, a, out);
    case 2: return K2(n, group, a, out);
    case 3: return K3(n, group, a, out);
    default: return K4(n, group, a, out);
  }
}

}  // namespace

void fill_avx512_repack(KernelTable& t) {
  t.group_dot[static_cast<int>(GgmlType::Q8_0)] =
      dispatch<group_q8_0<1>, group_q8_0<2>, group_q8_0<3>, group_q8_0<4>>;
  t.group_dot[static_cast<int>(GgmlType::Q4_0)] =
      dispatch<group_q4_0<1>, group_q4_0<2>, group_q4_0<3>, group_q4_0<4>>;
  t.interleave_pays = true;
  t.gemm4x4[static_cast<int>(GgmlType::F32)] = gemm4x4_f32;
}

}  // namespace dcq::kernels
