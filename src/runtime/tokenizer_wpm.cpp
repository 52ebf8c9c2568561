// WordPiece (work in progress).
#include "dcq/error.hpp"
#include "runtime/tokenizer_impl.hpp"

namespace dcq::tok {

void wpm_tokenize(const Vocab&, int32_t, std::string_view, bool, bool, std::vector<int32_t>&) {
  fail_input("WordPiece tokenization is not implemented yet");
}

}  // namespace dcq::tok
