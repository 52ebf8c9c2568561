#include "dcq/ggml_type.hpp"

#include <array>
#include <cctype>

namespace dcq {
namespace {

struct Entry {
  uint32_t id;
  TypeTraits traits;
};

// Block geometry from ggml's block structs (ggml-common.h): QK_K = 256, QK4_NL = 32.
constexpr std::array<Entry, 32> kTypes{{
    {0, {"F32", 1, 4, false}},
    {1, {"F16", 1, 2, false}},
    {2, {"Q4_0", 32, 18, true}},
    {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},
    {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},
    {9, {"Q8_1", 32, 36, true}},
    {10, {"Q2_K", 256, 84, true}},
    {11, {"Q3_K", 256, 110, true}},
    {12, {"Q4_K", 256, 144, true}},
    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},
    {15, {"Q8_K", 256, 292, true}},
    {16, {"IQ2_XXS", 256, 66, true}},
    {17, {"IQ2_XS", 256, 74, true}},
    {18, {"IQ3_XXS", 256, 98, true}},
    {19, {"IQ1_S", 256, 50, true}},
    {20, {"IQ4_NL", 32, 18, true}},
    {21, {"IQ3_S", 256, 110, true}},
    {22, {"IQ2_S", 256, 82, true}},
    {23, {"IQ4_XS", 256, 136, true}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", 256, 56, true}},
    {30, {"BF16", 1, 2, false}},
    {34, {"TQ1_0", 256, 54, true}},
    {35, {"TQ2_0", 256, 66, true}},
    {39, {"MXFP4", 32, 17, true}},
}};

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t raw_type) {
  for (const auto& e : kTypes)
    if (e.id == raw_type) return e.traits;
  return std::nullopt;
}

const TypeTraits& traits(GgmlType type) {
  for (const auto& e : kTypes)
    if (e.id == static_cast<uint32_t>(type)) return e.traits;
  return kTypes[0].traits;  // unreachable for a valid enum value
}

std::string_view type_name(GgmlType type) { return traits(type).name; }

std::optional<GgmlType> parse_type(std::string_view name) {
  for (const auto& e : kTypes) {
    if (e.traits.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size(); ++i)
      if (std::toupper(static_cast<unsigned char>(name[i])) != e.traits.name[i]) same = false;
    if (same) return static_cast<GgmlType>(e.id);
  }
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(GgmlType type, int64_t n) {
  const auto& t = traits(type);
  if (n < 0 || n % t.block_size != 0) return std::nullopt;
  return static_cast<uint64_t>(n / t.block_size) * t.type_size;
}

}  // namespace dcq
