// Names, masks and the pruned GGUF writer.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/prune.hpp"

namespace dcq {

std::string_view units_name(PruneUnits u) { return u == PruneUnits::blocks ? "blocks" : "sublayers"; }

std::string_view method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::evop: return "evop";
    case PruneMethod::shortgpt: return "shortgpt";
    case PruneMethod::sleb: return "sleb";
    case PruneMethod::random: return "random";
    case PruneMethod::exhaustive: return "exhaustive";
  }
  return "?";
}

PruneUnits parse_units(std::string_view s) {
  if (s == "blocks") return PruneUnits::blocks;
  if (s == "sublayers") return PruneUnits::sublayers;
  fail_usage("unknown --units '" + std::string(s) + "' (blocks, sublayers)");
}

PruneMethod parse_method(std::string_view s) {
  for (PruneMethod m : {PruneMethod::evop, PruneMethod::shortgpt, PruneMethod::sleb, PruneMethod::random,
                        PruneMethod::exhaustive})
    if (s == method_name(m)) return m;
  fail_usage("unknown --method '" + std::string(s) + "' (evop, shortgpt, sleb, random, exhaustive)");
}

CalibSampling parse_sampling(std::string_view s) {
  if (s == "ccds") return CalibSampling::ccds;
  if (s == "random") return CalibSampling::random;
  fail_usage("unknown --calib-sampling '" + std::string(s) + "' (ccds, random)");
}

int unit_count(PruneUnits units, int n_layer) { return units == PruneUnits::blocks ? n_layer : 2 * n_layer; }

void mask_to_skips(PruneUnits units, const UnitMask& mask, std::vector<uint8_t>& sa, std::vector<uint8_t>& sf) {
  const size_t L = units == PruneUnits::blocks ? mask.size() : mask.size() / 2;
  sa.assign(L, 0);
  sf.assign(L, 0);
  for (size_t u = 0; u < mask.size(); ++u) {
    if (!mask[u]) continue;
    if (units == PruneUnits::blocks) {
      sa[u] = sf[u] = 1;
    } else {
      (u % 2 ? sf : sa)[u / 2] = 1;
    }
  }
}

std::string unit_name(PruneUnits units, int unit) {
  if (units == PruneUnits::blocks) return "blk." + std::to_string(unit);
  return "blk." + std::to_string(unit / 2) + (unit % 2 ? ".ffn" : ".attn");
}

int sparsity_count(double s, int n_units, const std::string& source) {
  char shown[32];
  std::snprintf(shown, sizeof shown, "%g", s);
  if (!(s >= 0) || !std::isfinite(s)) fail_usage("--sparsity must be a count of units or a fraction in (0, 1)");
  int k;
  if (s < 1) {
    k = int(std::lround(s * n_units));
  } else {
    if (s != std::floor(s)) fail_usage("--sparsity " + std::string(shown) + " is neither a whole count nor a fraction below 1");
    k = s > 1e9 ? n_units : int(s);
  }
  if (k < 1)
    fail_input(source + ": sparsity " + std::string(shown) + " removes none of its " + std::to_string(n_units) + " units");
  if (k >= n_units)
    fail_input(source + ": sparsity " + std::string(shown) + " removes every one of its " + std::to_string(n_units) +
               " units (at most " + std::to_string(n_units - 1) + ")");
  return k;
}

namespace {

// "blk.<n>.<rest>" -> n and rest; false for other names.
bool split_block_name(const std::string& name, int& layer, std::string& rest) {
  if (name.rfind("blk.", 0) != 0) return false;
  const char* b = name.data() + 4;
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, layer);
  if (ec != std::errc() || p == b || p == e || *p != '.') return false;
  rest = std::string(p);
  return true;
}

bool is_attn_matrix(const std::string& rest) {
  for (const char* t : {".attn_q.", ".attn_k.", ".attn_v.", ".attn_output."})
    if (rest.rfind(t, 0) == 0) return true;
  return false;
}
bool is_ffn_matrix(const std::string& rest) {
  for (const char* t : {".ffn_gate.", ".ffn_up.", ".ffn_down."})
    if (rest.rfind(t, 0) == 0) return true;
  return false;
}

GgufValue int_array(const std::vector<int>& v) {
  GgufArray a;
  a.elem = GgufType::INT32;
  for (int x : v) a.items.push_back(GgufValue{int32_t(x)});
  return GgufValue{a};
}

std::vector<uint8_t> read_flags(const Model& m, const char* key, int n_layer) {
  std::vector<uint8_t> f(size_t(n_layer), 0);
  if (const GgufValue* v = m.find_kv(key)) {
    for (const GgufValue& item : v->as_array(key).items) {
      const int64_t l = item.as_int(key);
      if (l < 0 || l >= n_layer) fail_input(m.source.string() + ": " + key + " names layer " + std::to_string(l));
      f[size_t(l)] = 1;
    }
  }
  return f;
}

}  // namespace

void write_pruned_gguf(const Model& model, PruneUnits units, const UnitMask& mask, const std::filesystem::path& path,
                       bool force) {
  const std::string src = model.source.string();
  const GgufValue* arch_v = model.find_kv("general.architecture");
  if (!arch_v) fail_input(src + ": no general.architecture in metadata");
  const std::string arch = arch_v->as_string("general.architecture");
  const std::string count_key = arch + ".block_count";
  const GgufValue* count_v = model.find_kv(count_key);
  if (!count_v) fail_input(src + ": metadata key " + count_key + " is missing");
  const int64_t L64 = count_v->as_int(count_key);
  if (L64 < 1 || L64 > 1024) fail_input(src + ": " + count_key + " is out of range");
  const int L = int(L64);
  if (mask.size() != size_t(unit_count(units, L)))
    fail_usage("pruning mask has " + std::to_string(mask.size()) + " units for a model of " + std::to_string(L) +
               " layers");
  std::vector<uint8_t> sa, sf;
  mask_to_skips(units, mask, sa, sf);
  // Sub-layers pruned earlier (a model pruned twice) stay pruned.
  const std::vector<uint8_t> old_a = read_flags(model, "dcq.pruned.attn", L), old_f = read_flags(model, "dcq.pruned.ffn", L);
  for (int l = 0; l < L; ++l) {
    sa[size_t(l)] |= old_a[size_t(l)];
    sf[size_t(l)] |= old_f[size_t(l)];
  }
  // A layer with both halves removed is a removed block.
  std::vector<int> new_index(size_t(L), -1);
  int kept = 0;
  for (int l = 0; l < L; ++l) {
    const bool drop = units == PruneUnits::blocks && mask[size_t(l)];
    if (!drop) new_index[size_t(l)] = kept++;
  }
  if (kept < 1) fail_usage("pruning would remove every block");

  std::vector<GgufKV> meta;
  for (const GgufKV& kv : model.metadata) {
    if (kv.key == "dcq.pruned.attn" || kv.key == "dcq.pruned.ffn") continue;
    GgufKV out = kv;
    // Per-layer arrays of this architecture (one entry per block) lose the removed blocks' entries.
    if (kv.key.rfind(arch + ".", 0) == 0 && kv.value.type() == GgufType::ARRAY &&
        kv.value.as_array(kv.key).items.size() == size_t(L) && kept != L) {
      GgufArray a = kv.value.as_array(kv.key);
      std::vector<GgufValue> items;
      for (int l = 0; l < L; ++l)
        if (new_index[size_t(l)] >= 0) items.push_back(a.items[size_t(l)]);
      a.items = std::move(items);
      out.value = GgufValue{a};
    }
    meta.push_back(std::move(out));
  }
  for (GgufKV& kv : meta)
    if (kv.key == count_key) {
      switch (kv.value.type()) {  // keep the key's on-disk type
        case GgufType::INT32: kv.value = GgufValue{int32_t(kept)}; break;
        case GgufType::UINT64: kv.value = GgufValue{uint64_t(kept)}; break;
        case GgufType::INT64: kv.value = GgufValue{int64_t(kept)}; break;
        default: kv.value = GgufValue{uint32_t(kept)}; break;
      }
    }
  std::vector<int> pa, pf;
  for (int l = 0; l < L; ++l) {
    if (new_index[size_t(l)] < 0) continue;
    if (sa[size_t(l)]) pa.push_back(new_index[size_t(l)]);
    if (sf[size_t(l)]) pf.push_back(new_index[size_t(l)]);
  }
  if (!pa.empty()) meta.push_back({"dcq.pruned.attn", int_array(pa)});
  if (!pf.empty()) meta.push_back({"dcq.pruned.ffn", int_array(pf)});

  struct Out {
    const Tensor* t;
    bool zero;
  };
  std::vector<Out> outs;
  std::vector<GgufTensorInfo> infos;
  for (const Tensor& t : model.tensors) {
    int layer = -1;
    std::string rest;
    bool zero = false;
    std::string name = t.name;
    if (split_block_name(t.name, layer, rest)) {
      if (layer >= L) fail_input(src + ": tensor " + t.name + " belongs to no block of " + std::to_string(L));
      if (new_index[size_t(layer)] < 0) continue;
      name = "blk." + std::to_string(new_index[size_t(layer)]) + rest;
      // The removed half's matrices become zeros: attn_output / ffn_down alone would make the
      // branch exactly zero; zeroing the rest too makes them free after entropy coding.
      zero = (sa[size_t(layer)] && is_attn_matrix(rest)) || (sf[size_t(layer)] && is_ffn_matrix(rest));
    }
    if (t.data.size() != t.n_bytes()) fail_input(src + ": tensor " + t.name + " has no data in memory");
    outs.push_back({&t, zero});
    infos.push_back({name, t.type, t.ne});
  }
  GgufWriter w(path, force, meta, infos, model.format == ModelFormat::gguf ? model.gguf_version : 3);
  static const std::vector<uint8_t> zeros(size_t(1) << 16, 0);
  for (const Out& o : outs) {
    if (!o.zero) {
      w.write(o.t->data);
      continue;
    }
    for (uint64_t left = o.t->n_bytes(); left > 0;) {
      const size_t n = size_t(std::min<uint64_t>(left, zeros.size()));
      w.write({zeros.data(), n});
      left -= n;
    }
  }
  w.commit();
}

}  // namespace dcq
