// The llama forward pass. It reads like the math (llama2.c's run.c is the model): embed, then per
// layer RMSNorm -> Q/K/V -> RoPE -> causal attention over the KV cache -> output projection ->
// residual, RMSNorm -> SwiGLU FFN -> residual; final RMSNorm and the classifier. Speed lives in
// dcq::kernels; this file only says what is computed.
#include "dcq/engine.hpp"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>

#include <sys/mman.h>
#include <unistd.h>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"
#include "dcq/kernels.hpp"

namespace dcq {

namespace {

int64_t get_int(const WeightSource& w, const std::string& key, int64_t fallback, bool required) {
  const GgufValue* v = w.find_kv(key);
  if (!v) {
    if (required) fail_input(w.describe() + ": metadata key " + key + " is missing");
    return fallback;
  }
  return v->as_int(key);
}

double get_float(const WeightSource& w, const std::string& key, double fallback) {
  const GgufValue* v = w.find_kv(key);
  return v ? v->as_float(key) : fallback;
}

std::string blk(int layer, const char* name) { return "blk." + std::to_string(layer) + "." + name + ".weight"; }

}  // namespace

LlamaConfig LlamaConfig::from(const WeightSource& w) {
  const GgufValue* arch = w.find_kv("general.architecture");
  if (!arch) fail_input(w.describe() + ": no general.architecture in metadata");
  const std::string& a = arch->as_string("general.architecture");
  if (a != "llama") fail_input(w.describe() + ": unsupported architecture '" + a + "' (only llama runs)");
  LlamaConfig c;
  auto bounded = [&](const std::string& key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail_input(w.describe() + ": " + key + " = " + std::to_string(v) + " is out of range");
    return static_cast<int>(v);
  };
  c.n_embd = bounded("llama.embedding_length", get_int(w, "llama.embedding_length", 0, true), 1, 1 << 16);
  c.n_layer = bounded("llama.block_count", get_int(w, "llama.block_count", 0, true), 1, 1024);
  c.n_head = bounded("llama.attention.head_count", get_int(w, "llama.attention.head_count", 0, true), 1, 1024);
  c.n_head_kv = bounded("llama.attention.head_count_kv",
                        get_int(w, "llama.attention.head_count_kv", c.n_head, false), 1, c.n_head);
  c.n_ff = bounded("llama.feed_forward_length", get_int(w, "llama.feed_forward_length", 0, true), 1, 1 << 20);
  c.n_ctx_train = bounded("llama.context_length", get_int(w, "llama.context_length", 0, false), 0, 1 << 24);
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0)
    fail_input(w.describe() + ": head counts do not divide the embedding width");
  c.head_dim = c.n_embd / c.n_head;
  c.n_rot = bounded("llama.rope.dimension_count", get_int(w, "llama.rope.dimension_count", c.head_dim, false), 2,
                    c.head_dim);
  if (c.n_rot % 2) fail_input(w.describe() + ": odd llama.rope.dimension_count");
  c.rms_eps = static_cast<float>(get_float(w, "llama.attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_freq_base = static_cast<float>(get_float(w, "llama.rope.freq_base", 10000.0));
  if (const GgufValue* t = w.find_kv("llama.rope.scaling.type")) {
    const std::string& type = t->as_string("llama.rope.scaling.type");
    if (type == "linear") {
      const double f = get_float(w, "llama.rope.scaling.factor", 1.0);
      if (!(f > 0)) fail_input(w.describe() + ": bad llama.rope.scaling.factor");
      c.rope_freq_scale = static_cast<float>(1.0 / f);
    } else if (type != "none") {
      fail_input(w.describe() + ": unsupported rope scaling '" + type + "'");
    }
  } else if (const GgufValue* f = w.find_kv("llama.rope.scale_linear")) {
    c.rope_freq_scale = static_cast<float>(1.0 / f->as_float("llama.rope.scale_linear"));
  }
  const auto emb = w.info("token_embd.weight");
  if (!emb) fail_input(w.describe() + ": tensor token_embd.weight is missing");
  if (emb->ne.size() != 2 || emb->ne[0] != c.n_embd || emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
    fail_input(w.describe() + ": token_embd.weight does not have shape [n_embd, n_vocab]");
  c.n_vocab = static_cast<int>(emb->ne[1]);
  c.tied_output = !w.info("output.weight").has_value();
  return c;
}

namespace {

// The engine's interleaved copies of Q8_0 / Q4_0 / Q4_K / Q6_K matrices (kernels::interleave_rows, made when
// the engine is built). Only a fully resident source (WeightSource::all_resident: a mmapped or
// in-memory GGUF, a .dcq without a memory budget) is repacked, and the matmuls never read the
// original again: when it lies in a read-only file mapping (a mmapped GGUF), its pages are dropped
// from this process (MADV_DONTNEED on such a mapping only removes our page-table entries; the file
// stays in the page cache and a later touch, e.g. an embedding row of a tied output matrix, maps it
// back), and a decoded copy (.dcq) is discarded, so the model is resident once. A .dcq under a
// memory budget may evict and decode tensors again, so its tensors are used as they come (plain
// layout).
struct Repacked {
  struct Copy {
    kernels::Matrix matrix;  // interleaved, pointing into the arena
  };
  std::unordered_map<std::string, Copy> copies;
  // All copies in one mapping on 2 MiB pages: most matrices are smaller than 2 MiB, and on 4 KiB
  // pages of their own the matrix products miss the TLB on every page (a loader under a budget,
  // serving 2 MiB views, ran faster than this all-resident path before).
  uint8_t* arena = nullptr;
  uint64_t arena_bytes = 0, arena_used = 0;
  Repacked() = default;
  Repacked(const Repacked&) = delete;
  Repacked& operator=(const Repacked&) = delete;
  ~Repacked() {
    if (arena) ::munmap(arena, arena_bytes);
  }
  void reserve(uint64_t bytes) {
    if (bytes == 0) return;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    (void)::madvise(p, bytes, MADV_HUGEPAGE);
    arena = static_cast<uint8_t*>(p);
    arena_bytes = bytes;
  }
  uint8_t* take(uint64_t bytes) {  // 64-byte aligned slots, in load order
    DCQ_ASSERT(arena_used + bytes <= arena_bytes);
    uint8_t* p = arena + arena_used;
    arena_used += (bytes + 63) / 64 * 64;
    return p;
  }
};

// Bytes the interleaved copy of `name` takes in the arena (0: none is made).
uint64_t repacked_bytes(const WeightSource& w, const std::string& name) {
  const auto t = w.info(name);
  if (!t || !kernels::interleave_pays(t->type, t->n_rows(), t->row_width())) return 0;
  const auto rb = row_bytes(t->type, t->row_width());
  return rb ? (*rb * uint64_t(t->n_rows()) + 63) / 64 * 64 : 0;
}

// Whether [p, p + n) lies inside one read-only, file-backed mapping of this process.
bool in_readonly_file_mapping(const uint8_t* p, size_t n) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto lo = reinterpret_cast<uintptr_t>(p), hi = lo + n;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev;
    uint64_t inode = 0;
    if (!(in >> range >> perms >> offset >> dev >> inode)) continue;
    const size_t dash = range.find('-');
    if (dash == std::string::npos) continue;
    const auto start = uintptr_t(std::stoull(range.substr(0, dash), nullptr, 16));
    const auto end = uintptr_t(std::stoull(range.substr(dash + 1), nullptr, 16));
    if (lo >= start && hi <= end) return perms.size() >= 2 && perms[1] == '-' && inode != 0;
  }
  return false;
}

void drop_pages(std::span<const uint8_t> data) {
  if (data.empty() || !in_readonly_file_mapping(data.data(), data.size())) return;
  const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data.data()) + data.size()) / page * page;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // RSS only
}

void repack(WeightSource& w, Repacked& rp, const std::string& name);

}  // namespace

// Scratch buffers and the KV cache; activations are [n_tok][width] row-major.
struct Engine::State {
  Repacked repacked;
  std::unique_ptr<kernels::ThreadPool> own_pool;  // unless EngineOptions::pool is given
  kernels::ThreadPool& pool;
  std::vector<uint16_t> k_cache, v_cache;  // [layer][pos][n_head_kv * head_dim], F16 like llama.cpp
  std::vector<float> x, xb, xb2, q, k, v, att, hb, hb2, logits, norm;
  State(int threads, kernels::ThreadPool* shared)
      : own_pool(shared ? nullptr : std::make_unique<kernels::ThreadPool>(threads)), pool(shared ? *shared : *own_pool) {}
};

Engine::Engine(WeightSource& weights, const EngineOptions& options) : w_(weights), cfg_(LlamaConfig::from(weights)) {
  n_ctx_ = options.n_ctx > 0 ? options.n_ctx : cfg_.n_ctx_train;
  if (n_ctx_ <= 0) fail_input(w_.describe() + ": no context_length in metadata; give a context size");
  if (n_ctx_ > (1 << 20)) fail_usage("context size " + std::to_string(n_ctx_) + " is too large");

  // Every tensor the forward pass will use, checked once up front (shape and a kernel for its type).
  const int64_t kv_dim = int64_t(cfg_.n_head_kv) * cfg_.head_dim;
  auto expect = [&](const std::string& name, int64_t cols, int64_t rows, bool matrix) {
    const auto t = w_.info(name);
    if (!t) fail_input(w_.describe() + ": tensor " + name + " is missing");
    const bool ok = matrix ? (t->ne.size() == 2 && t->ne[0] == cols && t->ne[1] == rows)
                           : (t->ne.size() == 1 && t->ne[0] == cols);
    if (!ok) fail_input(w_.describe() + ": tensor " + name + " has an unexpected shape");
    if (matrix && !kernels::supports_weight_type(t->type))
      fail_input(w_.describe() + ": tensor " + name + " has type " + std::string(type_name(t->type)) +
                 ", which the engine cannot multiply");
    if (matrix && t->type == GgmlType::I8) {
      // dcq's code format needs its scale tensor: F32 [cols / group, rows].
      const std::string sn = scale_tensor_name(name);
      const auto st = w_.info(sn);
      if (!st || st->type != GgmlType::F32 || st->ne.size() != 2 || st->ne[1] != rows || st->ne[0] < 1 ||
          cols % st->ne[0] != 0)
        fail_input(w_.describe() + ": I8 tensor " + name + " has no matching F32 scale tensor " + sn);
    }
    if (!matrix && !row_bytes(t->type, cols)) fail_input(w_.describe() + ": tensor " + name + " has a bad type");
  };
  expect("output_norm.weight", cfg_.n_embd, 1, false);
  if (!cfg_.tied_output) expect("output.weight", cfg_.n_embd, cfg_.n_vocab, true);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    expect(blk(l, "attn_norm"), cfg_.n_embd, 1, false);
    expect(blk(l, "attn_q"), cfg_.n_embd, cfg_.n_embd, true);
    expect(blk(l, "attn_k"), cfg_.n_embd, kv_dim, true);
    expect(blk(l, "attn_v"), cfg_.n_embd, kv_dim, true);
    expect(blk(l, "attn_output"), cfg_.n_embd, cfg_.n_embd, true);
    expect(blk(l, "ffn_norm"), cfg_.n_embd, 1, false);
    expect(blk(l, "ffn_gate"), cfg_.n_embd, cfg_.n_ff, true);
    expect(blk(l, "ffn_up"), cfg_.n_embd, cfg_.n_ff, true);
    expect(blk(l, "ffn_down"), cfg_.n_ff, cfg_.n_embd, true);
  }

  // Sub-layers a structured pruning removed (their weights are zeros, so skipping them is exact).
  auto pruned = [&](const char* key) {
    std::vector<uint8_t> flags(size_t(cfg_.n_layer), 0);
    if (const GgufValue* v = w_.find_kv(key)) {
      if (v->type() != GgufType::ARRAY) fail_input(w_.describe() + ": metadata key " + key + " is not an array");
      for (const GgufValue& item : v->as_array(key).items) {
        if (!item.is_integer()) fail_input(w_.describe() + ": metadata key " + key + " holds a non-integer");
        const int64_t l = item.as_int(key);
        if (l < 0 || l >= cfg_.n_layer)
          fail_input(w_.describe() + ": metadata key " + key + " names layer " + std::to_string(l) + " of " +
                     std::to_string(cfg_.n_layer));
        flags[size_t(l)] = 1;
      }
    }
    return flags;
  };
  pruned_attn_ = pruned("dcq.pruned.attn");
  pruned_ffn_ = pruned("dcq.pruned.ffn");
  set_skips(options.skip_attn, options.skip_ffn);
  st_ = std::make_unique<State>(options.n_threads, options.pool);
  // Weight repacking happens here, at load (as llama.cpp does), so that neither the prompt's
  // time nor its page faults include it.
  // A source under a memory budget (.dcq) may evict and bring tensors back, so the engine keeps
  // no copies of its own: it asks the source for interleaved rows instead (the loader interleaves
  // what it decodes, and serves row_groups chunks of the file as they are). A tied output matrix
  // is also the embedding table, read by rows, so it stays plain there.
  auto matrices = [&](const std::function<void(const std::string&)>& f) {
    if (w_.all_resident() || !cfg_.tied_output) f(cfg_.tied_output ? "token_embd.weight" : "output.weight");
    for (int l = 0; l < cfg_.n_layer; ++l)
      for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
        f(blk(l, m));
  };
  if (w_.all_resident()) {
    uint64_t bytes = 0;
    matrices([&](const std::string& name) { bytes += repacked_bytes(w_, name); });
    st_->repacked.reserve(bytes);
    matrices([&](const std::string& name) { repack(w_, st_->repacked, name); });
  } else {
    matrices([&](const std::string& name) {
      const auto t = w_.info(name);
      if (t && kernels::interleave_pays(t->type, t->n_rows(), t->row_width())) w_.want_interleaved(name);
    });
  }
  const size_t cache = size_t(cfg_.n_layer) * size_t(n_ctx_) * size_t(kv_dim);
  st_->k_cache.assign(cache, 0);
  st_->v_cache.assign(cache, 0);
}

Engine::~Engine() = default;

void Engine::set_skips(std::vector<uint8_t> skip_attn, std::vector<uint8_t> skip_ffn) {
  auto check = [&](const std::vector<uint8_t>& v, const char* what) {
    if (!v.empty() && v.size() != size_t(cfg_.n_layer))
      fail_usage(std::string(what) + " mask has " + std::to_string(v.size()) + " entries for " +
                 std::to_string(cfg_.n_layer) + " layers");
  };
  check(skip_attn, "attention skip");
  check(skip_ffn, "feed-forward skip");
  skip_attn_ = std::move(skip_attn);
  skip_ffn_ = std::move(skip_ffn);
  skip_attn_.resize(size_t(cfg_.n_layer), 0);
  skip_ffn_.resize(size_t(cfg_.n_layer), 0);
  for (size_t l = 0; l < pruned_attn_.size(); ++l) {
    skip_attn_[l] |= pruned_attn_[l];
    skip_ffn_[l] |= pruned_ffn_[l];
  }
  n_past_ = 0;
}

namespace {

kernels::Matrix as_matrix(const WeightBlocks& b) {
  kernels::Matrix m{b.info.type, b.info.row_width(), b.n_rows, b.data.data()};
  m.interleaved = b.interleaved;
  return m;
}

// A 1-D weight (a norm) as floats, whatever its stored type.
const float* as_floats(const WeightBlocks& b, std::vector<float>& scratch) {
  if (b.info.type == GgmlType::F32) return reinterpret_cast<const float*>(b.data.data());
  scratch.resize(size_t(b.info.row_width()));
  kernels::dequantize_row(as_matrix(b), 0, scratch.data());
  return scratch.data();
}

// Holds a tensor for one scope (rows [row0, row1) when row1 > 0): acquire on entry, release on
// exit. An I8 code tensor brings its scale tensor along.
class Held {
 public:
  Held(WeightSource& w, std::string name, int64_t row0 = 0, int64_t row1 = 0)
      : w_(w), name_(std::move(name)), b_(row1 > 0 ? w.acquire_rows(name_, row0, row1) : w.acquire(name_)) {
    if (b_.info.type == GgmlType::I8) {
      scale_name_ = scale_tensor_name(name_);
      s_ = row1 > 0 ? w.acquire_rows(scale_name_, row0, row1) : w.acquire(scale_name_);
    }
  }
  ~Held() {
    w_.release(name_);
    if (!scale_name_.empty()) w_.release(scale_name_);
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  const WeightBlocks& operator*() const { return b_; }
  kernels::Matrix matrix() const {
    kernels::Matrix m = as_matrix(b_);
    if (!scale_name_.empty()) {
      m.scales = reinterpret_cast<const float*>(s_.data.data());
      m.group = m.n_cols / std::max<int64_t>(1, s_.info.row_width());
    }
    return m;
  }

 private:
  WeightSource& w_;
  std::string name_, scale_name_;
  WeightBlocks b_, s_;
};

// Makes the interleaved copy of matrix `name` when the kernels want one (at load).
void repack(WeightSource& w, Repacked& rp, const std::string& name) {
  const auto t = w.info(name);
  if (!t || !kernels::interleave_pays(t->type, t->n_rows(), t->row_width()) || rp.copies.contains(name)) return;
  {
    Held h(w, name);
    const kernels::Matrix m = h.matrix();
    Repacked::Copy& c = rp.copies[name];
    uint8_t* dst = rp.take((*h).data.size());
    kernels::interleave_rows(m.type, m.n_rows, m.n_cols, m.data, dst);
    drop_pages((*h).data);
    c.matrix = m;
    c.matrix.data = dst;
    c.matrix.interleaved = true;
  }
  w.discard(name);  // a decoded source (.dcq without a budget) frees its copy: resident once
}

// y = W x for the matrix `name`, through its interleaved copy when there is one.
void linear(WeightSource& w, Repacked& rp, kernels::ThreadPool& pool, const std::string& name, const float* x, int n,
            float* y) {
  if (auto it = rp.copies.find(name); it != rp.copies.end()) return kernels::matmul(it->second.matrix, x, n, y, &pool);
  Held h(w, name);
  kernels::matmul(h.matrix(), x, n, y, &pool);
}

// ys[i] = W_i x for the matrices names[i] that read the same activations (Q/K/V, gate/up), in
// one pass of the pool (kernels::matmul_multi: activations converted once, one synchronisation);
// `after` runs per thread on the rows it computed (see matmul_multi). All of them are held at
// once, also from a source under a memory budget: its plan's window has room for three weights
// of a layer (docs/loader.md), and one pass instead of three keeps a budgeted run as fast as a
// resident one.
void linear_multi(WeightSource& w, Repacked& rp, kernels::ThreadPool& pool, std::initializer_list<std::string> names,
                  const float* x, int n, std::initializer_list<float*> ys, const kernels::RowEpilogue& after = {}) {
  std::vector<std::unique_ptr<Held>> held;
  std::vector<kernels::MatmulJob> jobs;
  auto y = ys.begin();
  for (const std::string& name : names) {
    float* out = *y++;
    if (auto it = rp.copies.find(name); it != rp.copies.end()) {
      jobs.push_back({it->second.matrix, out});
    } else {
      held.push_back(std::make_unique<Held>(w, name));
      jobs.push_back({held.back()->matrix(), out});
    }
  }
  kernels::matmul_multi(jobs, x, n, &pool, after);
}

}  // namespace

std::span<const float> Engine::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) fail_input("eval: no tokens");
  if (n_past_ + n > n_ctx_)
    fail_input("context full: " + std::to_string(n_past_ + n) + " tokens do not fit in a context of " +
               std::to_string(n_ctx_));
  const int dim = cfg_.n_embd;
  State& s = *st_;
  s.x.resize(size_t(n) * dim);

  // Token embeddings (one row each, so a partial source need not load the table).
  for (int t = 0; t < n; ++t) {
    const int32_t id = tokens[size_t(t)];
    if (id < 0 || id >= cfg_.n_vocab)
      fail_input("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(cfg_.n_vocab));
    Held row(w_, "token_embd.weight", id, id + 1);
    kernels::dequantize_row(row.matrix(), 0, s.x.data() + size_t(t) * dim);
  }

  // Only the rows whose logits are wanted go past the last attention (as llama.cpp does).
  const int first = all_logits ? 0 : n - 1;
  for (int l = 0; l < cfg_.n_layer; ++l) forward_layer(l, n, l == cfg_.n_layer - 1 ? first : 0);
  return finish(n, first);
}

std::span<const float> Engine::eval_from(int unit, std::span<const float> hidden, bool all_logits) {
  const int dim = cfg_.n_embd;
  if (unit < 0 || unit > 2 * cfg_.n_layer) fail_usage("eval_from: sub-layer " + std::to_string(unit) + " is out of range");
  if (hidden.empty() || hidden.size() % size_t(dim) != 0)
    fail_usage("eval_from: the residual stream is not a whole number of rows of " + std::to_string(dim));
  const int n = static_cast<int>(hidden.size() / size_t(dim));
  if (n_past_ + n > n_ctx_)
    fail_input("context full: " + std::to_string(n_past_ + n) + " tokens do not fit in a context of " +
               std::to_string(n_ctx_));
  State& s = *st_;
  s.x.assign(hidden.begin(), hidden.end());
  const int first = all_logits ? 0 : n - 1;
  for (int l = unit / 2; l < cfg_.n_layer; ++l)
    forward_layer(l, n, l == cfg_.n_layer - 1 ? first : 0, l == unit / 2 && unit % 2 == 1);
  if (unit == 2 * cfg_.n_layer && first > 0)
    std::copy(s.x.begin() + ptrdiff_t(first) * dim, s.x.begin() + ptrdiff_t(n) * dim, s.x.begin());
  return finish(n, first);
}

std::span<const float> Engine::finish(int n, int first) {
  const int dim = cfg_.n_embd;
  const int n_out = n - first;
  State& s = *st_;
  if (observer_) observer_->observe_residual(2 * cfg_.n_layer, s.x.data(), n_out, dim);
  // Final norm, then the classifier. s.x now holds the n_out rows.
  s.xb.resize(size_t(n_out) * dim);
  {
    Held norm(w_, "output_norm.weight");
    const float* nw = as_floats(*norm, s.norm);
    for (int t = 0; t < n_out; ++t)
      kernels::rmsnorm(s.xb.data() + size_t(t) * dim, s.x.data() + size_t(t) * dim, nw, dim, cfg_.rms_eps);
  }
  if (observer_) observer_->observe(-1, LinearSite::output_in, s.xb.data(), n_out, dim);
  s.logits.resize(size_t(n_out) * cfg_.n_vocab);
  linear(w_, s.repacked, s.pool, cfg_.tied_output ? "token_embd.weight" : "output.weight", s.xb.data(), n_out,
         s.logits.data());
  n_past_ += n;
  return s.logits;
}

// Runs fn(t0, t1) over the tokens [0, n): on the pool for a batch, inline for a few tokens. The
// per-token element-wise steps (norms, RoPE, K/V rounding, SwiGLU, residual adds) do the same
// arithmetic either way; left serial they were ~7 % of a 1-thread prompt, so ~13 % of a
// 2-thread one.
static void for_tokens(kernels::ThreadPool& pool, int n, const std::function<void(size_t, size_t)>& fn) {
  if (n < 8 || pool.size() < 2) return fn(0, size_t(n));
  pool.parallel_for(n, [&](int64_t b, int64_t e) { fn(size_t(b), size_t(e)); });
}

// out[t] = rmsnorm(x[t]) * w for the n tokens (rows of `dim`), split over the pool for a batch.
static void rmsnorm_tokens(kernels::ThreadPool& pool, int n, float* out, const float* x, const float* w, int dim,
                           float eps) {
  for_tokens(pool, n, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) kernels::rmsnorm(out + t * size_t(dim), x + t * size_t(dim), w, dim, eps);
  });
}

// x[t][r] += y[t][r] for the columns r in [r0, r1) of n rows of `width` (a residual add).
static void add_rows(float* x, const float* y, int n, int width, int64_t r0, int64_t r1) {
  for (int t = 0; t < n; ++t)
    for (int64_t r = r0; r < r1; ++r) x[size_t(t) * width + size_t(r)] += y[size_t(t) * width + size_t(r)];
}

void Engine::forward_layer(int l, int n, int drop, bool from_ffn) {
  State& s = *st_;
  const int dim = cfg_.n_embd, n_ff = cfg_.n_ff;
  const size_t N = size_t(n);
  s.xb.resize(N * dim);
  s.xb2.resize(N * dim);
  s.hb.resize(N * n_ff);
  s.hb2.resize(N * n_ff);

  // A skipped sub-layer is the identity: the residual stream passes through unchanged, and this
  // layer's KV cache is never read (no later layer looks at another layer's cache).
  if (observer_ && !from_ffn) observer_->observe_residual(2 * l, s.x.data(), n, dim);
  if (!from_ffn && !skip_attn_[size_t(l)]) attention_block(l, n, drop);
  else if (drop > 0)
    std::copy(s.x.begin() + ptrdiff_t(drop) * dim, s.x.begin() + ptrdiff_t(n) * dim, s.x.begin());
  const int m = n - drop;
  if (observer_) observer_->observe_residual(2 * l + 1, s.x.data(), m, dim);
  if (!skip_ffn_[size_t(l)]) ffn_block(l, m);
}

void Engine::attention_block(int l, int n, int drop) {
  State& s = *st_;
  const int dim = cfg_.n_embd, hd = cfg_.head_dim;
  const int kv_dim = cfg_.n_head_kv * hd;
  const int group = cfg_.n_head / cfg_.n_head_kv;  // query heads per KV head
  const size_t N = size_t(n);
  s.q.resize(N * dim);
  s.k.resize(N * kv_dim);
  s.v.resize(N * kv_dim);
  s.att.resize(N * dim);
  {
    Held norm(w_, blk(l, "attn_norm"));
    const float* nw = as_floats(*norm, s.norm);
    rmsnorm_tokens(s.pool, n, s.xb.data(), s.x.data(), nw, dim, cfg_.rms_eps);
  }
  if (observer_) observer_->observe(l, LinearSite::attn_in, s.xb.data(), n, dim);
  linear_multi(w_, s.repacked, s.pool, {blk(l, "attn_q"), blk(l, "attn_k"), blk(l, "attn_v")}, s.xb.data(), n,
               {s.q.data(), s.k.data(), s.v.data()});
  uint16_t* kc = s.k_cache.data() + size_t(l) * n_ctx_ * kv_dim;
  uint16_t* vc = s.v_cache.data() + size_t(l) * n_ctx_ * kv_dim;
  for_tokens(s.pool, n, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      const int pos = n_past_ + int(t);
      kernels::rope_normal(&s.q[t * dim], cfg_.n_head, hd, cfg_.n_rot, pos, cfg_.rope_freq_base, cfg_.rope_freq_scale);
      kernels::rope_normal(&s.k[t * kv_dim], cfg_.n_head_kv, hd, cfg_.n_rot, pos, cfg_.rope_freq_base,
                           cfg_.rope_freq_scale);
      // The cache holds F16 (llama.cpp's default cache type), so rounding matches its numbers.
      for (int i = 0; i < kv_dim; ++i) {
        kc[size_t(pos) * kv_dim + i] = float_to_fp16(s.k[t * kv_dim + i]);
        vc[size_t(pos) * kv_dim + i] = float_to_fp16(s.v[t * kv_dim + i]);
      }
    }
  });
  // Causal attention: token t sees positions 0..n_past+t. One (head, token) pair per work item,
  // head-major: token t costs ~ n_past + t, so a token-major order would hand the pool's first
  // contiguous range the cheap early tokens (a 3:1 split of a 64-token prompt on 2 threads);
  // head-major gives every thread the same mix of tokens (exactly, when threads divide n_head).
  const float scale = 1.0f / std::sqrt(float(hd));
  const int n_past = n_past_;
  auto heads = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const size_t t = size_t(i % n);
      const int h = int(i / n), kvh = h / group;
      kernels::attention_f16(&s.q[t * dim + size_t(h) * hd], kc + size_t(kvh) * hd, vc + size_t(kvh) * hd, kv_dim,
                             n_past + int(t) + 1, hd, scale, &s.att[t * dim + size_t(h) * hd]);
    }
  };
  // On the pool when this step's projections are (a model of a few hundred K parameters runs a
  // token on one thread). Not by the attention's own multiply-adds: with exp and F16 loads per
  // score it costs several times a matmul's per multiply-add, and run inline up to that threshold
  // it made the 110M-shape model 16 % slower.
  const int64_t items = int64_t(n) * cfg_.n_head;
  if (kernels::use_pool(&s.pool, int64_t(dim) * dim * n)) s.pool.parallel_for(items, heads);
  else heads(0, items);
  // Rows before `drop` are not needed any more (their K/V are cached): keep the rest only.
  if (drop > 0) {
    std::copy(s.att.begin() + ptrdiff_t(drop) * dim, s.att.begin() + ptrdiff_t(n) * dim, s.att.begin());
    std::copy(s.x.begin() + ptrdiff_t(drop) * dim, s.x.begin() + ptrdiff_t(n) * dim, s.x.begin());
    n -= drop;
  }
  if (observer_) observer_->observe(l, LinearSite::attn_out_in, s.att.data(), n, dim);
  // The residual add of each thread's output rows right after it computed them (no pass of its own).
  linear_multi(w_, s.repacked, s.pool, {blk(l, "attn_output")}, s.att.data(), n, {s.xb2.data()},
               [&](int64_t r0, int64_t r1) { add_rows(s.x.data(), s.xb2.data(), n, dim, r0, r1); });
}

// down(silu(gate(x)) * up(x)) over the first n rows of the residual stream.
void Engine::ffn_block(int l, int n) {
  State& s = *st_;
  const int dim = cfg_.n_embd, n_ff = cfg_.n_ff;
  {
    Held norm(w_, blk(l, "ffn_norm"));
    const float* nw = as_floats(*norm, s.norm);
    rmsnorm_tokens(s.pool, n, s.xb.data(), s.x.data(), nw, dim, cfg_.rms_eps);
  }
  if (observer_) observer_->observe(l, LinearSite::ffn_in, s.xb.data(), n, dim);
  // Gate and up in one pass; each thread applies SwiGLU to the rows it has just computed of both
  // (an element-wise step: which thread does it does not change the bits).
  linear_multi(w_, s.repacked, s.pool, {blk(l, "ffn_gate"), blk(l, "ffn_up")}, s.xb.data(), n,
               {s.hb.data(), s.hb2.data()}, [&](int64_t r0, int64_t r1) {
                 for (int t = 0; t < n; ++t) {
                   const size_t off = size_t(t) * n_ff + size_t(r0);
                   kernels::swiglu(s.hb.data() + off, s.hb.data() + off, s.hb2.data() + off, r1 - r0);
                 }
               });
  if (observer_) observer_->observe(l, LinearSite::ffn_down_in, s.hb.data(), n, n_ff);
  linear_multi(w_, s.repacked, s.pool, {blk(l, "ffn_down")}, s.hb.data(), n, {s.xb2.data()},
               [&](int64_t r0, int64_t r1) { add_rows(s.x.data(), s.xb2.data(), n, dim, r0, r1); });
}

}  // namespace dcq
