// GPT-2 style byte-level BPE (work in progress).
#include "dcq/error.hpp"
#include "runtime/tokenizer_impl.hpp"

namespace dcq::tok {

void bpe_tokenize(const Vocab&, const BpeRanks&, const BpeOptions&, std::string_view, std::vector<int32_t>&) {
  fail_input("BPE tokenization is not implemented yet");
}

}  // namespace dcq::tok
