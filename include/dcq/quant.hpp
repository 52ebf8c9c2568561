// Block formats: the scalar reference for every tensor type ggml writes. Dequantization is
// bit-exact with ggml's to_float; quantization (without importance matrix) is byte-identical
// with ggml's reference quantizers, i.e. with `llama-quantize --pure`.
//
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// Q8_K, IQ4_NL, IQ4_XS (both directions). Q8_1 and Q8_K are activation formats; ggml has no
// to_float for Q8_1, ours is the obvious d * q. Block layouts: dcq/quant_blocks.hpp.
#pragma once

#include <cstdint>
#include <string>

#include "dcq/ggml_type.hpp"

namespace dcq {

bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

// Converts n elements (a whole number of blocks) of `type` at src into floats.
// Throws Error(bad_input) for a type without a dequantizer or n not a whole number of blocks.
void dequantize(GgmlType type, const void* src, float* dst, int64_t n);

// Quantizes n elements (a whole number of blocks) into `type` at dst (row_bytes(type, n) bytes).
// Throws Error(bad_input) for a type without a quantizer or n not a whole number of blocks.
// Deterministic: the same floats always give the same bytes (those of llama-quantize --pure).
void quantize(GgmlType type, const float* src, void* dst, int64_t n);

// Whole tensors of n_rows rows of n_per_row elements, rows contiguous, split over n_threads
// std::threads (0: all cores). The output does not depend on the thread count. Throws
// Error(bad_input) when n_per_row is not a multiple of the type's block size.
void quantize_tensor(GgmlType type, const float* src, void* dst, int64_t n_per_row, int64_t n_rows,
                     int n_threads = 0);
void dequantize_tensor(GgmlType type, const void* src, float* dst, int64_t n_per_row, int64_t n_rows,
                       int n_threads = 0);

}  // namespace dcq
