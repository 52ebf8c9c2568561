// GGUF v2/v3 reading and writing (the format of ggml's gguf.cpp / docs/gguf.md).
//
// Reading validates before trusting: magic and version, every count against the bytes left,
// every string and array length, duplicate keys and tensor names, tensor types, dimension
// products (no overflow), row widths against block sizes, alignment, and every tensor's byte
// range against the file size. Any violation throws Error(bad_input) with a one-line message
// naming the file, the field and the offending value. Metadata is parsed eagerly; tensor data
// stays in the memory map (opening a GGUF reads metadata only).
//
// Writing uses ggml's canonical layout (tensor data in info order, each tensor padded to the
// alignment with zeros), so a file written by llama.cpp is reproduced byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "dcq/file.hpp"
#include "dcq/model.hpp"

namespace dcq {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;

// Reads a GGUF file (mmapped). Throws Error(bad_input).
Model read_gguf(const std::filesystem::path& path);
// Parses GGUF bytes that the caller keeps alive for as long as the returned model (fuzzing, tests).
Model parse_gguf(std::span<const uint8_t> bytes, const std::string& source_name);
// Metadata and tensor infos only (tensor data spans stay empty): for a GGUF header whose data
// lives elsewhere, such as the header a .dcq container keeps in its extras blob.
Model parse_gguf_header(std::span<const uint8_t> bytes, const std::string& source_name);
// True when the bytes start with the GGUF magic.
bool looks_like_gguf(std::span<const uint8_t> head);

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
};

// Streaming GGUF writer: declare metadata and tensors, then stream each tensor's bytes in order
// (in as many pieces as wanted); padding is inserted automatically. Memory stays bounded by the
// header, whatever the model size.
class GgufWriter {
 public:
  GgufWriter(const std::filesystem::path& path, bool force, const std::vector<GgufKV>& metadata,
             std::vector<GgufTensorInfo> tensors, uint32_t version = 3);
  void write(std::span<const uint8_t> bytes);  // the next bytes of the current tensor
  void commit();                               // checks every tensor was complete, renames

 private:
  AtomicFile out_;
  std::vector<GgufTensorInfo> tensors_;
  std::vector<uint64_t> sizes_;
  uint64_t alignment_;
  size_t current_ = 0;
  uint64_t written_in_current_ = 0;
};

// Alignment a metadata list asks for (general.alignment, default 32). Throws on a bad value.
uint64_t gguf_alignment(const std::vector<GgufKV>& metadata, const std::string& source);
// The header (magic .. tensor infos .. padding to the data section) for a canonical layout.
std::vector<uint8_t> gguf_header_bytes(const std::vector<GgufKV>& metadata,
                                       const std::vector<GgufTensorInfo>& tensors, uint32_t version);

void write_gguf(const Model& model, const std::filesystem::path& path, bool force);

}  // namespace dcq
