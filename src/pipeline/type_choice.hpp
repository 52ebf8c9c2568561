// Per-tensor output types for convert (and synth): the requested tensor or file type, with
// llama.cpp's rules for 1-D tensors, mixes and rows that do not fit a block.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dcq/model.hpp"

namespace dcq::pipeline {

struct TypePlan {
  std::vector<GgmlType> types;            // one per model tensor, same order
  std::vector<std::string> reasons;       // non-empty where the type is not the requested one
  std::vector<std::pair<std::string, GgufValue>> metadata_updates;  // general.file_type, ...
};

// `type`: empty (keep), a tensor type ("Q4_0") or a llama.cpp file type ("Q4_K_M").
// `float_only`: the output holds only F32/F16/BF16 (safetensors).
TypePlan plan_types(const Model& model, const std::string& type, bool pure, bool float_only);

// Tensor order of llama-quantize's output (outside-block tensors, then by block, by name), so
// that quantizing reproduces its files byte for byte.
std::vector<size_t> llama_quantize_order(const Model& model);

// Writes a converted model as safetensors (dequantizing/converting tensors in memory).
void write_safetensors_converted(const Model& model, const TypePlan& plan,
                                 const std::filesystem::path& output, bool force, int threads);

}  // namespace dcq::pipeline
