// Fuzz target: the GGUF parser must reject any malformed input with dcq::Error, never crash,
// never read out of bounds, never allocate from a forged count; a GGUF it accepts must also make
// a sound bare-chunk view (DcqReader::parse_gguf_view).
#include <cstdint>
#include <span>

#include "dcq/container.hpp"
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
    // The same bytes seen as a container of bare chunks (dcq run X.gguf --mem-budget): every
    // chunk and the header blob lie within the bytes.
    const auto view = dcq::DcqReader::parse_gguf_view(std::span<const uint8_t>(data, size), "fuzz.gguf", 256);
    for (const auto& c : view.index().chunks)
      if (c.offset > size || c.stored_size > size - c.offset) __builtin_trap();
    (void)view.read_blob(view.index().extras, "extras");
  } catch (const dcq::Error&) {
  }
  return 0;
}
