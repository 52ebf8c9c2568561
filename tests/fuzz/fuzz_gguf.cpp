// Fuzz target: the GGUF parser must reject any malformed input with dcq::Error, never crash,
// never read out of bounds, never allocate from a forged count.
#include <cstdint>
#include <span>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const dcq::Model m = dcq::parse_gguf(std::span<const uint8_t>(data, size), "fuzz.gguf");
    // Touch every tensor byte the parser vouched for.
    volatile uint8_t sink = 0;
    for (const auto& t : m.tensors)
      for (uint8_t b : t.data) sink = sink ^ b;
  } catch (const dcq::Error&) {
  }
  return 0;
}
