// Block formats: the scalar reference for every tensor type ggml writes. Dequantization is
// bit-exact with ggml's to_float; quantization (without importance matrix) is byte-identical
// with ggml's reference quantizers, i.e. with `llama-quantize --pure`.
#pragma once

#include <cstdint>
#include <string>

#include "dcq/ggml_type.hpp"

namespace dcq {

bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

// Converts n elements (a whole number of blocks) of `type` at src into floats.
// Throws Error(bad_input) for a type without a dequantizer.
void dequantize(GgmlType type, const void* src, float* dst, int64_t n);

// Quantizes n elements (a whole number of blocks) into `type` at dst (row_bytes(type, n) bytes).
// Throws Error(bad_input) for a type without a quantizer.
void quantize(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace dcq
