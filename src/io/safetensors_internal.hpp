// Pieces of the safetensors reader shared with its writer, tests and fuzz target.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/model.hpp"
#include "dcq/safetensors.hpp"

namespace dcq::io {

// Hyper-parameters of a Hugging Face llama config.json, validated.
struct HfConfig {
  int64_t hidden = 0;      // hidden_size
  int64_t n_ff = 0;        // intermediate_size
  int64_t n_layer = 0;     // num_hidden_layers
  int64_t n_head = 0;      // num_attention_heads
  int64_t n_head_kv = 0;   // num_key_value_heads (default n_head)
  int64_t head_dim = 0;    // head_dim (default hidden / n_head)
  int64_t vocab = 0;       // vocab_size, 0 when absent
  int64_t n_ctx = 0;       // max_position_embeddings, 0 when absent
  double rms_eps = 1e-6;   // rms_norm_eps (transformers' LlamaConfig default)
  double rope_theta = 10000.0;
  bool has_rope_theta = false;
  bool has_head_dim = false;
};

// Parses config.json text; `source` names it in errors. Throws Error(bad_input).
HfConfig parse_hf_config(std::string_view json_text, const std::string& source);

struct SourcedTensor {
  SafetensorsTensor tensor;
  std::string file;  // the shard it came from, for error messages
};

// Renames, checks (shapes against the config, completeness), permutes q/k and orders the tensors
// as llama.cpp does; adds the llama.* metadata. `name` becomes general.name. The tensor data must
// outlive the model (the caller keeps the mappings with Model::keep).
Model hf_llama_to_model(const std::vector<SourcedTensor>& tensors, const HfConfig& config,
                        const std::string& config_source, const std::string& name);

}  // namespace dcq::io
