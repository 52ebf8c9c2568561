// Fuzz target: the llama2.c checkpoint and tokenizer parsers must reject any malformed input with
// dcq::Error, never crash, never read out of bounds, never allocate from a forged count.
#include <cstdint>
#include <span>

#include "dcq/error.hpp"
#include "dcq/llama2c.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  volatile uint8_t sink = 0;
  try {
    const dcq::Model m = dcq::parse_llama2c_model(bytes, "fuzz.bin", nullptr);
    for (const auto& t : m.tensors)
      for (uint8_t b : t.data) sink = sink ^ b;
  } catch (const dcq::Error&) {
  }
  try {
    // The same bytes as a tokenizer; the vocabulary size varies with the input length.
    const auto toks = dcq::parse_llama2c_tokenizer(bytes, static_cast<int32_t>(3 + size % 6), "fuzz-tok.bin");
    for (const auto& t : toks)
      for (char c : t.text) sink = sink ^ static_cast<uint8_t>(c);
  } catch (const dcq::Error&) {
  }
  return 0;
}
