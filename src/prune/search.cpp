// Mask searches. All of them see the model only through PruneEvaluator (fitness = calibration
// NLL, lower is better) or its ShortGPT influence scores, and all are deterministic for a seed:
// ties are broken by mask order, and randomness comes from our own seeded generator.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>

#include "dcq/error.hpp"
#include "dcq/prune.hpp"
#include "prune/rng.hpp"

namespace dcq {
namespace {

using prune_detail::MaskLess;
using prune_detail::Rng;
const MaskLess mask_less{};

UnitMask random_mask(int n, int k, Rng& rng) {
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  UnitMask m(size_t(n), 0);
  for (int i = 0; i < k; ++i) {
    std::swap(idx[size_t(i)], idx[size_t(i + rng.below(n - i))]);
    m[size_t(idx[size_t(i)])] = 1;
  }
  return m;
}

// Brings a mask back to exactly k removed units by removing / restoring random units.
void repair(UnitMask& m, int k, Rng& rng) {
  auto count = [&] { return int(std::count(m.begin(), m.end(), uint8_t(1))); };
  for (int c = count(); c != k; c = count()) {
    std::vector<int> pool;  // units whose flip moves the count towards k
    for (size_t i = 0; i < m.size(); ++i)
      if ((c < k) == (m[i] == 0)) pool.push_back(int(i));
    m[size_t(pool[size_t(rng.below(int(pool.size())))])] ^= 1;
  }
}

// Swaps one removed unit for one kept unit (the sparsity stays).
void mutate(UnitMask& m, Rng& rng) {
  std::vector<int> on, off;
  for (size_t i = 0; i < m.size(); ++i) (m[i] ? on : off).push_back(int(i));
  if (on.empty() || off.empty()) return;
  m[size_t(on[size_t(rng.below(int(on.size())))])] = 0;
  m[size_t(off[size_t(rng.below(int(off.size())))])] = 1;
}

GenerationStats stats(const std::vector<double>& f) {
  GenerationStats g;
  g.best = *std::min_element(f.begin(), f.end());
  g.mean = std::accumulate(f.begin(), f.end(), 0.0) / double(f.size());
  return g;
}

// EPPS: a population of masks at the fixed sparsity. Each generation keeps its best eighth
// (elitism: the best fitness never gets worse), and fills the rest with children of two
// tournament-selected parents: uniform crossover, repair to the sparsity, then a swap mutation
// with probability `kMutation`, and again while the child is a mask this search has already
// evaluated (so the population keeps exploring instead of filling with copies; in a small space
// this drifts towards covering it).
SearchResult evop(PruneEvaluator& ev, const SearchOptions& o, Rng& rng) {
  constexpr double kMutation = 0.3;
  const int n = ev.n_units(), k = o.sparsity;
  const int P = std::max(2, o.population);
  const double space = combinations(n, k);
  std::vector<UnitMask> pop;
  std::set<UnitMask, MaskLess> seen;
  for (int tries = 0; int(pop.size()) < P; ++tries) {
    UnitMask m = random_mask(n, k, rng);
    // Distinct initial masks while the space allows it.
    if (seen.insert(m).second || double(seen.size()) >= space || tries > 20 * P) pop.push_back(std::move(m));
  }
  SearchResult r;
  r.fitness = INFINITY;
  for (int g = 0; g < std::max(1, o.generations); ++g) {
    std::vector<double> f(pop.size());
    for (size_t i = 0; i < pop.size(); ++i) f[i] = ev.fitness(pop[i]);
    r.history.push_back(stats(f));
    std::vector<size_t> order(pop.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return f[a] != f[b] ? f[a] < f[b] : mask_less(pop[a], pop[b]);
    });
    if (f[order[0]] < r.fitness || (f[order[0]] == r.fitness && mask_less(pop[order[0]], r.mask))) {
      r.fitness = f[order[0]];
      r.mask = pop[order[0]];
    }
    if (g + 1 >= o.generations) break;
    auto tournament = [&] {
      size_t best = size_t(rng.below(int(pop.size())));
      for (int t = 1; t < 3; ++t) {
        const size_t c = size_t(rng.below(int(pop.size())));
        if (f[c] < f[best] || (f[c] == f[best] && mask_less(pop[c], pop[best]))) best = c;
      }
      return best;
    };
    std::vector<UnitMask> next;
    std::set<UnitMask, MaskLess> in_next;
    for (int e = 0; e < std::max(1, P / 8); ++e) {
      next.push_back(pop[order[size_t(e)]]);
      in_next.insert(next.back());
    }
    while (int(next.size()) < P) {
      const UnitMask& a = pop[tournament()];
      const UnitMask& b = pop[tournament()];
      UnitMask child(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) child[size_t(i)] = (rng.next() & 1) ? a[size_t(i)] : b[size_t(i)];
      repair(child, k, rng);
      if (rng.uniform() < kMutation) mutate(child, rng);
      // A mask already evaluated in this search teaches nothing new (elitism keeps the good
      // ones): mutate it further, a bounded number of times, while unseen masks remain.
      for (int t = 0; t < 8 && (seen.count(child) || in_next.count(child)) && double(seen.size()) < space; ++t)
        mutate(child, rng);
      in_next.insert(child);
      seen.insert(child);
      next.push_back(std::move(child));
    }
    pop = std::move(next);
  }
  return r;
}

// SLEB: remove one unit at a time, each time the one whose removal hurts the calibration loss
// least given the units already removed.
SearchResult sleb(PruneEvaluator& ev, const SearchOptions& o) {
  const int n = ev.n_units();
  SearchResult r;
  r.mask.assign(size_t(n), 0);
  for (int step = 0; step < o.sparsity; ++step) {
    int best = -1;
    double bf = INFINITY;
    std::vector<double> f;
    for (int u = 0; u < n; ++u) {
      if (r.mask[size_t(u)]) continue;
      UnitMask m = r.mask;
      m[size_t(u)] = 1;
      f.push_back(ev.fitness(m));
      if (f.back() < bf) { bf = f.back(); best = u; }
    }
    r.mask[size_t(best)] = 1;
    r.fitness = bf;
    r.history.push_back(stats(f));
  }
  return r;
}

// ShortGPT: remove the units whose output is most similar to their input (lowest influence),
// scored once on the unpruned model.
SearchResult shortgpt(PruneEvaluator& ev, const SearchOptions& o) {
  const auto& infl = ev.influence();
  std::vector<int> order(infl.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return infl[size_t(a)] < infl[size_t(b)]; });
  SearchResult r;
  r.mask.assign(infl.size(), 0);
  for (int i = 0; i < o.sparsity; ++i) r.mask[size_t(order[size_t(i)])] = 1;
  r.fitness = ev.fitness(r.mask);
  return r;
}

// Every mask with the requested sparsity, in lexicographic order of the removed units.
SearchResult exhaustive(PruneEvaluator& ev, const SearchOptions& o) {
  const int n = ev.n_units(), k = o.sparsity;
  const double space = combinations(n, k);
  if (space > double(o.exhaustive_limit))
    fail_usage("exhaustive search over " + std::to_string(int64_t(std::min(space, 9e18))) + " masks exceeds the limit of " +
               std::to_string(o.exhaustive_limit) + " (use --method evop)");
  std::vector<int> pick(static_cast<size_t>(k));
  std::iota(pick.begin(), pick.end(), 0);
  SearchResult r;
  r.fitness = INFINITY;
  while (true) {
    UnitMask m(size_t(n), 0);
    for (int p : pick) m[size_t(p)] = 1;
    const double f = ev.fitness(m);
    if (f < r.fitness) {
      r.fitness = f;
      r.mask = m;
    }
    int i = k - 1;
    while (i >= 0 && pick[size_t(i)] == n - k + i) --i;
    if (i < 0) break;
    ++pick[size_t(i)];
    for (int j = i + 1; j < k; ++j) pick[size_t(j)] = pick[size_t(j - 1)] + 1;
  }
  return r;
}

}  // namespace

double combinations(int n, int k) {
  if (k < 0 || k > n) return 0;
  double c = 1;
  for (int i = 1; i <= k; ++i) c = c * double(n - k + i) / double(i);
  return std::round(c);
}

SearchResult search_mask(PruneEvaluator& ev, const SearchOptions& o) {
  if (o.sparsity < 1 || o.sparsity >= ev.n_units())
    fail_usage("sparsity " + std::to_string(o.sparsity) + " is outside 1.." + std::to_string(ev.n_units() - 1));
  if (o.method == PruneMethod::evop && (o.population < 2 || o.generations < 1))
    fail_usage("evop needs --population >= 2 and --generations >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t evals0 = ev.evaluations();
  Rng rng(o.seed);
  SearchResult r;
  switch (o.method) {
    case PruneMethod::evop: r = evop(ev, o, rng); break;
    case PruneMethod::sleb: r = sleb(ev, o); break;
    case PruneMethod::shortgpt: r = shortgpt(ev, o); break;
    case PruneMethod::exhaustive: r = exhaustive(ev, o); break;
    case PruneMethod::random:
      r.mask = random_mask(ev.n_units(), o.sparsity, rng);
      r.fitness = ev.fitness(r.mask);
      break;
  }
  r.masks_evaluated = ev.evaluations() - evals0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace dcq
