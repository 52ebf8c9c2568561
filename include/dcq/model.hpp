// A model is metadata plus named tensors. Every reader produces a Model, every writer takes one:
// GGUF, safetensors and llama2.c files all meet here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/ggml_type.hpp"
#include "dcq/gguf_value.hpp"

namespace dcq {

struct Tensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;          // ggml order: ne[0] is the row width (innermost dimension)
  std::span<const uint8_t> data;    // whole tensor, rows contiguous; owned by the Model

  int64_t n_elements() const;
  int64_t row_width() const { return ne.empty() ? 1 : ne[0]; }
  int64_t n_rows() const;
  uint64_t n_bytes() const;
};

enum class ModelFormat { gguf, safetensors, llama2c, dcq };
std::string_view format_name(ModelFormat f);

struct Model {
  std::filesystem::path source;
  ModelFormat format = ModelFormat::gguf;
  uint32_t gguf_version = 3;
  uint64_t alignment = 32;            // GGUF general.alignment (default 32)
  std::vector<GgufKV> metadata;       // in file order
  std::vector<Tensor> tensors;        // in file order

  const Tensor* find_tensor(std::string_view name) const;
  const GgufValue* find_kv(std::string_view key) const;
  GgufValue* find_kv(std::string_view key);
  void set_kv(std::string key, GgufValue value);  // replaces in place or appends
  void erase_kv(std::string_view key);

  // Owns a new zeroed buffer whose lifetime is the model's (for converted tensors).
  std::span<uint8_t> allocate(uint64_t n);
  // Keeps a mapping or other storage alive for as long as the model.
  void keep(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }

 private:
  std::vector<std::shared_ptr<const void>> owners_;
};

}  // namespace dcq
