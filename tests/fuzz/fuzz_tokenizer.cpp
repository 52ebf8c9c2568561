// Fuzz target: tokenizers built from untrusted GGUF metadata, run on untrusted text.
// Input layout: u16 little-endian text length, the text, then a GGUF file (usually holding only
// tokenizer.ggml.* keys). Bad metadata must be rejected with dcq::Error; any accepted
// vocabulary must tokenize any byte string without crashing and yield only in-range ids.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t text_len = std::min<size_t>(data[0] | (data[1] << 8), size - 2);
  const std::string_view text(reinterpret_cast<const char*>(data + 2), text_len);
  const std::span<const uint8_t> file(data + 2 + text_len, size - 2 - text_len);
  try {
    const dcq::Model model = dcq::parse_gguf(file, "fuzz.gguf");
    const dcq::Tokenizer tok = dcq::Tokenizer::from_model(model);
    for (int flags = 0; flags < 4; ++flags) {
      const auto ids = tok.encode(text, flags & 1, flags & 2);
      for (int32_t id : ids)
        if (id < 0 || id >= tok.n_vocab()) std::abort();  // an id the model cannot embed
      volatile size_t sink = tok.decode(ids).size();
      (void)sink;
    }
    for (int32_t id = -1; id <= tok.n_vocab(); ++id) (void)tok.decode(id);
  } catch (const dcq::Error&) {
  }
  return 0;
}
