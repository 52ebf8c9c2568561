// Internal interface of src/quant: one (de)quantizer per block type, each working on a whole
// number of blocks. The dispatch in quant.cpp checks sizes before calling these.
//
// Byte identity with ggml depends on doing the same float operations in the same order: these
// files are compiled for plain x86-64 (no FMA), so `a*b + c` is two rounded operations exactly as
// in ggml's own build of ggml-quants.c. Keep each expression's shape as in ggml when editing.
#pragma once

#include <cstdint>
#include <cstring>

namespace dcq::quant_detail {

// ggml's nearest_int: round to nearest, ties to even, for |f| <= 2^22, by adding 1.5 * 2^23 and
// reading the mantissa. Kept bit-for-bit because the tie rule decides bytes.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// std::round (half away from zero) without a libm call per element: plain x86-64 has no
// roundps, so std::round is not inlined and made Q8_0 quantization 3x slower than Q4_0.
// Exact for |f| < 2^23 (the fractional part f - trunc(f) is then representable), which holds
// for the scaled values of Q8_0/Q8_1 (|f| <= 127).
inline float round_half_away(float f) {
  const float t = static_cast<float>(static_cast<int32_t>(f));
  const float r = f - t;
  // Branch-free: the comparisons are data-dependent and mispredict half the time otherwise.
  return t + static_cast<float>(static_cast<int>(r >= 0.5f) - static_cast<int>(r <= -0.5f));
}

// Legacy 32-element blocks (legacy.cpp).
void quantize_q4_0(const float* x, void* y, int64_t nblocks);
void quantize_q4_1(const float* x, void* y, int64_t nblocks);
void quantize_q5_0(const float* x, void* y, int64_t nblocks);
void quantize_q5_1(const float* x, void* y, int64_t nblocks);
void quantize_q8_0(const float* x, void* y, int64_t nblocks);
void quantize_q8_1(const float* x, void* y, int64_t nblocks);
void dequantize_q4_0(const void* x, float* y, int64_t nblocks);
void dequantize_q4_1(const void* x, float* y, int64_t nblocks);
void dequantize_q5_0(const void* x, float* y, int64_t nblocks);
void dequantize_q5_1(const void* x, float* y, int64_t nblocks);
void dequantize_q8_0(const void* x, float* y, int64_t nblocks);
void dequantize_q8_1(const void* x, float* y, int64_t nblocks);

// K-quants, 256-element super-blocks (kquants.cpp).
void quantize_q2_K(const float* x, void* y, int64_t nblocks);
void quantize_q3_K(const float* x, void* y, int64_t nblocks);
void quantize_q4_K(const float* x, void* y, int64_t nblocks);
void quantize_q5_K(const float* x, void* y, int64_t nblocks);
void quantize_q6_K(const float* x, void* y, int64_t nblocks);
void quantize_q8_K(const float* x, void* y, int64_t nblocks);
void dequantize_q2_K(const void* x, float* y, int64_t nblocks);
void dequantize_q3_K(const void* x, float* y, int64_t nblocks);
void dequantize_q4_K(const void* x, float* y, int64_t nblocks);
void dequantize_q5_K(const void* x, float* y, int64_t nblocks);
void dequantize_q6_K(const void* x, float* y, int64_t nblocks);
void dequantize_q8_K(const void* x, float* y, int64_t nblocks);

// The k-quants' scale searches (ggml's make_qx_quants with rmse_type 1 and no importance
// weights, and make_qkx2_quants), exposed for the tests that pit them against a plain scalar
// transcription. Supported shapes: make_qx_quants n = 16; make_qkx2_quants n = 32 without
// use_mad (Q4_K, Q5_K) and n = 16 with use_mad (Q2_K), nstep >= 1.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L);
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       float rmin, float rdelta, int nstep, bool use_mad);
// ggml's make_q3_quants (do_rmse) on each of the 16 sub-blocks of 16 values in x[256]: levels
// in L[256] (offset by nmax; 0 for an all-zero sub-block), scales[16].
void make_q3_quants_256(int nmax, const float* x, int8_t* L, float* scales);

// Non-linear 4-bit types (iquants.cpp).
void quantize_iq4_nl(const float* x, void* y, int64_t nblocks);
void quantize_iq4_xs(const float* x, void* y, int64_t nblocks);
void dequantize_iq4_nl(const void* x, float* y, int64_t nblocks);
void dequantize_iq4_xs(const void* x, float* y, int64_t nblocks);

}  // namespace dcq::quant_detail
