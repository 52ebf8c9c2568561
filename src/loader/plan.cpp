// The speed-adaptive load plan (docs/loader.md, "Plan").
//
// Under a memory budget some tensors must be decoded again on every token. Which ones matters:
// pinning a tensor saves its decode time on every later token and costs its decoded bytes of
// budget, so the plan pins, greedily, the tensors that save the most decode seconds per byte of
// budget — where the decode speed of each tensor's encoding (transform + codecs of its chunks) is
// measured on this machine, not assumed. Two details dominate on real models:
//  - the embedding table is read by rows (one chunk per token), so streaming it costs almost
//    nothing and pinning it wastes its whole size; the container-order policy pinned it first;
//  - the streaming window must hold the largest streamed tensor (the classifier, often as big as
//    a few layers), so pinning the classifier also shrinks the window; the greedy step counts
//    that (net budget cost = bytes + change of the window).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <new>

#include "dcq/error.hpp"
#include "dcq/kernels.hpp"
#include "dcq/loader.hpp"
#include "mapped_pages.hpp"

namespace dcq {
namespace {

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
// Page-table costs of streamed 2 MiB views (see view_cost in make_plan), measured on the session-7
// machine (a 2-vCPU VM: an IPI is a VM exit) from system time per token across pinned sets:
// one flush (madvise MADV_DONTNEED + TLB shootdown) ~35 us, one block mapped again ~10 us.
// Constants, not timed per run: the plan for a repack and the plan of the repacked file must
// decide alike. docs/loader.md, "Measurements, session 7".
constexpr double kFlushSeconds = 35e-6;
constexpr double kBlockFaultSeconds = 10e-6;
using Clock = std::chrono::steady_clock;

long layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  char* end = nullptr;
  const long n = std::strtol(name.c_str() + 4, &end, 10);
  return (end && *end == '.') ? n : -1;
}

// "x.scale" -> "x.weight" (the I8 code tensor it goes with); the name itself otherwise.
std::string base_of(const std::string& name) {
  const std::string suffix = ".scale";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return name.substr(0, name.size() - suffix.size()) + ".weight";
  return name;
}

std::string mib(uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB (%llu bytes)", double(b) / (1024.0 * 1024.0), (unsigned long long)b);
  return buf;
}

// An encoding class: transform and the codec of every stream. Chunks of one class decode at
// about the same bytes/s.
std::string encoding_of(const DcqReader& r, size_t c) {
  const auto& ix = r.index();
  const auto& ch = ix.chunks[c];
  const auto& t = ix.tensors[ch.tensor];
  std::string s = std::string(transform_name(ch.transform)) + "/";
  try {
    const auto streams = parse_payload(t.type, ch.transform, r.stored(ch), ch.decoded_size);
    for (size_t i = 0; i < streams.size(); ++i) {
      if (i) s += '+';
      s += codec_name(streams[i].codec);
    }
  } catch (const Error&) {
    s += codec_name({ch.codec, 0});  // a corrupt payload is reported when it is decoded
  }
  // Reading the header mapped a folio around it: drop it now, or planning maps the whole file
  // (peak resident set of the run = the file, whatever the budget).
  loader_detail::drop_chunk_pages(r, c);
  return s;
}

struct AlignedBuf {
  explicit AlignedBuf(uint64_t n) : p(static_cast<uint8_t*>(::operator new[](std::max<uint64_t>(n, 1), std::align_val_t{64}))) {}
  ~AlignedBuf() { ::operator delete[](p, std::align_val_t{64}); }
  uint8_t* p;
};

// Seconds per decoded byte of each encoding class, one thread. Measured: decode up to ~1 MiB of
// each class's largest chunks (best of 2; a corrupt chunk falls back to the model, its error
// comes when the run decodes it). Modelled: the codec's fixed speed model (codec_decode_speed).
std::map<std::string, double> decode_cost(const DcqReader& r, const std::vector<std::string>& enc, bool measured) {
  const auto& ix = r.index();
  std::map<std::string, std::vector<size_t>> by_class;
  for (size_t c = 0; c < ix.chunks.size(); ++c) by_class[enc[c]].push_back(c);
  std::map<std::string, double> cost;
  for (auto& [cls, chunks] : by_class) {
    std::sort(chunks.begin(), chunks.end(),
              [&](size_t a, size_t b) { return ix.chunks[a].decoded_size > ix.chunks[b].decoded_size; });
    double modelled = 0;
    {
      const auto& ch = ix.chunks[chunks[0]];
      modelled = transform_join_cost(ch.transform) + 1.0 / codec_decode_speed({ch.codec, 0});
    }
    if (!measured) {
      cost[cls] = modelled;
      continue;
    }
    // Chunks of up to 4 MiB only: a class of whole-tensor chunks (a repack's raw classifier is
    // 26 MiB on the 110M Q8_0) would otherwise cost its decoded size plus its mapped stored bytes
    // at open, above a small budget (the peak of a 20 % run). Such a class keeps the model.
    std::vector<size_t> sample;
    uint64_t bytes = 0;
    for (size_t c : chunks) {
      if (bytes >= (1u << 20) || sample.size() >= 8) break;
      if (ix.chunks[c].decoded_size > (4u << 20)) continue;
      sample.push_back(c);
      bytes += ix.chunks[c].decoded_size;
    }
    if (sample.empty()) {
      cost[cls] = modelled;
      continue;
    }
    AlignedBuf buf(ix.chunks[sample[0]].decoded_size);
    double best = std::numeric_limits<double>::infinity();
    try {
      for (int rep = 0; rep < 2; ++rep) {
        const auto t0 = Clock::now();
        for (size_t c : sample) r.decode_chunk(c, std::span<uint8_t>(buf.p, ix.chunks[c].decoded_size));
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
      }
      cost[cls] = bytes > 0 ? best / double(bytes) : modelled;
    } catch (const Error&) {
      cost[cls] = modelled;
    }
    for (size_t c : sample) loader_detail::drop_chunk_pages(r, c);  // their stored bytes: not needed now
  }
  return cost;
}

// Seconds of one token's matrix-vector products per weight byte, per type: one weight of each
// type (the largest in the layers) is decoded and multiplied by a vector a few times.
double compute_seconds(const DcqReader& r, const std::vector<TensorPlan>& plan, const std::vector<size_t>& idx,
                       int threads) {
  const auto& ix = r.index();
  std::map<GgmlType, size_t> rep;  // type -> index into plan of its largest layer tensor
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& t = ix.tensors[idx[i]];
    if (t.ne.size() != 2 || !kernels::supports_weight_type(t.type) || plan[i].row_access) continue;
    auto it = rep.find(t.type);
    if (it == rep.end() || plan[it->second].bytes < plan[i].bytes) rep[t.type] = i;
  }
  std::map<GgmlType, double> sec_per_byte;
  kernels::ThreadPool pool(std::max(1, threads));
  for (const auto& [type, i] : rep) {
    const auto& t = ix.tensors[idx[i]];
    AlignedBuf w(t.n_bytes);
    uint64_t at = 0;
    try {
      for (uint32_t c = t.first_chunk; c < t.first_chunk + t.n_chunks; ++c) {
        r.decode_chunk(c, std::span<uint8_t>(w.p + at, ix.chunks[c].decoded_size));
        at += ix.chunks[c].decoded_size;
      }
    } catch (const Error&) {
      continue;
    }
    // Weights stream from memory in a real pass: multiply copies spanning more than the caches
    // (>= 48 MiB), one after another, or the timing would be of a cache-resident matrix.
    const uint64_t copies = std::clamp<uint64_t>((48ull << 20) / std::max<uint64_t>(t.n_bytes, 1) + 1, 1, 256);
    std::vector<std::unique_ptr<AlignedBuf>> bufs;
    for (uint64_t k = 0; k < copies; ++k) {
      bufs.push_back(std::make_unique<AlignedBuf>(t.n_bytes));
      std::copy(w.p, w.p + t.n_bytes, bufs.back()->p);
    }
    kernels::Matrix m;
    m.type = t.type;
    m.n_cols = t.ne[0];
    m.n_rows = t.ne[1];
    // An I8 code tensor (lossy containers) multiplies with its scale tensor: timing needs only
    // some scales (one per row; the per-group cost difference is small against the codes).
    std::vector<float> unit_scales;
    if (t.type == GgmlType::I8) {
      unit_scales.assign(size_t(m.n_rows), 1.0f);
      m.scales = unit_scales.data();
      m.group = m.n_cols;
    }
    std::vector<float> x(size_t(m.n_cols), 0.25f), y(size_t(m.n_rows));
    double best = std::numeric_limits<double>::infinity();
    for (int rep_i = 0; rep_i < 3; ++rep_i) {
      const auto t0 = Clock::now();
      for (const auto& b : bufs) {
        m.data = b->p;
        kernels::matmul(m, x.data(), 1, y.data(), &pool);
      }
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / double(copies));
    }
    sec_per_byte[type] = best / double(t.n_bytes);
  }
  double total = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& t = ix.tensors[idx[i]];
    if (plan[i].row_access) continue;
    if (const auto it = sec_per_byte.find(t.type); it != sec_per_byte.end()) total += it->second * double(plan[i].bytes);
  }
  return total;
}

}  // namespace

double parse_read_throttle(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || !end || *end != '\0' || !std::isfinite(v) || v < 0)
    fail_usage("--read-throttle '" + text + "': expected MB/s, a number >= 0 (0: no throttle)");
  return v * 1e6;
}

LoadPlan make_plan(const DcqReader& r, const PlanOptions& o) {
  const auto& ix = r.index();
  LoadPlan p;
  p.threads = std::max(1, o.threads);
  p.pinned_by_index.assign(ix.tensors.size(), false);
  std::vector<std::string> enc(ix.chunks.size());
  for (size_t c = 0; c < ix.chunks.size(); ++c) enc[c] = encoding_of(r, c);
  const auto cost = decode_cost(r, enc, o.measured_speeds);

  // The engine reads token_embd by rows unless it doubles as the classifier (no output.weight).
  bool has_output = false;
  for (const auto& t : ix.tensors) has_output |= t.name == "output.weight";

  std::vector<size_t> idx;  // plan entry -> container tensor index
  for (size_t i = 0; i < ix.tensors.size(); ++i) {
    const auto& t = ix.tensors[i];
    if (t.duplicate_of != kDcqNoDuplicate) continue;
    TensorPlan tp;
    tp.name = t.name;
    tp.bytes = t.n_bytes;
    tp.row_access = t.name == "token_embd.weight" && has_output;
    std::map<std::string, uint64_t> by_enc;
    uint64_t max_chunk = 0, zero_copy_bytes = 0;
    double max_chunk_s = 0, all_s = 0;
    for (uint32_t c = t.first_chunk; c < t.first_chunk + t.n_chunks; ++c) {
      const auto& ch = ix.chunks[c];
      tp.stored_bytes += ch.stored_size;
      by_enc[enc[c]] += ch.decoded_size;
      // Served zero-copy by the loader (dcq_weights.cpp, raw_rows): no decode, only page faults
      // and a checksum on first use, so nothing per token.
      const bool zc = o.zero_copy && o.read_throttle <= 0 && (t.n_chunks == 1 || tp.row_access) &&
                      (ch.transform == TransformId::none || ch.transform == TransformId::row_groups) &&
                      ch.n_streams == 1 && ch.codec == CodecId::raw &&
                      ch.stored_size == r.raw_header_bytes() + ch.decoded_size && t.type != GgmlType::F32 &&
                      t.type != GgmlType::I32 && t.type != GgmlType::I64 && t.type != GgmlType::F64;
      const double s = zc ? 0.0 : cost.at(enc[c]) * double(ch.decoded_size);
      if (zc) zero_copy_bytes += ch.decoded_size;
      all_s += s;
      if (ch.decoded_size > max_chunk) {
        max_chunk = ch.decoded_size;
        max_chunk_s = s;
      }
    }
    for (const auto& [e, b] : by_enc)
      if (tp.encoding.empty() || b > by_enc[tp.encoding]) tp.encoding = e;
    if (zero_copy_bytes * 2 > tp.bytes) tp.encoding += " zero-copy";
    tp.zero_copy = o.zero_copy && t.n_chunks == 1 && zero_copy_bytes == tp.bytes;
    tp.bytes_per_pass = tp.row_access ? max_chunk : tp.bytes;
    tp.decode_seconds = tp.row_access ? max_chunk_s : all_s;
    p.weight_bytes += tp.bytes;
    p.stored_bytes += tp.stored_bytes;
    p.tensors.push_back(std::move(tp));
    idx.push_back(i);
  }

  // The streaming window a pinned set needs: the forward pass holds at most three weights of a
  // layer at once (attn_q/k/v, ffn_gate/up; an I8 weight with its scale tensor counts as one) or
  // one tensor outside the layers; an embedding row comes from one chunk. Only streamed tensors
  // occupy the window. The largest chunk is added as slack for the rows and the small tensors.
  // The slack is the largest chunk of a tensor stored in several chunks, of the row-read table or
  // of a 1-D tensor: a whole tensor stored as one chunk (a raw repack, served zero-copy) is
  // already counted as a tensor, and counting it again would double the window for nothing.
  uint64_t max_chunk = 0;
  for (const auto& c : ix.chunks) {
    const auto& t = ix.tensors[c.tensor];
    const bool row_read = t.name == "token_embd.weight" && has_output;
    if (t.n_chunks > 1 || row_read || t.ne.size() < 2) max_chunk = std::max(max_chunk, c.decoded_size);
  }
  // How far a layer's views can spread in the file: its views (2 MiB blocks) all lie in one run
  // of the layer's chunks, so a layer never holds more blocks than that run overlaps, however its
  // tensors are counted one by one (q/k/v of 0.3 MiB each count 4 MiB apiece, 12 MiB, where the
  // layer spans 2-3 blocks). The run is at most the layer's chunks each as large as it can become
  // (raw, one header, alignment): writers keep a layer's chunks together, and a repack puts the
  // streamed ones back to back. Sizes only, not this file's offsets, so that the plan for a repack
  // and the plan of the repacked file (whose views moved) count the same window.
  std::map<long, uint64_t> layer_span;
  for (const auto& c : ix.chunks) {
    const long l = layer_of(ix.tensors[c.tensor].name);
    if (l >= 0) layer_span[l] += std::max<uint64_t>(c.stored_size, c.decoded_size + 14) + kDcqPayloadAlignment;
  }

  // Whether streamed tensor i is served as a view of the file: it is one raw chunk, or the plan is
  // for a repack that will store it so. `any_view`: count every tensor a repack could store as one
  // raw chunk as a view (the decision whether to use blocks at all, below, must not depend on
  // which tensors are raw already).
  auto is_view = [&](size_t i, bool any_view = false) {
    const GgmlType ty = ix.tensors[idx[i]].type;
    return p.tensors[i].zero_copy ||
           ((o.for_repack || any_view) && o.zero_copy && o.read_throttle <= 0 && !p.tensors[i].row_access &&
            ty != GgmlType::F32 && ty != GgmlType::I32 && ty != GgmlType::I64 && ty != GgmlType::F64 &&
            p.tensors[i].bytes <= kDcqMaxChunkBytes);
  };
  auto window = [&](const std::vector<bool>& pinned, bool any_view = false) {
    std::map<long, std::map<std::string, uint64_t>> layers;
    std::map<long, std::map<std::string, uint64_t>> plain;  // the layer's streamed non-views, by bytes
    uint64_t other = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      if (pinned[i] || p.tensors[i].row_access) continue;
      const long l = layer_of(p.tensors[i].name);
      // A huge-mapped view holds the 2 MiB blocks it overlaps: at most its bytes rounded up to
      // blocks, plus one block for where it starts inside the first.
      const uint64_t b = p.tensors[i].bytes;
      const bool view = is_view(i, any_view);
      const uint64_t blk = p.view_block;
      const uint64_t held = blk && view ? (b + 2 * blk - 1) / blk * blk : b;
      if (l >= 0) {
        layers[l][base_of(p.tensors[i].name)] += held;
        if (!(blk && view)) plain[l][base_of(p.tensors[i].name)] += b;
      } else {
        other = std::max(other, held);
      }
    }
    uint64_t worst = other;
    auto top3 = [](const std::map<std::string, uint64_t>& groups) {
      std::vector<uint64_t> s;
      for (const auto& [n, b] : groups) s.push_back(b);
      std::sort(s.begin(), s.end(), std::greater<>());
      uint64_t sum = 0;
      for (size_t k = 0; k < std::min<size_t>(3, s.size()); ++k) sum += s[k];
      return sum;
    };
    for (const auto& [l, groups] : layers) {
      uint64_t need = top3(groups);
      if (const uint64_t blk = p.view_block; blk && layer_span.count(l))  // views: at most the range's blocks
        need = std::min(need, (layer_span[l] + 2 * blk - 1) / blk * blk + top3(plain[l]));
      worst = std::max(worst, need);
    }
    return worst + max_chunk;
  };

  // Streamed views in 2 MiB blocks cost page-table work every token: a PMD fault per block mapped
  // again, and per flush (DcqWeights::make_room gives every released view's blocks back at once)
  // one madvise whose TLB shootdown interrupts the other compute thread. A greedy that pins until
  // the budget is full leaves a window of a few blocks, so flushes come every layer (~15 per token
  // on the 110M Q4_0 at 60 %). Of the greedy's pin sequence, keep the prefix with the least modelled
  // per-token cost: the streamed non-views' decode time, plus flushes (the views' bytes per token
  // over the room left beside pinned tensors and window) and block faults at the costs below. The
  // costs depend only on sizes, so the plan for a repack and the plan of the repacked file agree.
  struct ViewCost {
    double decode = 0, flushes = 0, blocks = 0;
    double view_seconds() const { return flushes * kFlushSeconds + blocks * kBlockFaultSeconds; }
    double seconds() const { return decode + view_seconds(); }
  };
  auto view_cost = [&](const std::vector<bool>& pin, uint64_t used) {
    ViewCost c;
    uint64_t view_bytes = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      if (pin[i]) continue;
      if (is_view(i)) {
        view_bytes += p.tensors[i].bytes;
      } else {
        c.decode += p.tensors[i].decode_seconds;
      }
    }
    const uint64_t win = window(pin);
    if (used + win > p.budget_bytes) c.decode = std::numeric_limits<double>::infinity();
    if (view_bytes == 0) return c;
    // A flush frees about the room beside pinned tensors and window less two blocks (the views
    // held across it and partial blocks; fitted to the measured flushes per token at 0-16 blocks).
    const uint64_t w = win + 2 * p.view_block, room = p.budget_bytes > used + w ? p.budget_bytes - used - w : 0;
    c.flushes = double(view_bytes) / double(std::max(room, p.view_block));
    // A repack stores the views back to back: the blocks they fill, plus the one the run ends in,
    // plus one per flush (the block a released view shares with the next one is given back too).
    c.blocks = double(view_bytes) / double(p.view_block) + 1 + c.flushes;
    return c;
  };
  auto pinned_bytes = [&](const std::vector<bool>& pin) {
    uint64_t b = 0;
    for (size_t i = 0; i < pin.size(); ++i) b += pin[i] ? p.tensors[i].bytes : 0;
    return b;
  };
  auto choose_pin_prefix = [&](std::vector<bool>& pin, const std::vector<size_t>& order) {
    std::vector<bool> cur(pin.size(), false);
    uint64_t used = 0;
    size_t best_k = 0;
    double best = view_cost(cur, 0).seconds();
    for (size_t k = 0; k < order.size(); ++k) {
      cur[order[k]] = true;
      used += p.tensors[order[k]].bytes;
      const double c = view_cost(cur, used).seconds();
      if (c < best * (1 - 1e-9)) {
        best = c;
        best_k = k + 1;
      }
    }
    pin.assign(pin.size(), false);
    for (size_t k = 0; k < best_k; ++k) pin[order[k]] = true;
    // Of the rest, tensors that would not be views (norms, F32) are pinned when that costs no
    // more: they are decoded or copied on every token otherwise, for almost no room.
    for (size_t k = best_k; k < order.size(); ++k) {
      if (is_view(order[k])) continue;
      pin[order[k]] = true;
      const double c = view_cost(pin, pinned_bytes(pin)).seconds();
      if (c <= best) best = c;
      else pin[order[k]] = false;
    }
  };

  std::vector<bool> pinned(p.tensors.size(), false);
  p.budget_bytes = o.budget.resolve(p.weight_bytes);
  // Views in blocks need a larger window (a view holds the blocks it overlaps); they are used
  // whenever that window fits with two blocks to spare: a 4 KiB view costs a page fault per 64 KiB
  // of fault-around and a madvise on every release, and measured 0.45-0.6x of blocks' tok/s at
  // 40 % (110M Q4_0 / Q8_0, session 7; the former rule, budget >= 2 windows, kept 40 % on bytes).
  // A small model at a small budget, whose tensors are smaller than a block, streams by bytes.
  p.view_block = p.budget_bytes == kUnlimited ? 0 : o.view_block;
  // Decided on the window as if every streamable tensor were a view, so that the plan made for
  // `--repack` and the plan of the repacked file decide alike (else they pin different tensors
  // and the repacked file streams some compressed ones: measured 0.26x at 40 %).
  if (p.view_block && p.budget_bytes < window(pinned, true) + 2 * p.view_block) p.view_block = 0;
  p.min_working_set = window(pinned);
  if (p.budget_bytes < p.min_working_set)
    fail(ExitCode::resource, r.source() + ": memory budget of " + mib(p.budget_bytes) +
                                 " is below the smallest working set of " + mib(p.min_working_set) +
                                 " (three tensors of a layer, or the largest tensor, plus one chunk); give at least that");

  // A budget that holds every tensor keeps every tensor: nothing streams, so no window is needed
  // (100 % ran as a streaming plan with 6 MiB of views per token when it also asked for a window).
  if (p.budget_bytes == kUnlimited || p.budget_bytes >= p.weight_bytes) {
    pinned.assign(p.tensors.size(), true);
  } else {
    // Greedy: repeatedly pin the tensor with the most decode seconds saved per byte of net budget
    // cost (its bytes plus the change of the window, which shrinks when the largest streamed
    // tensor gets pinned). Ties keep container order. O(n^2) window evaluations: n is ~10^2-10^3.
    uint64_t used = 0;  // pinned bytes
    uint64_t cur_window = p.min_working_set;
    std::vector<size_t> pin_order;
    for (;;) {
      size_t best = SIZE_MAX;
      double best_score = -1;
      uint64_t best_window = 0;
      for (size_t i = 0; i < p.tensors.size(); ++i) {
        if (pinned[i]) continue;
        pinned[i] = true;
        const uint64_t w = window(pinned);
        pinned[i] = false;
        if (used + p.tensors[i].bytes + w > p.budget_bytes) continue;
        const double net = std::max<double>(1.0, double(p.tensors[i].bytes) + double(w) - double(cur_window));
        const double score = p.tensors[i].decode_seconds / net;
        if (score > best_score) {
          best_score = score;
          best = i;
          best_window = w;
        }
      }
      if (best == SIZE_MAX) break;
      pinned[best] = true;
      used += p.tensors[best].bytes;
      cur_window = best_window;
      pin_order.push_back(best);
    }
    if (p.view_block) choose_pin_prefix(pinned, pin_order);
  }
  p.working_set = std::all_of(pinned.begin(), pinned.end(), [](bool b) { return b; }) ? 0 : window(pinned);
  if (p.view_block && p.budget_bytes != kUnlimited) {
    const ViewCost vc = view_cost(pinned, pinned_bytes(pinned));
    p.view_flushes_per_token = vc.flushes;
    p.view_blocks_per_token = vc.blocks;
    p.view_seconds_per_token = vc.view_seconds();
  }
  uint64_t streamed_decode_bytes = 0;
  double streamed_one_thread = 0;
  double pending_raw_decode = 0, pending_raw_read = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    auto& tp = p.tensors[i];
    tp.pinned = pinned[i];
    p.pinned_by_index[idx[i]] = pinned[i];
    if (pinned[i]) {
      p.pinned_bytes += tp.bytes;
      continue;
    }
    const auto& t = ix.tensors[idx[i]];
    p.streamed_bytes_per_token += tp.bytes_per_pass;
    p.streamed_stored_per_token += tp.row_access ? (t.n_chunks ? tp.stored_bytes / t.n_chunks : 0) : tp.stored_bytes;
    streamed_decode_bytes += tp.bytes_per_pass;
    streamed_one_thread += tp.decode_seconds;
    // The chunks of one tensor decode in parallel: at most min(threads, chunks) at a time.
    p.decode_seconds_per_token += tp.decode_seconds / double(std::max<uint32_t>(1, std::min<uint32_t>(uint32_t(p.threads), t.n_chunks)));
  }
  if (streamed_decode_bytes > 0) {
    p.decode_gbps_one_thread = double(streamed_decode_bytes) / streamed_one_thread / 1e9;
  } else {
    double s = 0;
    for (const auto& tp : p.tensors) s += tp.decode_seconds;
    uint64_t b = 0;
    for (const auto& tp : p.tensors) b += tp.bytes_per_pass;
    p.decode_gbps_one_thread = s > 0 ? double(b) / s / 1e9 : 0;
  }
  // Raw storage of the streamed tensors: what a raw chunk costs to "decode" (checksum + copy).
  double raw_cost = 1.0 / codec_decode_speed({CodecId::raw, 0});
  if (o.measured_speeds) {
    const size_t n = 1u << 20;
    AlignedBuf a(n), b(n);
    std::fill(a.p, a.p + n, uint8_t(7));
    double best = std::numeric_limits<double>::infinity();
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = Clock::now();
      sink = sink + xxh3(std::span<const uint8_t>(a.p, n));
      std::copy(a.p, a.p + n, b.p);
      sink = sink + xxh3(std::span<const uint8_t>(b.p, n));
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    raw_cost = best / double(n);
  }
  p.raw_gbps_one_thread = 1e-9 / raw_cost;
  {
    std::vector<std::pair<double, size_t>> order;
    double raw_decode = 0, raw_read = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      const auto& tp = p.tensors[i];
      if (tp.pinned) continue;
      const auto& t = ix.tensors[idx[i]];
      const double par = double(std::max<uint32_t>(1, std::min<uint32_t>(uint32_t(p.threads), t.n_chunks)));
      if (tp.row_access) {  // one chunk per token: keep it compressed
        raw_decode += tp.decode_seconds / par;
        raw_read += double(t.n_chunks ? tp.stored_bytes / t.n_chunks : 0);
        continue;
      }
      order.push_back({tp.decode_seconds, i});
      // The repack writes it as one raw chunk: zero-copy (no per-token cost) when the loader
      // maps it, checksum + copy otherwise (throttled reads, F32 rows needing 4-byte alignment).
      const bool zc = o.zero_copy && o.read_throttle <= 0 && t.type != GgmlType::F32 && t.type != GgmlType::I32 &&
                      t.type != GgmlType::I64 && t.type != GgmlType::F64 && tp.bytes <= kDcqMaxChunkBytes;
      raw_decode += zc ? 0.0 : raw_cost * double(tp.bytes);  // one chunk: one thread
      raw_read += double(tp.bytes);
      p.raw_extra_file_bytes += tp.bytes > tp.stored_bytes ? tp.bytes - tp.stored_bytes : 0;
    }
    std::sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (const auto& [s, i] : order) p.store_raw.push_back(p.tensors[i].name);
    pending_raw_decode = raw_decode;
    pending_raw_read = o.read_throttle > 0 ? raw_read / o.read_throttle : 0;
  }
  if (o.read_throttle > 0) p.read_seconds_per_token = double(p.streamed_stored_per_token) / o.read_throttle;
  if (o.measure_compute) p.compute_seconds_per_token = compute_seconds(r, p.tensors, idx, p.threads);
  const double per_token = p.compute_seconds_per_token + p.decode_seconds_per_token + p.read_seconds_per_token +
                           p.view_seconds_per_token;
  p.predicted_tok_s = per_token > 0 ? 1.0 / per_token : 0;
  p.resident_tok_s = p.compute_seconds_per_token > 0 ? 1.0 / p.compute_seconds_per_token : 0;
  // The physical ceiling: even with decoding perfectly hidden behind compute, a token cannot be
  // faster than streaming its unpinned bytes through the decoders (all threads) and the device.
  const double bound = std::max(p.decode_seconds_per_token, p.read_seconds_per_token);
  p.limit_tok_s = bound > 0 ? 1.0 / std::max(bound, p.compute_seconds_per_token) : p.resident_tok_s;
  const double raw_per_token = p.compute_seconds_per_token + pending_raw_decode + pending_raw_read + p.view_seconds_per_token;
  p.predicted_tok_s_if_raw = raw_per_token > 0 ? 1.0 / raw_per_token : 0;
  return p;
}

nlohmann::json LoadPlan::to_json(bool per_tensor) const {
  nlohmann::json j;
  j["budget_bytes"] = budget_bytes == kUnlimited ? nlohmann::json(nullptr) : nlohmann::json(budget_bytes);
  j["weight_bytes"] = weight_bytes;
  j["stored_bytes"] = stored_bytes;
  j["min_working_set_bytes"] = min_working_set;
  j["working_set_bytes"] = working_set;
  j["view_flushes_per_token"] = view_flushes_per_token;
  j["view_blocks_per_token"] = view_blocks_per_token;
  j["view_seconds_per_token"] = view_seconds_per_token;
  j["view_block_bytes"] = view_block;
  j["pinned_bytes"] = pinned_bytes;
  j["streamed_bytes_per_token"] = streamed_bytes_per_token;
  j["streamed_stored_bytes_per_token"] = streamed_stored_per_token;
  j["threads"] = threads;
  j["decode_gbps_one_thread"] = decode_gbps_one_thread;
  j["decode_seconds_per_token"] = decode_seconds_per_token;
  j["read_seconds_per_token"] = read_seconds_per_token;
  j["compute_seconds_per_token"] = compute_seconds_per_token;
  j["predicted_tok_s"] = predicted_tok_s;
  j["resident_tok_s"] = resident_tok_s;
  j["limit_tok_s"] = limit_tok_s;
  j["store_raw"] = store_raw;
  j["raw_gbps_one_thread"] = raw_gbps_one_thread;
  j["predicted_tok_s_if_raw"] = predicted_tok_s_if_raw;
  j["raw_extra_file_bytes"] = raw_extra_file_bytes;
  if (per_tensor) {
    auto& a = j["tensors"] = nlohmann::json::array();
    for (const auto& t : tensors)
      a.push_back({{"name", t.name}, {"pinned", t.pinned}, {"bytes", t.bytes}, {"stored_bytes", t.stored_bytes},
                   {"bytes_per_token", t.bytes_per_pass}, {"decode_seconds_per_token", t.decode_seconds},
                   {"decode_gbps", t.decode_seconds > 0 ? double(t.bytes_per_pass) / t.decode_seconds / 1e9 : 0.0},
                   {"encoding", t.encoding}, {"row_access", t.row_access}});
  }
  return j;
}

}  // namespace dcq
