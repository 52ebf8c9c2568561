// Benchmarks that back the performance claims of docs/benchmarks.md.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace dcq {

struct QuantBenchOptions {
  std::filesystem::path model;        // source weights (any type dcq can dequantize; F32 best)
  std::vector<std::string> types;     // tensor types to measure
  int threads = 1;
  int repeats = 3;                    // best of
};

struct QuantBenchRow {
  std::string type;
  double quantize_seconds = 0;        // all 2-D tensors, `threads` threads
  double quantize_mparams_per_s = 0;  // million weights per second
  double dequantize_gb_per_s = 0;     // float output bytes per second, one thread
  uint64_t parameters = 0, bytes = 0;
};

// Quantizes every 2-D tensor of the model to each type (threads as given, timing only the
// conversion, not I/O), then dequantizes the result on one thread.
std::vector<QuantBenchRow> bench_quant(const QuantBenchOptions& options);

}  // namespace dcq

#include <nlohmann/json.hpp>

namespace dcq {

// `dcq bench sweep`: compression ratio against perplexity. Every configuration of the grid (and
// llama.cpp-compatible baselines made by dcq's own quantizers, plain and losslessly compressed)
// is built into out_dir/points/, measured (file bytes, perplexity on the evaluation text, KL
// divergence from the source model) and recorded in out_dir/points/<name>.json; a point whose
// record exists with the same settings is not recomputed (resumable). Then results.json,
// results.csv and plot.svg (bytes against perplexity, Pareto front drawn and labelled).
struct SweepOptions {
  std::filesystem::path model;     // source (F32 best)
  std::filesystem::path calib;     // calibration text
  std::filesystem::path eval;      // evaluation text (keep it apart from the calibration text)
  std::filesystem::path configs;   // JSON array of lossy settings; empty: the built-in grid
  std::filesystem::path out_dir;
  std::vector<std::string> baselines = {"Q8_0", "Q5_1", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0"};
  int n_ctx = 256;                 // perplexity chunk length
  int max_chunks = 0;              // 0: every whole chunk of the evaluation text
  int calib_tokens = 16384;
  int threads = 1;
};
nlohmann::json bench_sweep(const SweepOptions& options);

}  // namespace dcq
