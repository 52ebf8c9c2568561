#include "dcq/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "dcq/error.hpp"
#include "dcq/file.hpp"

namespace dcq {

double negative_log_likelihood(const float* logits, int n_vocab, int tok) {
  float max = logits[0];
  for (int i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);
  return -(double(logits[tok] - max) - std::log(sum));
}

namespace {
constexpr char kMagic[8] = {'D', 'C', 'Q', 'L', 'O', 'G', 'P', '1'};

// log_softmax of a row (double sums, like negative_log_likelihood).
void log_softmax(const float* logits, int n, std::vector<float>& out) {
  out.resize(size_t(n));
  float max = logits[0];
  for (int i = 1; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(logits[i] - max);
  const double lse = std::log(sum);
  for (int i = 0; i < n; ++i) out[size_t(i)] = static_cast<float>(double(logits[i] - max) - lse);
}
}  // namespace

BaseLogProbs BaseLogProbs::open(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  const auto b = file->bytes();
  auto bad = [&](const std::string& why) { fail_input(path.string() + ": " + why); };
  if (b.size() < 20 || std::memcmp(b.data(), kMagic, 8) != 0) bad("not a dcq log-probability file");
  uint32_t h[3];
  std::memcpy(h, b.data() + 8, 12);
  if (h[0] == 0 || h[0] > (1u << 24) || h[1] < 4 || h[1] > (1u << 24) || h[2] == 0 || h[2] > (1u << 24))
    bad("implausible header");
  const uint64_t n_tok = uint64_t(h[1]) * h[2];
  const uint64_t scored = uint64_t(h[2]) * (h[1] - 1 - h[1] / 2);
  const uint64_t need = 20 + n_tok * 4 + scored * h[0] * 4;
  if (b.size() != need) bad("size " + std::to_string(b.size()) + " does not match its header (" + std::to_string(need) + ")");
  BaseLogProbs r;
  r.path_ = path;
  r.n_vocab_ = int(h[0]);
  r.n_ctx_ = int(h[1]);
  r.n_chunks_ = int(h[2]);
  r.tokens_ = {reinterpret_cast<const int32_t*>(b.data() + 20), size_t(n_tok)};
  r.logp_ = b.data() + 20 + n_tok * 4;
  r.keep_ = file;
  return r;
}

std::span<const float> BaseLogProbs::at(int64_t i) const {
  return {reinterpret_cast<const float*>(logp_) + size_t(i) * size_t(n_vocab_), size_t(n_vocab_)};
}

PerplexityResult perplexity(Engine& engine, std::span<const int32_t> tokens, const PerplexityOptions& o) {
  const int n_ctx = o.n_ctx > 0 ? o.n_ctx : engine.n_ctx();
  if (n_ctx < 4) fail_usage("perplexity: context of " + std::to_string(n_ctx) + " tokens is too small");
  if (n_ctx > engine.n_ctx()) fail_usage("perplexity: chunk longer than the engine's context");
  const int64_t available = int64_t(tokens.size()) / n_ctx;
  if (available < 1)
    fail_input("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
               std::to_string(n_ctx));
  const int n_chunks = int(o.max_chunks > 0 ? std::min<int64_t>(o.max_chunks, available) : available);
  const int first = n_ctx / 2;
  const int n_vocab = engine.config().n_vocab;

  if (o.kl_base) {
    const BaseLogProbs& kb = *o.kl_base;
    if (kb.n_vocab() != n_vocab || kb.n_ctx() != n_ctx || kb.n_chunks() < n_chunks)
      fail_input(kb.path().string() + ": made with a different vocabulary, context or fewer chunks");
    for (int64_t i = 0; i < int64_t(n_chunks) * n_ctx; ++i)
      if (kb.tokens()[size_t(i)] != tokens[size_t(i)] && i % n_ctx != 0)
        fail_input(kb.path().string() + ": made from a different text (token " + std::to_string(i) + " differs)");
  }
  std::unique_ptr<AtomicFile> save;
  if (!o.save_logprobs.empty()) {
    save = std::make_unique<AtomicFile>(o.save_logprobs, /*force=*/true);
    save->write(kMagic, 8);
    const uint32_t h[3] = {uint32_t(n_vocab), uint32_t(n_ctx), uint32_t(n_chunks)};
    save->write(h, 12);
    save->write(tokens.data(), size_t(n_chunks) * n_ctx * 4);
  }
  std::vector<float> logp;
  double kld = 0, kld2 = 0;
  int64_t same = 0, pos_index = 0;

  PerplexityResult r;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (int c = 0; c < n_chunks; ++c) {
    std::copy_n(tokens.begin() + int64_t(c) * n_ctx, n_ctx, chunk.begin());
    if (o.bos >= 0) chunk[0] = o.bos;
    engine.reset();
    const auto logits = engine.eval(chunk, /*all_logits=*/true);
    double chunk_nll = 0;
    // The logits at position j predict token j + 1; score positions first .. n_ctx - 2.
    for (int j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + size_t(j) * n_vocab;
      const double v = negative_log_likelihood(row, n_vocab, chunk[size_t(j) + 1]);
      if (save || o.kl_base) log_softmax(row, n_vocab, logp);
      if (save) save->write(logp.data(), logp.size() * 4);
      if (o.kl_base) {
        const auto base = o.kl_base->at(pos_index);
        double k = 0;
        size_t top_base = 0, top = 0;
        for (size_t i = 0; i < size_t(n_vocab); ++i) {
          k += std::exp(double(base[i])) * (double(base[i]) - double(logp[i]));
          if (base[i] > base[top_base]) top_base = i;
          if (logp[i] > logp[top]) top = i;
        }
        kld += k;
        kld2 += k * k;
        same += top == top_base;
      }
      ++pos_index;
      nll += v;
      nll2 += v * v;
      chunk_nll += v;
    }
    count += n_ctx - 1 - first;
    r.chunk_mean_nll.push_back(chunk_nll / double(n_ctx - 1 - first));
    if (o.progress) o.progress(c + 1, std::exp(nll / double(count)));
  }
  r.n_chunks = n_chunks;
  r.n_scored = count;
  const double mean = nll / double(count);
  r.mean_nll = mean;
  r.ppl = std::exp(mean);
  const double var = nll2 / double(count) - mean * mean;
  r.ppl_err = (var > 0 && count > 1) ? r.ppl * std::sqrt(var / double(count - 1)) : 0;
  if (o.kl_base) {
    r.kld_mean = kld / double(count);
    const double kv = kld2 / double(count) - r.kld_mean * r.kld_mean;
    r.kld_err = (kv > 0 && count > 1) ? std::sqrt(kv / double(count - 1)) : 0;
    r.same_top = double(same) / double(count);
  }
  if (save) save->commit();
  return r;
}

}  // namespace dcq
