// Tensor element types, numbered exactly as ggml numbers them (the GGUF on-disk values), with
// the block geometry of each. Types that are obsolete in ggml (4, 5: Q4_2/Q4_3; 31..33, 36..38)
// are absent and read as "unknown type".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dcq {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct TypeTraits {
  std::string_view name;  // ggml's name, e.g. "q4_K" is printed upper-case: "Q4_K"
  int64_t block_size;     // elements per block (1 for plain types)
  uint64_t type_size;     // bytes per block
  bool quantized;
};

// Traits of a known type; nullopt for a value ggml does not define (e.g. read from a hostile file).
std::optional<TypeTraits> type_traits(uint32_t raw_type);
const TypeTraits& traits(GgmlType type);  // for a type known to be valid
std::string_view type_name(GgmlType type);
// Parses "Q4_0", "q4_0", "f32", "BF16", ... into a type; nullopt if unknown.
std::optional<GgmlType> parse_type(std::string_view name);

// Bytes of one row of n elements; nullopt when n is not a whole number of blocks.
std::optional<uint64_t> row_bytes(GgmlType type, int64_t n);

}  // namespace dcq
