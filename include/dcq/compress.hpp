// Lossless second compression: `dcq compress --lossless`, `decompress`, `verify`, `analyze`, and
// the .dcq part of `inspect`. Options in, JSON report out; failures throw dcq::Error.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace dcq {

struct CompressOptions {
  std::filesystem::path input;   // GGUF or a single .safetensors file
  std::filesystem::path output;  // .dcq
  bool force = false;
  int level = 19;                          // zstd level of zstd candidates and of the blobs (1..22)
  uint64_t chunk_size = 256 * 1024;        // target decoded bytes per chunk (whole rows)
  double min_decode_speed_gbps = 1.0;      // modelled floor per chunk >= 64 KiB, GB/s on one core; 0: none
  int threads = 1;
};
// Report: {"input","output","input_bytes","output_bytes","ratio","tensors","chunks",
// "duplicates","seconds","codecs":{name: chunks},"transforms":{name: chunks}}.
nlohmann::json compress(const CompressOptions& options);

struct DecompressOptions {
  std::filesystem::path input;   // .dcq
  std::filesystem::path output;  // rebuilt source, byte for byte
  bool force = false;
  int threads = 1;
};
// Throws Error(integrity) (exit 4) on any checksum mismatch; the output then does not appear.
nlohmann::json decompress(const DecompressOptions& options);

struct VerifyOptions {
  std::filesystem::path input;
  int threads = 1;
};
// Decodes everything and checks every checksum, including the rebuilt source's. Throws
// Error(integrity) naming the tensor and chunk. Report includes decode seconds and GB/s.
nlohmann::json verify(const VerifyOptions& options);

struct AnalyzeOptions {
  std::filesystem::path input;  // GGUF (or .dcq: its chunks are decoded first)
  int level = 19;
  int threads = 1;
  int repeat = 3;               // decode timing repetitions (best of)
};
// Per tensor and total: type, bytes, per stream order-0/order-1 entropy and bits per symbol
// achieved by each codec, the chosen encoding, and measured decode GB/s.
nlohmann::json analyze(const AnalyzeOptions& options);

// The .dcq part of `dcq inspect`: header, pipeline metadata, tensors with their chunks' codecs
// and stored sizes. Checks header, footer, index and every stored checksum (exit 4 if corrupt).
nlohmann::json inspect_dcq(const std::filesystem::path& path);

}  // namespace dcq
