// Per-tensor type choice for llama.cpp file types, mirroring llama-quant.cpp
// (tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback) for the file
// types dcq can write. The rules depend on the order llama.cpp visits tensors (its weights map
// sorts by layer number, then name), so the whole model is planned in that order at once.
#include <algorithm>
#include <cctype>
#include <numeric>
#include <type_traits>
#include <variant>

#include "dcq/error.hpp"
#include "dcq/quant_plan.hpp"

namespace dcq {

namespace {

struct FileTypeInfo {
  FileType ft;
  std::string_view name;
  GgmlType base;
};

constexpr FileTypeInfo kFileTypes[] = {
    {FileType::Q4_0, "Q4_0", GgmlType::Q4_0},       {FileType::Q4_1, "Q4_1", GgmlType::Q4_1},
    {FileType::Q5_0, "Q5_0", GgmlType::Q5_0},       {FileType::Q5_1, "Q5_1", GgmlType::Q5_1},
    {FileType::IQ4_NL, "IQ4_NL", GgmlType::IQ4_NL}, {FileType::IQ4_XS, "IQ4_XS", GgmlType::IQ4_XS},
    {FileType::Q2_K, "Q2_K", GgmlType::Q2_K},       {FileType::Q3_K_S, "Q3_K_S", GgmlType::Q3_K},
    {FileType::Q3_K_M, "Q3_K_M", GgmlType::Q3_K},   {FileType::Q3_K_L, "Q3_K_L", GgmlType::Q3_K},
    {FileType::Q4_K_S, "Q4_K_S", GgmlType::Q4_K},   {FileType::Q4_K_M, "Q4_K_M", GgmlType::Q4_K},
    {FileType::Q5_K_S, "Q5_K_S", GgmlType::Q5_K},   {FileType::Q5_K_M, "Q5_K_M", GgmlType::Q5_K},
    {FileType::Q6_K, "Q6_K", GgmlType::Q6_K},       {FileType::Q8_0, "Q8_0", GgmlType::Q8_0},
    {FileType::F16, "F16", GgmlType::F16},          {FileType::BF16, "BF16", GgmlType::BF16},
    {FileType::F32, "F32", GgmlType::F32},
};

const FileTypeInfo& info(FileType ft) {
  for (const auto& i : kFileTypes)
    if (i.ft == ft) return i;
  fail_usage("unknown file type value " + std::to_string(static_cast<int>(ft)));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// ---- model facts the rules use (read straight from the metadata variant: no io dependency) ----

std::optional<int64_t> value_int(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T>) return static_cast<int64_t>(x);
        else if constexpr (std::is_same_v<T, GgufArray>) {
          // Per-layer arrays (e.g. head_count_kv of hybrid models): llama.cpp's rules read layer 0.
          if (x.items.empty()) return std::nullopt;
          return value_int(x.items.front());
        } else return std::nullopt;
      },
      v.v);
}

const GgufValue* find_meta(const Model& m, std::string_view key) {
  for (const auto& kv : m.metadata)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

int64_t meta_int(const Model& m, const std::string& key, int64_t fallback) {
  const GgufValue* v = find_meta(m, key);
  if (!v) return fallback;
  return value_int(*v).value_or(fallback);
}

struct ModelFacts {
  std::string arch;
  int64_t n_layer = 0;
  int64_t n_gqa = 0;  // n_head / n_head_kv (0 when unknown), as llama_hparams::n_gqa
  int64_t n_expert = 0;
  bool is_70b = false;
  bool falcon() const { return arch == "falcon"; }
};

ModelFacts model_facts(const Model& m) {
  ModelFacts f;
  if (const GgufValue* a = find_meta(m, "general.architecture"))
    if (const auto* s = std::get_if<std::string>(&a->v)) f.arch = *s;
  f.n_layer = meta_int(m, f.arch + ".block_count", 0);
  const int64_t n_head = meta_int(m, f.arch + ".attention.head_count", 0);
  const int64_t n_head_kv = meta_int(m, f.arch + ".attention.head_count_kv", n_head);
  f.n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 0;
  f.n_expert = meta_int(m, f.arch + ".expert_count", 0);
  // llama.cpp's LLM_TYPE_70B, which only the attn_v rule looks at.
  if (f.arch == "llama") f.is_70b = f.n_layer == 80 && n_head != n_head_kv;
  else if (f.arch == "deci" || f.arch == "olmo" || f.arch == "qwen2") f.is_70b = f.n_layer == 80;
  else if (f.arch == "jais2") f.is_70b = f.n_layer == 68;
  return f;
}

// ---- tensor names ----

enum class Category { token_embd, attn_q, attn_v, attn_k, attn_qkv, attn_kv_b, attn_output, ffn_up, ffn_gate, ffn_down, output, other };

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Category category(std::string_view name) {
  if (name == "output.weight") return Category::output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::token_embd;
  if (contains(name, "attn_qkv.weight")) return Category::attn_qkv;
  if (contains(name, "attn_kv_b.weight")) return Category::attn_kv_b;
  if (contains(name, "attn_v.weight")) return Category::attn_v;
  if (contains(name, "attn_k.weight")) return Category::attn_k;
  if (contains(name, "attn_q.weight")) return Category::attn_q;
  if (contains(name, "attn_output.weight")) return Category::attn_output;
  if (contains(name, "ffn_up")) return Category::ffn_up;
  if (contains(name, "ffn_gate")) return Category::ffn_gate;
  if (contains(name, "ffn_down")) return Category::ffn_down;
  return Category::other;
}

// attn_v-like tensors are the most sensitive to quantization and share one counter.
bool is_attn_v_like(Category c) { return c == Category::attn_v || c == Category::attn_qkv || c == Category::attn_kv_b; }

// ggml_n_dims: trailing dimensions of size 1 do not count.
int n_dims(const Tensor& t) {
  for (int i = int(t.ne.size()) - 1; i >= 1; --i)
    if (t.ne[size_t(i)] > 1) return i + 1;
  return 1;
}

// Why llama.cpp leaves a tensor as it is (tensor_allows_quantization), or nullopt if it may be
// quantized.
std::optional<std::string> not_quantizable(const Tensor& t) {
  const std::string_view name = t.name;
  if (n_dims(t) < 2) return "1-D tensor: kept " + std::string(type_name(t.type));
  if (name.size() < 6 || name.substr(name.size() - 6) != "weight")
    return "name does not end in 'weight': kept " + std::string(type_name(t.type));
  static constexpr std::string_view kKeptParts[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
      "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
      "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
      "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
      "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
      "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
      "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
      "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  for (auto part : kKeptParts)
    if (contains(name, part)) {
      std::string why = "tensors named *";  // built by append: GCC 12 warns falsely on "'" + s
      why.append(part).append("* are not quantized: kept ").append(type_name(t.type));
      return why;
    }
  if (name == "position_embd.weight" || name == "token_types.weight")
    return "position/token-type embeddings are not quantized: kept " + std::string(type_name(t.type));
  return std::nullopt;
}

// The layer number llama.cpp's weight order sorts by ("blk.%d." as sscanf reads it), -1 if none.
int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  size_t i = 4;
  bool neg = false;
  if (i < name.size() && (name[i] == '-' || name[i] == '+')) neg = name[i++] == '-';
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  long v = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && v < (1L << 30)) v = v * 10 + (name[i++] - '0');
  return int(neg ? -v : v);
}

bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

std::string tname(GgmlType t) { return std::string(type_name(t)); }

// State of one planning pass: the counters llama.cpp keeps in quantize_state_impl.
struct Planner {
  FileType ft;
  const ModelFacts& facts;
  bool tied_embeddings;
  int64_t n_attention_wv = 0;
  int64_t i_attention_wv = 0;
  int64_t i_ffn_down = 0;

  // llama_tensor_get_type_impl for the file types we support. `why` collects the rule applied.
  GgmlType mix_rule(GgmlType type, const Tensor& t, Category cat, std::string& why) {
    const std::string ftn(file_type_name(ft));
    auto set = [&](GgmlType nt, const std::string& rule) {
      if (nt != type) why = ftn + ": " + rule + " -> " + tname(nt);
      type = nt;
    };
    if (cat == Category::output || (tied_embeddings && cat == Category::token_embd)) {
      const int64_t nx = t.ne[0];
      const std::string what = cat == Category::output ? "output" : "tied token_embd";
      if (facts.falcon() || nx % traits(type).block_size != 0) set(GgmlType::Q8_0, what + " (row width " + std::to_string(nx) + " not a multiple of " + std::to_string(traits(type).block_size) + ")");
      else if (type != GgmlType::Q8_0) set(GgmlType::Q6_K, what + " gets Q6_K");
    } else if (cat == Category::token_embd) {
      // No rule for the file types we support: the base type.
    } else if (is_attn_v_like(cat)) {
      const int64_t i = i_attention_wv, n = n_attention_wv;
      const std::string at = "attn_v #" + std::to_string(i) + " of " + std::to_string(n);
      if (ft == FileType::Q2_K) set(facts.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K, at);
      else if (ft == FileType::Q3_K_M) set(i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K, at);
      else if (ft == FileType::Q3_K_L) set(GgmlType::Q5_K, at);
      else if ((ft == FileType::IQ4_NL || ft == FileType::IQ4_XS) && facts.n_gqa >= 4) set(GgmlType::Q5_K, at + " with GQA >= 4");
      else if ((ft == FileType::Q4_K_M || ft == FileType::Q5_K_M) && use_more_bits(i, n)) set(GgmlType::Q6_K, at + " (use-more-bits layer)");
      else if (ft == FileType::Q4_K_S && i < 4) set(GgmlType::Q5_K, at + " (first four)");
      if (facts.is_70b && (type == GgmlType::Q3_K || type == GgmlType::Q4_K)) set(GgmlType::Q5_K, "attn_v of a 70B model");
      if (facts.n_expert == 8) set(GgmlType::Q8_0, "attn_v of an 8-expert model");
      ++i_attention_wv;
    } else if (cat == Category::attn_k) {
      if (facts.n_expert == 8) set(GgmlType::Q8_0, "attn_k of an 8-expert model");
    } else if (cat == Category::ffn_down) {
      // With experts llama.cpp reads the layer from the name; otherwise it counts ffn_down tensors.
      int64_t i = i_ffn_down;
      const int64_t n = facts.n_layer;
      if (facts.n_expert > 1) {
        i = layer_of(t.name);
        if (i < 0 || i >= n) fail_input("tensor " + t.name + ": cannot determine its layer (of " + std::to_string(n) + ")");
      }
      const std::string at = "ffn_down of layer " + std::to_string(i) + " of " + std::to_string(n);
      if (ft == FileType::Q2_K) set(GgmlType::Q3_K, at);
      else if (ft == FileType::Q3_K_M)
        set(i < n / 16 ? GgmlType::Q5_K : (!facts.falcon() || use_more_bits(i, n)) ? GgmlType::Q4_K : GgmlType::Q3_K, at);
      else if (ft == FileType::Q3_K_L) set(facts.falcon() ? GgmlType::Q4_K : GgmlType::Q5_K, at);
      else if (ft == FileType::Q4_K_M) {
        if (facts.falcon()) set(i < n / 16 ? GgmlType::Q6_K : use_more_bits(i, n) ? GgmlType::Q5_K : GgmlType::Q4_K, at);
        else if (use_more_bits(i, n)) set(GgmlType::Q6_K, at + " (use-more-bits layer)");
      } else if (i < n / 8 && (ft == FileType::IQ4_NL || ft == FileType::IQ4_XS)) set(GgmlType::Q5_K, at + " (first eighth)");
      else if (ft == FileType::Q5_K_M && use_more_bits(i, n)) set(GgmlType::Q6_K, at + " (use-more-bits layer)");
      else if (ft == FileType::Q4_K_S && !facts.falcon() && i < n / 8) set(GgmlType::Q5_K, at + " (first eighth)");
      ++i_ffn_down;
    } else if (cat == Category::attn_output) {
      if (!facts.falcon()) {
        if (facts.n_expert == 8) {
          if (ft == FileType::Q2_K || ft == FileType::Q3_K_S || ft == FileType::Q3_K_M || ft == FileType::IQ4_NL ||
              ft == FileType::Q4_K_S || ft == FileType::Q4_K_M || ft == FileType::IQ4_XS)
            set(GgmlType::Q5_K, "attn_output of an 8-expert model");
        } else if (ft == FileType::Q2_K) set(GgmlType::Q3_K, "attn_output");
        else if (ft == FileType::Q3_K_M) set(GgmlType::Q4_K, "attn_output");
        else if (ft == FileType::Q3_K_L) set(GgmlType::Q5_K, "attn_output");
      } else if (ft == FileType::Q3_K_L) {
        set(GgmlType::Q4_K, "falcon attn_output");
      }
    }
    return type;
  }

  TypeChoice choose(const Tensor& t, bool pure) {
    if (auto why = not_quantizable(t)) return {t.type, *why};
    const GgmlType base = file_type_default(ft);
    if (!traits(base).quantized) return {base, "file type " + std::string(file_type_name(ft))};
    std::string why = "file type " + std::string(file_type_name(ft)) + (pure ? " (pure)" : "");
    GgmlType type = base;
    if (!pure) type = mix_rule(type, t, category(t.name), why);
    return fallback(t, type, why);
  }

  // tensor_type_fallback: a row must be a whole number of blocks.
  static TypeChoice fallback(const Tensor& t, GgmlType type, const std::string& why) {
    const int64_t ncols = t.ne[0];
    const int64_t bs = traits(type).block_size;
    if (ncols % bs == 0) return {type, why};
    // Keep the mix rule that picked the type (if any) in front of the fallback.
    std::string reason = why.rfind("file type ", 0) == 0 ? std::string() : why + "; ";
    reason += "fallback: row width " + std::to_string(ncols) + " not a multiple of " + std::to_string(bs) +
                         " (" + tname(type) + ")";
    GgmlType next;
    switch (type) {
      case GgmlType::IQ4_XS: next = GgmlType::IQ4_NL; break;
      case GgmlType::Q2_K:
      case GgmlType::Q3_K: next = GgmlType::Q4_0; break;
      case GgmlType::Q4_K: next = GgmlType::Q5_0; break;
      case GgmlType::Q5_K: next = GgmlType::Q5_1; break;
      case GgmlType::Q6_K: next = GgmlType::Q8_0; break;
      default:
        // llama.cpp has no fallback here and refuses the model; F16 is what its users then
        // force (--tensor-type ...=f16) and what the reference files hold.
        return {GgmlType::F16, reason + " -> F16 (llama.cpp defines no fallback for " + tname(type) +
                                   "; F16 as with --tensor-type <name>=f16)"};
    }
    if (ncols % traits(next).block_size != 0) {
      return {GgmlType::F16, reason + " -> " + tname(next) + " does not fit either (multiple of " +
                                 std::to_string(traits(next).block_size) + ") -> F16"};
    }
    return {next, reason + " -> " + tname(next)};
  }
};

}  // namespace

const std::vector<FileType>& all_file_types() {
  static const std::vector<FileType> v = [] {
    std::vector<FileType> r;
    for (const auto& i : kFileTypes) r.push_back(i.ft);
    return r;
  }();
  return v;
}

std::optional<FileType> parse_file_type(std::string_view name) {
  for (const auto& i : kFileTypes)
    if (iequals(name, i.name)) return i.ft;
  if (iequals(name, "Q3_K")) return FileType::Q3_K_M;
  if (iequals(name, "Q4_K")) return FileType::Q4_K_M;
  if (iequals(name, "Q5_K")) return FileType::Q5_K_M;
  return std::nullopt;
}

std::string_view file_type_name(FileType ft) { return info(ft).name; }

std::optional<FileType> file_type_from_value(int64_t value) {
  for (const auto& i : kFileTypes)
    if (static_cast<int64_t>(i.ft) == value) return i.ft;
  return std::nullopt;
}

GgmlType file_type_default(FileType ft) { return info(ft).base; }

std::vector<TypeChoice> choose_tensor_types(FileType ft, const Model& model, bool pure) {
  (void)info(ft);  // validates ft
  const ModelFacts facts = model_facts(model);
  const auto& ts = model.tensors;
  Planner p{ft, facts, true};
  for (const Tensor& t : ts) {
    if (t.ne.empty()) fail_input("tensor " + t.name + " has no dimensions");
    const Category c = category(t.name);
    if (is_attn_v_like(c)) ++p.n_attention_wv;
    if (c == Category::output) p.tied_embeddings = false;
  }
  // llama.cpp's visiting order: layer number ("blk.N."; others first), then name.
  std::vector<size_t> order(ts.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::vector<int> layer(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) layer[i] = layer_of(ts[i].name);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (layer[a] != layer[b]) return layer[a] < layer[b];
    return ts[a].name < ts[b].name;
  });
  std::vector<TypeChoice> out(ts.size());
  for (size_t i : order) out[i] = p.choose(ts[i], pure);
  return out;
}

TypeChoice choose_tensor_type(FileType ft, const Model& model, const Tensor& t, bool pure) {
  // The tensor itself, or (for a copy) the model's tensor of the same name.
  for (size_t i = 0; i < model.tensors.size(); ++i)
    if (&model.tensors[i] == &t) return choose_tensor_types(ft, model, pure)[i];
  for (size_t i = 0; i < model.tensors.size(); ++i)
    if (model.tensors[i].name == t.name) return choose_tensor_types(ft, model, pure)[i];
  fail_input("tensor " + t.name + " is not a tensor of the model being planned");
}

}  // namespace dcq
