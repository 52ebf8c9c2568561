#include "dcq/model.hpp"

#include <algorithm>

#include "dcq/error.hpp"

namespace dcq {

int64_t Tensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

int64_t Tensor::n_rows() const {
  const int64_t w = row_width();
  return w == 0 ? 0 : n_elements() / w;
}

uint64_t Tensor::n_bytes() const {
  const auto& t = traits(type);
  return static_cast<uint64_t>(n_elements() / t.block_size) * t.type_size;
}

std::string_view format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::gguf: return "gguf";
    case ModelFormat::safetensors: return "safetensors";
    case ModelFormat::llama2c: return "llama2c";
    case ModelFormat::dcq: return "dcq";
  }
  return "?";
}

const Tensor* Model::find_tensor(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const GgufValue* Model::find_kv(std::string_view key) const {
  for (const auto& kv : metadata)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

GgufValue* Model::find_kv(std::string_view key) {
  for (auto& kv : metadata)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

void Model::set_kv(std::string key, GgufValue value) {
  if (auto* v = find_kv(key)) {
    *v = std::move(value);
    return;
  }
  metadata.push_back({std::move(key), std::move(value)});
}

void Model::erase_kv(std::string_view key) {
  std::erase_if(metadata, [&](const GgufKV& kv) { return kv.key == key; });
}

std::span<uint8_t> Model::allocate(uint64_t n) {
  auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n));
  std::span<uint8_t> s(buf->data(), buf->size());
  owners_.push_back(std::move(buf));
  return s;
}

}  // namespace dcq
