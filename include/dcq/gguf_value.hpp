// GGUF metadata values. The variant's alternative index equals the GGUF value-type id, so the
// on-disk type of every key survives a read/write round trip exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dcq {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GgufValue;

struct GgufArray {
  GgufType elem = GgufType::UINT8;
  std::vector<GgufValue> items;
};

struct GgufValue {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               GgufArray, uint64_t, int64_t, double>
      v;

  GgufType type() const { return static_cast<GgufType>(v.index()); }
  bool is_integer() const;
  bool is_number() const;
  // Numeric value of an integer/float/bool scalar; throws Error(bad_input) otherwise.
  int64_t as_int(std::string_view key) const;
  double as_float(std::string_view key) const;
  const std::string& as_string(std::string_view key) const;
  const GgufArray& as_array(std::string_view key) const;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

std::string_view gguf_type_name(GgufType t);
// JSON form for --json output; arrays longer than `max_items` are summarised (type + count).
nlohmann::json to_json(const GgufValue& v, size_t max_items);

}  // namespace dcq
