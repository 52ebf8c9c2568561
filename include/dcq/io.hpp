// Opening any supported checkpoint as a Model, whatever its format.
#pragma once

#include <filesystem>

#include "dcq/model.hpp"

namespace dcq {

struct LoadOptions {
  std::filesystem::path vocab_from;  // GGUF whose tokenizer metadata completes a safetensors model
  std::filesystem::path tokenizer;   // llama2.c tokenizer (tok*.bin); default: tok*.bin beside it
};

// Detects the format from the bytes (GGUF magic, safetensors header) or, for a folder, from its
// contents, and reads it. Throws Error(bad_input) naming the path when it is none of them.
Model load_model(const std::filesystem::path& path, const LoadOptions& options = {});

// Which format `path` holds (without reading it all); throws Error(bad_input) if unknown.
ModelFormat detect_format(const std::filesystem::path& path);

}  // namespace dcq
