// Placeholder dispatch (F32/F16/BF16 only); the block formats replace it.
#include "dcq/quant.hpp"

#include <cstring>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"

namespace dcq {

bool can_dequantize(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }
bool can_quantize(GgmlType t) { return can_dequantize(t); }

void dequantize(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, n * 4); return;
    case GgmlType::F16: for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_float(h[i]); return;
    case GgmlType::BF16: for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(h[i]); return;
    default: fail_input("no dequantizer for type " + std::string(type_name(type)));
  }
}

void quantize(GgmlType type, const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, n * 4); return;
    case GgmlType::F16: for (int64_t i = 0; i < n; ++i) h[i] = float_to_fp16(src[i]); return;
    case GgmlType::BF16: for (int64_t i = 0; i < n; ++i) h[i] = float_to_bf16(src[i]); return;
    default: fail_input("no quantizer for type " + std::string(type_name(type)));
  }
}

}  // namespace dcq
