#include "dcq/gguf_value.hpp"

#include <nlohmann/json.hpp>

#include "dcq/error.hpp"

namespace dcq {

bool GgufValue::is_integer() const {
  switch (type()) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
    case GgufType::BOOL:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_number() const {
  return is_integer() || type() == GgufType::FLOAT32 || type() == GgufType::FLOAT64;
}

int64_t GgufValue::as_int(std::string_view key) const {
  return std::visit(
      [&](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          return static_cast<int64_t>(x);
        } else if constexpr (std::is_arithmetic_v<T>) {
          return static_cast<int64_t>(x);
        } else {
          fail_input("metadata key " + std::string(key) + " is " +
                     std::string(gguf_type_name(type())) + ", expected a number");
        }
      },
      v);
}

double GgufValue::as_float(std::string_view key) const {
  return std::visit(
      [&](const auto& x) -> double {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_arithmetic_v<T>) {
          return static_cast<double>(x);
        } else {
          fail_input("metadata key " + std::string(key) + " is " +
                     std::string(gguf_type_name(type())) + ", expected a number");
        }
      },
      v);
}

const std::string& GgufValue::as_string(std::string_view key) const {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  fail_input("metadata key " + std::string(key) + " is " + std::string(gguf_type_name(type())) +
             ", expected a string");
}

const GgufArray& GgufValue::as_array(std::string_view key) const {
  if (const auto* a = std::get_if<GgufArray>(&v)) return *a;
  fail_input("metadata key " + std::string(key) + " is " + std::string(gguf_type_name(type())) +
             ", expected an array");
}

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "u8";
    case GgufType::INT8: return "i8";
    case GgufType::UINT16: return "u16";
    case GgufType::INT16: return "i16";
    case GgufType::UINT32: return "u32";
    case GgufType::INT32: return "i32";
    case GgufType::FLOAT32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "str";
    case GgufType::ARRAY: return "arr";
    case GgufType::UINT64: return "u64";
    case GgufType::INT64: return "i64";
    case GgufType::FLOAT64: return "f64";
  }
  return "?";
}

nlohmann::json to_json(const GgufValue& value, size_t max_items) {
  return std::visit(
      [&](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
          if (x.items.size() > max_items) {
            return {{"type", "arr[" + std::string(gguf_type_name(x.elem)) + "]"},
                    {"count", x.items.size()}};
          }
          auto a = nlohmann::json::array();
          for (const auto& item : x.items) a.push_back(to_json(item, max_items));
          return a;
        } else if constexpr (std::is_same_v<T, std::string>) {
          // Metadata strings may hold invalid UTF-8; nlohmann would throw on dump.
          return nlohmann::json(x);
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return nlohmann::json(static_cast<int>(x));
        } else {
          return nlohmann::json(x);
        }
      },
      value.v);
}

}  // namespace dcq
