// `dcq synth`: random-weight llama models for speed and scale tests. Weights are N(0, sigma)
// from a seeded generator (identical for any thread count), quantized on the fly and streamed to
// a GGUF, so memory stays bounded by a few rows per thread whatever the model size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace dcq {

struct SynthShape {
  int64_t dim = 256, ffn = 512, layers = 2, heads = 4, kv_heads = 2, vocab = 512, context = 2048;
  bool tied_output = false;  // false: a separate output.weight
};

struct SynthOptions {
  std::string preset;           // "synth256", "stories110M", "1B", "7B", or empty for `shape`
  SynthShape shape;
  std::string type = "F32";     // a tensor type or a llama.cpp file type such as Q4_K_M
  uint64_t seed = 42;
  float sigma = 0.02f;
  std::filesystem::path output;
  bool force = false;
  int threads = 1;
};

struct SynthReport {
  SynthShape shape;
  uint64_t parameters = 0;
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// Known preset names, for --help and errors.
std::string synth_presets();
SynthShape synth_preset(const std::string& name);  // throws Error(usage) for an unknown name
SynthReport synth(const SynthOptions& options);

}  // namespace dcq
