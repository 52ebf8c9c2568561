// AVX-512 kernels written after kernels_avx512.cpp (which stays as it was): VNNI kernels of the
// Q8_0 / Q4_0 lane layout (blocks.hpp, BlockQ8_0x16 / BlockQ4_0x16) and an F32 batch tile in
// kernels_avx512.cpp's dot_f32 order. Only called when cpuid reports AVX-512 F/BW/DQ/VL + VNNI.
//
// One 32-bit lane per row: a 64-byte load of chunk c holds 4 levels of each of the 16 rows, and
// vpdpbusd against the token's 4 bytes of that chunk (a 32-bit broadcast) adds each row's 4
// products to its own lane, so 8 vpdpbusd give 16 rows' block sums with no reduction.
// vpdpbusd multiplies unsigned by signed bytes: the weights enter as unsigned (Q8_0: level ^ 0x80
// = level + 128; Q4_0: the raw nibble = level + 8) and each accumulator starts at
// lane_act's corr = -offset * sum(token's block levels) (computed once per matmul), so every lane ends at the exact
// integer the scalar twin computes. The float chain per (row, token) is the twin's:
// sum += (dx * dy) * float(isum) in block order, unfused, 16 rows in 16 lanes: bit-identical.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC optimize("fp-contract=off")

#include <cstddef>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// The token's 4 bytes at p in every 32-bit lane (the compiler folds it into vpdpbusd's {1to16}).
inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One token's block: 16 rows' integer sums from the unsigned weights w[0..K) (chunk c of levels
// against the token's bytes at offset(c)), starting from `base` (the offset correction). The
// dependent vpdpbusd chain is split in two (measured ~5 % faster with 4 tokens per call).
// No software prefetch: the stream of a thread's groups is contiguous and the hardware prefetcher
// follows it; prefetching 512..2048 bytes ahead halved the 1-token rate here (session 5).
template <int K, int Chains, class Off>
inline __m512i block_isum(__m512i base, const __m512i* w, const int8_t* yq, Off offset) {
  __m512i s[Chains];
  s[0] = base;
  for (int i = 1; i < Chains; ++i) s[i] = _mm512_setzero_si512();
  for (int c = 0; c < K; ++c) s[c % Chains] = _mm512_dpbusd_epi32(s[c % Chains], w[c], bcast4(yq + offset(c)));
  for (int i = 1; i < Chains; ++i) s[0] = _mm512_add_epi32(s[0], s[i]);
  return s[0];
}

// 16 Q8_0 rows x NT tokens. Per block: 8 loads of 64 bytes (once for the NT tokens), 8 xors,
// then 8 vpdpbusd + 4 float ops per token for all 16 rows.
template <int NT>
void lane_q8_0(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], float* out) {
  const auto* x = static_cast<const BlockQ8_0x16*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < n / QK; ++b) {
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].d)));
    __m512i w[8];  // level + 128 of chunk c, row r in lane r
    for (int c = 0; c < 8; ++c) w[c] = _mm512_xor_si512(_mm512_loadu_si512(x[b].qs[c]), flip);
    for (int t = 0; t < NT; ++t) {
      const __m512i base = _mm512_set1_epi32(act[t][b].corr);
      const __m512i isum = block_isum<8, 2>(base, w, y[t][b].qs, [](int c) { return 4 * c; });
      const __m512 d = _mm512_mul_ps(dx, _mm512_set1_ps(act[t][b].d));
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum)));
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + 16 * t, acc[t]);
}

// 16 Q4_0 rows x NT tokens. Chunk c's 64 bytes hold, per row lane, the nibbles of elements
// 4c..4c+3 (low) and 16+4c..16+4c+3 (high): one mask and one shift give both as unsigned bytes.
template <int NT>
void lane_q4_0(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], float* out) {
  const auto* x = static_cast<const BlockQ4_0x16*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / QK; ++b) {
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].d)));
    __m512i w[8];  // w[2c] = level + 8 of elements 4c.., w[2c + 1] of elements 16 + 4c..
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(x[b].qs[c]);
      w[2 * c] = _mm512_and_si512(v, low4);
      w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    }
    for (int t = 0; t < NT; ++t) {
      const __m512i base = _mm512_set1_epi32(act[t][b].corr);
      const __m512i isum =
          block_isum<8, 2>(base, w, y[t][b].qs, [](int k) { return 4 * (k / 2) + 16 * (k % 2); });
      const __m512 d = _mm512_mul_ps(dx, _mm512_set1_ps(act[t][b].d));
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum)));
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + 16 * t, acc[t]);
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

template <void (*K1)(int64_t, const void*, const void* const[], const LaneAct* const[], float*),
          void (*K2)(int64_t, const void*, const void* const[], const LaneAct* const[], float*),
          void (*K3)(int64_t, const void*, const void* const[], const LaneAct* const[], float*),
          void (*K4)(int64_t, const void*, const void* const[], const LaneAct* const[], float*)>
void dispatch(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], int n_tok,
              float* out) {
  static_assert(kLaneTokens == 4);
  switch (n_tok) {
    case 1: return K1(n, group, a, act, out);
    case 2: return K2(n, group, a, act, out);
    case 3: return K3(n, group, a, act, out);
    default: return K4(n, group, a, act, out);
  }
}

constexpr LaneGroupFn kLaneQ8_0 = dispatch<lane_q8_0<1>, lane_q8_0<2>, lane_q8_0<3>, lane_q8_0<4>>;
constexpr LaneGroupFn kLaneQ4_0 = dispatch<lane_q4_0<1>, lane_q4_0<2>, lane_q4_0<3>, lane_q4_0<4>>;

}  // namespace

void fill_avx512_repack(KernelTable& t) {
  t.lane_group[static_cast<int>(GgmlType::Q8_0)] = kLaneQ8_0;
  t.lane_group[static_cast<int>(GgmlType::Q4_0)] = kLaneQ4_0;
  t.group_dot[static_cast<int>(GgmlType::Q8_0)] = lane_group_dot<kLaneQ8_0, GgmlType::Q8_0>;
  t.group_dot[static_cast<int>(GgmlType::Q4_0)] = lane_group_dot<kLaneQ4_0, GgmlType::Q4_0>;
  t.interleave_pays = true;
  t.gemm4x4[static_cast<int>(GgmlType::F32)] = gemm4x4_f32;
}

}  // namespace dcq::kernels
