// Lossless second compression: `dcq compress --lossless`, `decompress`, `verify`, `analyze`, and
// the .dcq part of `inspect`. Options in, JSON report out; failures throw dcq::Error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dcq {

struct CompressOptions {
  std::filesystem::path input;   // GGUF or a single .safetensors file
  std::filesystem::path output;  // .dcq
  bool force = false;
  int level = 19;                          // zstd level of zstd candidates and of the blobs (1..22)
  uint64_t chunk_size = 256 * 1024;        // target decoded bytes per chunk (whole rows)
  double min_decode_speed_gbps = 1.5;      // modelled floor per chunk >= 64 KiB, GB/s on one core, checksums included; 0: none
  int threads = 1;
  // Set by the lossy pipeline, which compresses a GGUF it made: recorded in the metadata blob
  // ("source" names `source_name`; "pipeline"."stages" gets these stages before "lossless",
  // and "pipeline"."lossy" the settings).
  std::string source_name;
  std::vector<std::string> stages;
  nlohmann::json lossy;
};
// Report: {"input","output","input_bytes","output_bytes","ratio","tensors","chunks",
// "duplicates","seconds","codecs":{name: chunks},"transforms":{name: chunks}}.
nlohmann::json compress(const CompressOptions& options);

// `dcq compress` without --lossless: the double compression of docs/lossy.md. Calibrates,
// prunes, rescales and quantizes the input (any model dcq reads), then stores the result in a
// .dcq through compress(). The .dcq's embedded model is a GGUF whose quantized weights are I8
// codes plus F32 scale tensors (or llama.cpp block types with a GGUF --quant type).
struct LossyOptions {
  CompressOptions container;        // input, output, force, level, chunk size, threads
  std::filesystem::path calib;      // calibration text (UTF-8)
  int calib_tokens = 16384;         // tokens of it used
  int calib_ctx = 256;              // chunk length of the calibration passes
  std::string rescale = "none";     // none | smooth | entropy
  double alpha = 0.5;
  double lambda = 1.0;
  std::string quant = "int8";       // int8 | int2..int8 | ecsq | a GGUF tensor or file type
  int64_t group = 0;                // intK: elements per scale; 0 = per output channel
  double target_bpw = 4.0;          // ecsq
  double prune = 0.0;               // share of each per-block linear layer set to zero, [0, 1)
  std::string prune_by = "magnitude";  // magnitude | linf | wanda
  std::filesystem::path report;     // optional JSON report file
  bool baselines = true;            // report: also measure the lossless-only container of the input
};
// Report: the compress() report plus "lossy": settings, per tensor {name, quant, bits (entropy),
// step, rel_error, zeros, stored_bytes}, and totals {params, quantized_params, entropy_bpw,
// ratio_vs_source, int8_bytes, ratio_vs_int8, lossless_only_bytes, ratio_vs_lossless_only}.
nlohmann::json compress_lossy(const LossyOptions& options);

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
