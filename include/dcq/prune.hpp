// Structured pruning: remove whole transformer blocks, or their attention / FFN halves, chosen by
// a search over binary masks (EvoP's evolutionary search, ShortGPT's block influence, SLEB's
// greedy removal, random, exhaustive). The residual connections make a removed unit the identity,
// so a pruned model is the same network with some branches gone. docs/pruning.md has the method,
// the decisions and the measurements.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/engine.hpp"
#include "dcq/model.hpp"
#include "dcq/weights.hpp"

namespace dcq {

enum class PruneUnits { blocks, sublayers };
enum class PruneMethod { evop, shortgpt, sleb, random, exhaustive };
enum class CalibSampling { ccds, random };

std::string_view units_name(PruneUnits u);
std::string_view method_name(PruneMethod m);
// Throws Error(usage) on an unknown name.
PruneUnits parse_units(std::string_view s);
PruneMethod parse_method(std::string_view s);
CalibSampling parse_sampling(std::string_view s);

// One flag per unit, 1 = removed. Blocks: unit l is layer l. Sub-layers: unit 2l is layer l's
// attention, 2l + 1 its FFN (the numbering of ActivationObserver::observe_residual).
using UnitMask = std::vector<uint8_t>;

int unit_count(PruneUnits units, int n_layer);
// Per-layer engine skips for a mask (EngineOptions::skip_attn / skip_ffn).
void mask_to_skips(PruneUnits units, const UnitMask& mask, std::vector<uint8_t>& skip_attn,
                   std::vector<uint8_t>& skip_ffn);
// "blk.3", "blk.3.attn", "blk.3.ffn": how reports name a unit.
std::string unit_name(PruneUnits units, int unit);

// --sparsity: a count of units (an integer >= 1) or a fraction of them (0 < s < 1, rounded to the
// nearest count). Throws Error(usage) on a negative or non-integral count >= 1, Error(bad_input)
// naming `source` when the count removes no unit or every unit of this model.
int sparsity_count(double sparsity, int n_units, const std::string& source);

// ---- Calibration set: CCDS (cluster-then-draw) or plain random sampling ----

struct CalibOptions {
  int n_samples = 32;      // samples in the calibration set
  int sample_tokens = 128; // tokens per sample (the first is BOS)
  int clusters = 4;        // k of k-means (clamped to the number of candidate windows)
  CalibSampling sampling = CalibSampling::ccds;
  uint64_t seed = 0;
  int max_candidates = 4096;  // windows embedded at most (evenly spaced over the text)
};

struct CalibSet {
  std::vector<std::vector<int32_t>> samples;  // n_samples windows of sample_tokens
  std::vector<int> window;                    // index of each sample's window in the text
  std::vector<int> cluster;                   // its cluster (CCDS; 0 for random sampling)
  int n_candidates = 0;                       // windows the text offered
  int n_clusters = 0;                         // k actually used (CCDS)
  std::vector<int> cluster_sizes;             // windows per cluster
};

// Cuts `tokens` into non-overlapping windows of sample_tokens (first token replaced by `bos` when
// >= 0) and draws n_samples of them. CCDS embeds each window (mean over its tokens of the final
// normalized hidden state, seen through the engine's observer), clusters the embeddings with
// k-means (k-means++ seeding from `seed`), and draws round-robin across clusters, in a seeded
// random order within each. Throws Error(bad_input) naming `source` when the text has fewer
// windows than samples.
CalibSet select_calibration(Engine& engine, std::span<const int32_t> tokens, int32_t bos, const CalibOptions& options,
                            const std::string& source);

// Deterministic k-means (k-means++ seeding from `seed`, then Lloyd's iterations until stable):
// `points` is n rows of `dim`. Returns the cluster of each point; clusters are never empty.
std::vector<int> kmeans(std::span<const float> points, int n, int dim, int k, uint64_t seed);

// ---- Fitness: mean NLL of the pruned model on the calibration set ----

// Evaluates masks on a fixed calibration set. The unpruned model's residual stream entering each
// sub-layer is recorded once per sample; a mask then runs from its first removed unit only
// (Engine::eval_from), and every distinct mask is evaluated once (memoized).
class PruneEvaluator {
 public:
  PruneEvaluator(WeightSource& weights, PruneUnits units, std::vector<std::vector<int32_t>> samples, int threads);
  ~PruneEvaluator();
  PruneEvaluator(const PruneEvaluator&) = delete;
  PruneEvaluator& operator=(const PruneEvaluator&) = delete;

  PruneUnits units() const { return units_; }
  int n_units() const { return n_units_; }
  int n_layer() const;
  // Mean NLL per scored token (every next-token prediction of every sample).
  double fitness(const UnitMask& mask);
  // Same, without the prefix reuse or the memo: the reference the tests compare against.
  double fitness_full(const UnitMask& mask);
  // ShortGPT's influence of each unit on the unpruned model: mean over tokens of
  // 1 - cos(residual entering the unit, residual leaving it).
  const std::vector<double>& influence() const { return influence_; }
  int64_t evaluations() const { return evaluations_; }  // masks actually run
  int64_t lookups() const { return lookups_; }          // fitness() calls

 private:
  struct Impl;
  PruneUnits units_;
  int n_units_ = 0;
  std::vector<double> influence_;
  int64_t evaluations_ = 0, lookups_ = 0;
  std::unique_ptr<Impl> impl_;
};

// ---- Search ----

struct SearchOptions {
  PruneMethod method = PruneMethod::evop;
  int sparsity = 1;         // units removed (a count; see sparsity_count)
  int population = 32;      // EvoP
  int generations = 20;     // EvoP
  uint64_t seed = 0;
  int64_t exhaustive_limit = 20000;  // masks; exhaustive refuses larger spaces (Error(usage))
};

struct GenerationStats {
  double best = 0, mean = 0;
};

struct SearchResult {
  UnitMask mask;
  double fitness = 0;                   // mean calibration NLL of the chosen mask
  std::vector<GenerationStats> history; // EvoP: per generation; SLEB: per removal step
  int64_t masks_evaluated = 0;          // distinct masks run
  double seconds = 0;
};

// C(n, k) as a double (no overflow).
double combinations(int n, int k);

// Runs the method on the evaluator; deterministic for a given seed. Throws Error(usage) when
// exhaustive search would exceed the limit.
SearchResult search_mask(PruneEvaluator& evaluator, const SearchOptions& options);

// ---- Output ----

// Writes `model` without the masked units as a GGUF both dcq and llama.cpp load. Blocks: their
// tensors are dropped, the remaining blocks renumbered and llama.block_count updated. Sub-layers:
// llama.cpp's format cannot omit half a block, so attn_output.weight / ffn_down.weight of a removed
// half are written as zeros (all-zero bytes decode to 0 in every ggml type, so the branch adds
// exactly nothing), and dcq.pruned.attn / dcq.pruned.ffn list the layers whose computation
// dcq's engine skips. Tensor types are kept. Throws Error(usage) if `path` exists and !force.
void write_pruned_gguf(const Model& model, PruneUnits units, const UnitMask& mask, const std::filesystem::path& path,
                       bool force);

}  // namespace dcq
