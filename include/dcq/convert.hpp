// `dcq convert`: any readable model to GGUF or safetensors (chosen by the output's extension),
// keeping, quantizing or dequantizing tensor types.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dcq/ggml_type.hpp"
#include "dcq/io.hpp"

namespace dcq {

struct ConvertOptions {
  std::filesystem::path input;
  std::filesystem::path output;   // .gguf or .safetensors
  LoadOptions load;
  std::string type;               // empty: keep every tensor's type; else a tensor or file type
  bool pure = false;              // one type for every 2-D tensor (llama-quantize --pure)
  bool force = false;
  int threads = 1;
};

struct TensorConversion {
  std::string name;
  GgmlType from, to;
  std::string reason;             // why `to` differs from the requested type, if it does
};

struct ConvertReport {
  std::vector<TensorConversion> tensors;
  uint64_t input_bytes = 0, output_bytes = 0;
  double seconds = 0;
};

ConvertReport convert(const ConvertOptions& options);

}  // namespace dcq
