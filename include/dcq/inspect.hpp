// `dcq inspect`: what a model file holds.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "dcq/io.hpp"

namespace dcq {

struct InspectOptions {
  std::filesystem::path input;
  LoadOptions load;
  size_t max_array_items = 16;  // longer metadata arrays are summarised as type + count
};

// Report: {"file","format","gguf_version","alignment","metadata":{...},"tensors":[{name,type,
// shape,bytes,offset}],"totals":{"tensors","parameters","tensor_bytes","file_bytes",
// "bits_per_weight"}}.
nlohmann::ordered_json inspect(const InspectOptions& options);

}  // namespace dcq
