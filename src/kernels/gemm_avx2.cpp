// F32 / F16 matmuls in 16-lane order on 256-bit registers (AVX2 + FMA + F16C): exactly the
// AVX-512 path's numbers (gemm_avx512.cpp). Each output keeps its 16 lanes as two 8-lane
// accumulators, lo (i = 0..7 mod 16) and hi (i = 8..15 mod 16), an FMA per step of 8 alternating
// between them; the halving sum starts with lo + hi (lanes l and l + 8), then l + 4, l + 2, l + 1.
// So F32 / F16 results do not depend on the instruction set (an AVX2-only machine reproduces the
// AVX-512 reference logits), at the price of twice the accumulators per output. Every output is an
// independent chain, so any register tile computes it exactly as one row against one token does.
// Scalar twin: dot_lanes_scalar with 16 lanes.
#include <immintrin.h>

// The reduction must stay additions in the twin's order (explicit fmadd calls are unaffected).
#pragma GCC optimize("fp-contract=off")

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

constexpr int kLanes = 16;  // the order's lane count; registers hold 8
// 2 rows x 3 tokens x 2 halves: 12 accumulators + 3 token vectors + 1 weight vector fill the 16 ymm.
constexpr int kTileRows = 2;
constexpr int kTileToks = 3;

inline float reduce_halving(__m256 lo, __m256 hi) {
  const __m256 v = _mm256_add_ps(lo, hi);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

template <bool F16>
inline __m256 load_w(const void* row, int64_t k) {
  if constexpr (F16)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k)));
  else
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
}

// R rows x T tokens; y[t * y_stride + r]. The tokens' vectors are loaded first and each row's once
// per step (the order that fits 16 registers for 4 x 3).
template <bool F16, int R, int T>
void tile(int64_t n, const uint8_t* w, size_t w_stride, const float* a, size_t a_stride, float* y, int64_t y_stride) {
  __m256 acc[2][R][T];  // [half][row][token]
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[h][r][t] = _mm256_setzero_ps();
  for (int64_t k = 0; k < n; k += kLanes) {
    for (int h = 0; h < 2; ++h) {
      const int64_t kh = k + 8 * h;
      __m256 yv[T];
      for (int t = 0; t < T; ++t) yv[t] = _mm256_loadu_ps(a + t * a_stride + kh);
      for (int r = 0; r < R; ++r) {
        const __m256 wv = load_w<F16>(w + r * w_stride, kh);
        for (int t = 0; t < T; ++t) acc[h][r][t] = _mm256_fmadd_ps(wv, yv[t], acc[h][r][t]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * y_stride + r] = reduce_halving(acc[0][r][t], acc[1][r][t]);
}

template <bool F16, int R>
void rows_panel(int64_t n, const uint8_t* w, size_t w_stride, const float* a, size_t a_stride, int64_t n_tok,
                float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + kTileToks <= n_tok; t += kTileToks)
    tile<F16, R, kTileToks>(n, w, w_stride, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
  const float* at = a + t * a_stride;
  float* yt = y + t * y_stride;
  switch (n_tok - t) {
    case 1: return tile<F16, R, 1>(n, w, w_stride, at, a_stride, yt, y_stride);
    case 2: return tile<F16, R, 2>(n, w, w_stride, at, a_stride, yt, y_stride);
    default: return;
  }
}

template <bool F16>
void panel(int64_t n, const void* w, size_t w_stride, int n_rows, const float* a, size_t a_stride, int64_t n_tok,
           float* y, int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  if (n_tok == 1) {  // generation: rows one after another, see gemm_avx512.cpp
    for (int r = 0; r < n_rows; ++r) tile<F16, 1, 1>(n, wb + size_t(r) * w_stride, w_stride, a, a_stride, y + r, y_stride);
    return;
  }
  for (int r = 0; r < n_rows; r += kTileRows) {
    const uint8_t* wr = wb + size_t(r) * w_stride;
    if (n_rows - r < kTileRows) rows_panel<F16, 1>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride);
    else rows_panel<F16, kTileRows>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride);
  }
}

float lane_dot_f32(int64_t n, const void* w, const void* a) {
  float out;
  tile<false, 1, 1>(n, static_cast<const uint8_t*>(w), 0, static_cast<const float*>(a), 0, &out, 0);
  return out;
}

float lane_dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t k = 0; k < n; k += kLanes) {
    lo = _mm256_fmadd_ps(load_w<true>(x, k), load_w<true>(y, k), lo);
    hi = _mm256_fmadd_ps(load_w<true>(x, k + 8), load_w<true>(y, k + 8), hi);
  }
  return reduce_halving(lo, hi);
}

// Widths that are not a multiple of 16 (e.g. stories260K's 172-wide ffn_down): the AVX-512 path's
// dot_f32 order (ggml's AVX-512 vec_dot: four 16-lane accumulators over steps of 64, combined
// (s0 + s2) + (s1 + s3), halving sum, leftovers added in double), each 16-lane accumulator held as
// two ymm. With the panels this makes every F32 result of this path equal the AVX-512 path's:
// llama.cpp's AVX-512 reference logits then hold on an AVX2-only machine too (mixing orders let one
// F16 KV-cache rounding flip move stories260K's logits by 4e-4). Batches call it per output.
float dot_f32_ggml512(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t np = n & ~int64_t(63);
  __m256 lo[4], hi[4];
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < np; i += 64)
    for (int j = 0; j < 4; ++j) {
      lo[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16 * j), _mm256_loadu_ps(y + i + 16 * j), lo[j]);
      hi[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16 * j + 8), _mm256_loadu_ps(y + i + 16 * j + 8), hi[j]);
    }
  const __m256 l = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
  const __m256 h = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
  double sum = reduce_halving(l, h);
  for (int64_t i = np; i < n; ++i) sum += double(x[i] * y[i]);
  return static_cast<float>(sum);
}

void round_f16(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<float*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i) out[i] = fp16_to_float(float_to_fp16(x[i]));
}

}  // namespace

void fill_avx2_gemm(KernelTable& t) {
  t.panel_lanes = kLanes;
  t.panel[static_cast<int>(GgmlType::F32)] = panel<false>;
  t.panel[static_cast<int>(GgmlType::F16)] = panel<true>;
  t.lane_dot[static_cast<int>(GgmlType::F32)] = lane_dot_f32;
  t.lane_dot[static_cast<int>(GgmlType::F16)] = lane_dot_f16;
  t.panel_act[static_cast<int>(GgmlType::F16)] = round_f16;
  // Other widths: the AVX-512 order, one output at a time (the 4x4 ggml-order tile is dropped).
  t.vec_dot[static_cast<int>(GgmlType::F32)] = dot_f32_ggml512;
  t.gemm4x4[static_cast<int>(GgmlType::F32)] = nullptr;
}

}  // namespace dcq::kernels
