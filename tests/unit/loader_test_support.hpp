// Shared by the loader tests (loader_test.cpp, loader_zero_copy_test.cpp).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "dcq/engine.hpp"
#include "dcq/model.hpp"
#include "dcq/sampler.hpp"
#include "dcq/tokenizer.hpp"
#include "dcq/weights.hpp"

namespace dcq::test {

// Greedy continuation of "Once upon a time" (token ids, prompt excluded), on `threads` compute
// threads: the tokens a `dcq run --temp 0` would print.
inline std::vector<int32_t> greedy(WeightSource& w, const Model& meta, int n, int threads = 1) {
  const Tokenizer tok = Tokenizer::from_model(meta);
  Engine e(w, {0, threads});
  std::vector<int32_t> ids = tok.encode("Once upon a time", true);
  auto logits = e.eval(ids);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t next = argmax(logits);
    out.push_back(next);
    logits = e.eval(std::span<const int32_t>(&next, 1));
  }
  return out;
}

}  // namespace dcq::test
