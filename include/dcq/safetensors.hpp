// safetensors files and Hugging Face llama folders.
//
// The file format (https://github.com/huggingface/safetensors): a little-endian u64 N, then N
// bytes of UTF-8 JSON (possibly padded with spaces), then the data section. The JSON maps each
// tensor name to {"dtype", "shape" (row-major, outermost first), "data_offsets": [begin, end]}
// relative to the data section, plus an optional "__metadata__" object of string -> string.
//
// Reading validates before trusting: N against the file size (and a 100 MiB cap), the JSON
// syntax, duplicate names, every dtype, every shape (non-negative integers, element count and
// byte size without overflow), every data_offsets pair (begin <= end <= data size, end - begin
// == elements * dtype size) and that no two tensors overlap. Only F32, F16 and BF16 are
// supported; any other dtype is rejected naming the dtype and the tensor. Every failure throws
// Error(bad_input) with a one-line message naming the file.
//
// A Hugging Face llama folder (config.json + model.safetensors, or model.safetensors.index.json
// + shards) becomes a GGUF-named Model exactly as llama.cpp's convert_hf_to_gguf.py names,
// orders and permutes it (see src/io/hf_names.hpp); types are kept as stored (F32/F16/BF16).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dcq/ggml_type.hpp"
#include "dcq/io.hpp"
#include "dcq/model.hpp"

namespace dcq {

inline constexpr uint64_t kSafetensorsMaxHeader = 100ull << 20;  // as the reference library

// Metadata keys under which a safetensors "__metadata__" entry is kept in a Model
// ("safetensors.metadata.format" = "pt"); the writer puts them back into "__metadata__".
inline constexpr std::string_view kSafetensorsMetadataPrefix = "safetensors.metadata.";

struct SafetensorsTensor {
  std::string name;
  GgmlType type = GgmlType::F32;     // F32, F16 or BF16
  std::vector<int64_t> shape;        // as stored: row-major, outermost dimension first
  std::span<const uint8_t> data;     // into the bytes given to parse_safetensors
};

struct SafetensorsFile {
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in file order
  std::vector<SafetensorsTensor> tensors;                      // in header order
};

// Parses and validates one safetensors file held in `bytes` (kept alive by the caller);
// `source` names it in error messages. Throws Error(bad_input).
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);

// Reads a Hugging Face llama checkpoint as a GGUF-named Model. `path` is a folder (holding
// model.safetensors.index.json + shards, or model.safetensors), an index file, or a single
// .safetensors file; config.json is read from the same folder. Tensor data stays in the memory
// maps except for q/k, which are permuted into new buffers. Hyper-parameters become llama.cpp's
// GGUF keys (llama.block_count, llama.context_length = max_position_embeddings, ...).
// Vocabulary: all tokenizer.* keys of the GGUF options.vocab_from; without it the model has no
// tokenizer (logged). Throws Error(bad_input) naming the file at fault.
Model read_safetensors_model(const std::filesystem::path& path, const LoadOptions& options = {});

// Writes `model` (GGUF-named llama tensors of type F32, F16 or BF16) as a Hugging Face
// checkpoint: `file` (a .safetensors file, written atomically) with Hugging Face names and the
// q/k rows permuted back, and config.json beside it built from the llama.* metadata. Quantized
// tensors are refused (Error bad_input naming the tensor: dequantize them first), as are tensors
// without a Hugging Face llama name. Refuses to replace existing files unless `force`.
void write_safetensors_model(const Model& model, const std::filesystem::path& file, bool force);

}  // namespace dcq
