// Internal entry points of the non-GGUF readers (see include/dcq/io.hpp for the public door).
#pragma once

#include <filesystem>

#include "dcq/io.hpp"
#include "dcq/model.hpp"

namespace dcq::io {

// safetensors file or Hugging Face folder (single or sharded) -> GGUF-named llama model.
Model read_safetensors_model(const std::filesystem::path& path, const LoadOptions& options);
// llama2.c checkpoint (+ tok*.bin) -> GGUF-named llama model, as llama.cpp's converter makes it.
Model read_llama2c_model(const std::filesystem::path& path, const LoadOptions& options);

}  // namespace dcq::io
