// Fuzz target: the safetensors parser, then the Hugging Face llama conversion (names, shapes
// against a fixed tiny config, q/k permutation), must reject any malformed input with
// dcq::Error, never crash, never read out of bounds, never allocate from a forged size.
#include <cstdint>
#include <span>

#include "dcq/error.hpp"
#include "dcq/safetensors.hpp"
#include "io/safetensors_internal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = dcq::parse_safetensors(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors)
      for (uint8_t b : t.data) sink = sink ^ b;
    // A llama of hidden 4, FFN 6, 1 layer, 2 heads of 2, 1 KV head, vocab 3 (corpus file
    // tiny-llama.safetensors matches it, so the conversion runs to the end).
    dcq::io::HfConfig c;
    c.hidden = 4, c.n_ff = 6, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1, c.head_dim = 2, c.vocab = 3;
    std::vector<dcq::io::SourcedTensor> ts;
    for (const auto& t : file.tensors) ts.push_back({t, "fuzz.safetensors"});
    const dcq::Model m = dcq::io::hf_llama_to_model(ts, c, "fuzz-config.json", "fuzz");
    for (const auto& t : m.tensors)
      for (uint8_t b : t.data) sink = sink ^ b;
  } catch (const dcq::Error&) {
  }
  return 0;
}
