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
