// safetensors reading: one file (parse_safetensors), then a Hugging Face llama folder as a
// GGUF-named Model (read_safetensors_model). See include/dcq/safetensors.hpp for the contract.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "dcq/byte_reader.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/safetensors.hpp"
#include "io/hf_names.hpp"
#include "io/readers.hpp"
#include "io/safetensors_internal.hpp"

namespace dcq {
namespace {

using json = nlohmann::json;

std::optional<GgmlType> dtype_of(std::string_view dtype) {
  if (dtype == "F32") return GgmlType::F32;
  if (dtype == "F16") return GgmlType::F16;
  if (dtype == "BF16") return GgmlType::BF16;
  return std::nullopt;
}

bool is_known_other_dtype(std::string_view d) {
  static const std::set<std::string_view> kOthers{"BOOL", "U8", "I8", "U16", "I16", "U32", "I32",
                                                  "U64", "I64", "F64", "F8_E4M3", "F8_E5M2",
                                                  "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};
  return kOthers.contains(d);
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Parses JSON, rejecting duplicate keys of the top-level object (nlohmann would silently keep
// one of them, and a safetensors name must be unique). `what` names the document in errors.
json parse_json_unique_top(std::string_view text, const std::string& what) {
  std::unordered_set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth == 1 && ev == json::parse_event_t::key && duplicate.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    fail_input(what + ": invalid JSON: " + e.what());
  }
  if (!duplicate.empty()) fail_input(what + ": duplicate name '" + duplicate + "'");
  return j;
}

uint64_t json_u64(const json& v, const std::string& what, const std::string& source) {
  if (!v.is_number_unsigned()) fail_input(source + ": " + what + " is not a non-negative integer");
  return v.get<uint64_t>();
}

}  // namespace

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  ByteReader r(bytes, source);
  const uint64_t header_len = r.read<uint64_t>("header length");
  if (header_len > r.remaining())
    fail_input(source + ": header length " + std::to_string(header_len) + " exceeds the " +
               std::to_string(r.remaining()) + " bytes after it");
  if (header_len > kSafetensorsMaxHeader)
    fail_input(source + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
               std::to_string(kSafetensorsMaxHeader) + " bytes");
  const auto header = r.read_bytes(header_len, "header");
  const auto data = bytes.subspan(r.offset());
  const json j = parse_json_unique_top(
      std::string_view(reinterpret_cast<const char*>(header.data()), header.size()), source + ": header");
  if (!j.is_object()) fail_input(source + ": header is not a JSON object");

  SafetensorsFile out;
  struct Range { uint64_t begin, end; size_t index; };
  std::vector<Range> ranges;
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail_input(source + ": __metadata__ is not a JSON object");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail_input(source + ": __metadata__ value of '" + k + "' is not a string");
        out.metadata.emplace_back(k, v.get<std::string>());
      }
      continue;
    }
    const std::string what = "tensor '" + name + "'";
    if (!info.is_object()) fail_input(source + ": " + what + " is not a JSON object");
    const auto dt = info.find("dtype");
    const auto sh = info.find("shape");
    const auto off = info.find("data_offsets");
    if (dt == info.end() || !dt->is_string()) fail_input(source + ": " + what + " has no string dtype");
    if (sh == info.end() || !sh->is_array()) fail_input(source + ": " + what + " has no shape array");
    if (off == info.end() || !off->is_array() || off->size() != 2)
      fail_input(source + ": " + what + " has no data_offsets pair");
    const auto& dtype = dt->get_ref<const std::string&>();
    const auto type = dtype_of(dtype);
    if (!type) {
      const std::string why = is_known_other_dtype(dtype) ? "unsupported" : "unknown";
      fail_input(source + ": " + what + " has " + why + " dtype '" + dtype +
                 "' (supported: F32, F16, BF16)");
    }
    SafetensorsTensor t;
    t.name = name;
    t.type = *type;
    uint64_t n = 1;
    for (const auto& d : *sh) {
      const uint64_t dim = json_u64(d, what + " shape entry", source);
      if (dim > uint64_t(INT64_MAX) || mul_overflows(n, dim, &n))
        fail_input(source + ": " + what + " shape overflows");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t size = 0;
    if (mul_overflows(n, traits(t.type).type_size, &size))
      fail_input(source + ": " + what + " byte size overflows");
    const uint64_t begin = json_u64((*off)[0], what + " data_offsets[0]", source);
    const uint64_t end = json_u64((*off)[1], what + " data_offsets[1]", source);
    if (begin > end || end > data.size())
      fail_input(source + ": " + what + " data_offsets [" + std::to_string(begin) + ", " +
                 std::to_string(end) + "] lie outside the data section of " +
                 std::to_string(data.size()) + " bytes");
    if (end - begin != size)
      fail_input(source + ": " + what + " data_offsets span " + std::to_string(end - begin) +
                 " bytes but shape " + shape_text(t.shape) + " of " + dtype + " needs " +
                 std::to_string(size));
    t.data = data.subspan(begin, end - begin);
    ranges.push_back({begin, end, out.tensors.size()});
    out.tensors.push_back(std::move(t));
  }
  // File order is the data order; it also makes overlaps adjacent.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::vector<SafetensorsTensor> ordered;
  ordered.reserve(ranges.size());
  uint64_t prev_end = 0;
  std::string prev_name;
  for (const auto& rg : ranges) {
    auto& t = out.tensors[rg.index];
    if (rg.begin < prev_end && rg.end > rg.begin)
      fail_input(source + ": tensors '" + prev_name + "' and '" + t.name + "' overlap in the data section");
    if (rg.end > rg.begin) {
      prev_end = rg.end;
      prev_name = t.name;
    }
    ordered.push_back(std::move(t));
  }
  out.tensors = std::move(ordered);
  return out;
}

namespace io {
namespace {

int64_t config_int(const json& j, const char* key, const std::string& source, bool required, int64_t fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) fail_input(source + ": missing '" + key + "'");
    return fallback;
  }
  if (!it->is_number_integer()) fail_input(source + ": '" + key + "' is not an integer");
  const int64_t v = it->get<int64_t>();
  if (v <= 0 || v > INT32_MAX) fail_input(source + ": '" + key + "' = " + std::to_string(v) + " is out of range");
  return v;
}

double config_float(const json& j, const char* key, const std::string& source, double fallback, bool* present) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) fail_input(source + ": '" + key + "' is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v <= 0) fail_input(source + ": '" + key + "' must be a positive number");
  if (present) *present = true;
  return v;
}

}  // namespace

HfConfig parse_hf_config(std::string_view text, const std::string& source) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail_input(source + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) fail_input(source + ": is not a JSON object");
  // Only llama-shaped models map onto llama.cpp's llama tensors.
  bool llama = false;
  if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string())
    llama = *mt == "llama" || *mt == "mistral";
  if (auto ar = j.find("architectures"); ar != j.end() && ar->is_array())
    for (const auto& a : *ar)
      if (a.is_string() && (a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "LLaMAForCausalLM"))
        llama = true;
  if (!llama) fail_input(source + ": not a llama model (model_type/architectures); only llama is supported");

  HfConfig c;
  c.hidden = config_int(j, "hidden_size", source, true, 0);
  c.n_ff = config_int(j, "intermediate_size", source, true, 0);
  c.n_layer = config_int(j, "num_hidden_layers", source, true, 0);
  c.n_head = config_int(j, "num_attention_heads", source, true, 0);
  c.n_head_kv = config_int(j, "num_key_value_heads", source, false, c.n_head);
  c.has_head_dim = j.contains("head_dim") && !j["head_dim"].is_null();
  if (!c.has_head_dim && c.hidden % c.n_head != 0)
    fail_input(source + ": hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " +
               std::to_string(c.n_head));
  c.head_dim = config_int(j, "head_dim", source, false, c.hidden / c.n_head);
  if (c.head_dim % 2 != 0) fail_input(source + ": head dimension " + std::to_string(c.head_dim) + " is odd (RoPE needs pairs)");
  if (c.n_head % c.n_head_kv != 0)
    fail_input(source + ": num_attention_heads " + std::to_string(c.n_head) + " is not a multiple of num_key_value_heads " +
               std::to_string(c.n_head_kv));
  c.vocab = config_int(j, "vocab_size", source, false, 0);
  c.n_ctx = config_int(j, "max_position_embeddings", source, false, 0);
  c.rms_eps = config_float(j, "rms_norm_eps", source, c.rms_eps, nullptr);
  c.rope_theta = config_float(j, "rope_theta", source, c.rope_theta, &c.has_rope_theta);
  return c;
}

namespace {

// The shape (Hugging Face order) a llama tensor must have under `c`; empty when unknown.
std::vector<int64_t> expected_shape(std::string_view gguf_name, const HfConfig& c, int64_t vocab) {
  const int64_t q_rows = c.n_head * c.head_dim, kv_rows = c.n_head_kv * c.head_dim;
  const bool bias = gguf_name.ends_with(".bias");
  auto base = gguf_name.substr(0, gguf_name.rfind('.'));
  base = base.substr(base.rfind('.') + 1);
  int64_t rows = 0, cols = 0;  // cols 0: a vector
  if (base == "token_embd" || base == "output") rows = vocab, cols = c.hidden;
  else if (base == "output_norm" || base == "attn_norm" || base == "ffn_norm") rows = c.hidden;
  else if (base == "attn_q") rows = q_rows, cols = c.hidden;
  else if (base == "attn_k" || base == "attn_v") rows = kv_rows, cols = c.hidden;
  else if (base == "attn_output") rows = c.hidden, cols = q_rows;
  else if (base == "ffn_gate" || base == "ffn_up") rows = c.n_ff, cols = c.hidden;
  else if (base == "ffn_down") rows = c.hidden, cols = c.n_ff;
  else return {};
  if (bias || cols == 0) return {rows};  // a bias has one value per output row
  return {rows, cols};
}

uint32_t file_type_of(const std::vector<Tensor>& tensors) {
  // llama.cpp's general.file_type: 0 all F32, 1 mostly F16, 32 mostly BF16.
  std::map<GgmlType, size_t> count;
  for (const auto& t : tensors)
    if (t.ne.size() >= 2) ++count[t.type];
  GgmlType best = GgmlType::F32;
  size_t best_n = 0;
  for (const auto& [type, n] : count)
    if (n > best_n) best = type, best_n = n;
  return best == GgmlType::F16 ? 1u : best == GgmlType::BF16 ? 32u : 0u;
}

GgufValue u32(int64_t v) { return GgufValue{static_cast<uint32_t>(v)}; }
GgufValue f32(double v) { return GgufValue{static_cast<float>(v)}; }

}  // namespace

Model hf_llama_to_model(const std::vector<SourcedTensor>& tensors, const HfConfig& c,
                        const std::string& config_source, const std::string& name) {
  Model m;
  m.format = ModelFormat::safetensors;
  // The vocabulary size: config.json, else the embedding's rows.
  int64_t vocab = c.vocab;
  if (vocab == 0)
    for (const auto& st : tensors)
      if (st.tensor.name == "model.embed_tokens.weight" && !st.tensor.shape.empty()) vocab = st.tensor.shape[0];

  struct Pending { TensorRank rank; size_t order; Tensor t; };
  std::vector<Pending> pending;
  std::set<std::string> have;
  for (const auto& st : tensors) {
    const auto& t = st.tensor;
    // Precomputed RoPE frequencies of old checkpoints: llama.cpp drops them too.
    if (t.name.ends_with(".rotary_emb.inv_freq")) continue;
    const auto gname = hf_to_gguf_name(t.name);
    if (!gname) fail_input(st.file + ": tensor '" + t.name + "' has no llama GGUF name (unsupported tensor)");
    const TensorRank rank = llama_tensor_rank(*gname);
    if (rank.block >= c.n_layer)
      fail_input(st.file + ": tensor '" + t.name + "' names layer " + std::to_string(rank.block) + " but " +
                 config_source + " has num_hidden_layers " + std::to_string(c.n_layer));
    const auto want = expected_shape(*gname, c, vocab);
    if (t.shape != want)
      fail_input(st.file + ": tensor '" + t.name + "' has shape " + shape_text(t.shape) + " but " + config_source +
                 " implies " + shape_text(want));
    Tensor out;
    out.name = *gname;
    out.type = t.type;
    out.ne.assign(t.shape.rbegin(), t.shape.rend());  // row-major [rows, cols] -> ggml [cols, rows]
    out.data = t.data;
    const RopePermute perm = rope_permute_of(*gname);
    if (perm != RopePermute::none) {
      // Undo Hugging Face's rotate-half row order (see hf_names.hpp), head by head.
      const int64_t rows = t.shape[0];
      const uint64_t row_bytes = t.data.size() / static_cast<uint64_t>(rows);
      auto buf = m.allocate(t.data.size());
      for (int64_t g = 0; g < rows; ++g) {
        const int64_t h = hf_row_of_gguf_row(g, c.head_dim);
        std::copy_n(t.data.data() + h * row_bytes, row_bytes, buf.data() + g * row_bytes);
      }
      out.data = buf;
    }
    have.insert(out.name);
    pending.push_back({rank, pending.size(), std::move(out)});
  }
  // Every tensor a llama forward pass needs (output.weight may be tied to token_embd).
  std::vector<std::string> required{"token_embd.weight", "output_norm.weight"};
  for (int64_t b = 0; b < c.n_layer; ++b)
    for (const char* s : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate", "ffn_down", "ffn_up", "ffn_norm"})
      required.push_back("blk." + std::to_string(b) + "." + s + ".weight");
  for (const auto& r : required)
    if (!have.contains(r))
      fail_input(config_source + ": the checkpoint lacks " + gguf_to_hf_name(r).value_or(r) + " (" + r + ")");

  std::stable_sort(pending.begin(), pending.end(),
                   [](const Pending& a, const Pending& b) { return a.rank < b.rank; });
  for (auto& p : pending) m.tensors.push_back(std::move(p.t));

  // Metadata as llama.cpp's convert_hf_to_gguf.py writes it for a llama.
  m.set_kv("general.architecture", GgufValue{std::string("llama")});
  m.set_kv("general.type", GgufValue{std::string("model")});
  m.set_kv("general.name", GgufValue{name});
  m.set_kv("llama.block_count", u32(c.n_layer));
  if (c.n_ctx) m.set_kv("llama.context_length", u32(c.n_ctx));
  m.set_kv("llama.embedding_length", u32(c.hidden));
  m.set_kv("llama.feed_forward_length", u32(c.n_ff));
  m.set_kv("llama.attention.head_count", u32(c.n_head));
  m.set_kv("llama.attention.head_count_kv", u32(c.n_head_kv));
  if (c.has_rope_theta) m.set_kv("llama.rope.freq_base", f32(c.rope_theta));
  m.set_kv("llama.attention.layer_norm_rms_epsilon", f32(c.rms_eps));
  if (c.has_head_dim) {
    m.set_kv("llama.attention.key_length", u32(c.head_dim));
    m.set_kv("llama.attention.value_length", u32(c.head_dim));
  }
  m.set_kv("general.file_type", u32(file_type_of(m.tensors)));
  m.set_kv("llama.vocab_size", u32(vocab));
  m.set_kv("llama.rope.dimension_count", u32(c.head_dim));
  return m;
}

namespace {

struct Shard {
  std::filesystem::path path;
  SafetensorsFile file;
};

Shard open_shard(Model& m, const std::filesystem::path& p) {
  if (!std::filesystem::exists(p)) fail_input(p.string() + ": missing safetensors file");
  auto map = MappedFile::open(p);
  m.keep(map);
  return {p, parse_safetensors(map->bytes(), p.string())};
}

// The shard files an index names, checked to stay inside the folder.
std::filesystem::path shard_path(const std::filesystem::path& index, const std::string& rel) {
  const std::filesystem::path p(rel);
  bool ok = !rel.empty() && p.is_relative();
  for (const auto& part : p)
    if (part == "..") ok = false;
  if (!ok) fail_input(index.string() + ": shard name '" + rel + "' is not a relative path inside the folder");
  return index.parent_path() / p;
}

}  // namespace

}  // namespace io

Model read_safetensors_model(const std::filesystem::path& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path folder, index, single;
  if (fs::is_directory(path, ec)) {
    folder = path;
    if (fs::exists(path / "model.safetensors.index.json")) index = path / "model.safetensors.index.json";
    else if (fs::exists(path / "model.safetensors")) single = path / "model.safetensors";
    else fail_input(path.string() + ": folder holds neither model.safetensors nor model.safetensors.index.json");
  } else {
    if (!fs::exists(path, ec)) fail_input(path.string() + ": no such file");
    folder = path.parent_path();
    (path.filename().string().ends_with(".index.json") ? index : single) = path;
  }
  if (folder.empty()) folder = ".";

  Model carrier;  // owns the mappings until they move into the result
  std::vector<io::SourcedTensor> tensors;
  std::vector<std::pair<std::string, std::string>> st_meta;
  auto add_meta = [&](const io::Shard& s) {
    for (const auto& kv : s.file.metadata)
      if (std::find(st_meta.begin(), st_meta.end(), kv) == st_meta.end()) st_meta.push_back(kv);
  };
  if (!single.empty()) {
    auto s = io::open_shard(carrier, single);
    add_meta(s);
    for (auto& t : s.file.tensors) tensors.push_back({std::move(t), single.string()});
  } else {
    const auto text = read_text_file(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail_input(index.string() + ": invalid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail_input(index.string() + ": no weight_map object");
    std::map<std::string, std::string> where;  // tensor -> shard file
    std::set<std::string> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail_input(index.string() + ": weight_map entry '" + name + "' is not a file name");
      where[name] = file.get<std::string>();
      shards.insert(file.get<std::string>());
    }
    std::map<std::string, std::string> found;  // tensor -> shard that holds it
    for (const auto& rel : shards) {
      const auto p = io::shard_path(index, rel);
      auto s = io::open_shard(carrier, p);
      add_meta(s);
      for (auto& t : s.file.tensors) {
        if (auto [it, fresh] = found.emplace(t.name, rel); !fresh)
          fail_input(p.string() + ": tensor '" + t.name + "' also appears in " + it->second);
        const auto w = where.find(t.name);
        if (w == where.end()) fail_input(p.string() + ": tensor '" + t.name + "' is not listed in " + index.string());
        if (w->second != rel)
          fail_input(p.string() + ": tensor '" + t.name + "' is listed in " + index.string() + " under " + w->second);
        tensors.push_back({std::move(t), p.string()});
      }
    }
    for (const auto& [name, rel] : where)
      if (!found.contains(name))
        fail_input(index.string() + ": tensor '" + name + "' is missing from its shard " + rel);
  }

  const auto config_path = folder / "config.json";
  if (!fs::exists(config_path))
    fail_input(config_path.string() + ": missing (needed for the llama hyper-parameters of " + path.string() + ")");
  const auto config = io::parse_hf_config(read_text_file(config_path), config_path.string());
  const auto abs = fs::absolute(folder).lexically_normal();
  std::string name = (abs.has_filename() ? abs.filename() : abs.parent_path().filename()).string();
  Model m = io::hf_llama_to_model(tensors, config, config_path.string(), name);
  m.source = path;
  m.keep(std::make_shared<Model>(std::move(carrier)));
  for (const auto& [k, v] : st_meta) m.set_kv(std::string(kSafetensorsMetadataPrefix) + k, GgufValue{v});

  if (!options.vocab_from.empty()) {
    const Model vocab = read_gguf(options.vocab_from);
    size_t copied = 0;
    for (const auto& kv : vocab.metadata)
      if (kv.key.starts_with("tokenizer.")) {
        m.set_kv(kv.key, kv.value);
        ++copied;
      }
    if (copied == 0) fail_input(options.vocab_from.string() + ": holds no tokenizer.* metadata to copy");
    if (const auto* toks = m.find_kv("tokenizer.ggml.tokens")) {
      const auto n = toks->as_array("tokenizer.ggml.tokens").items.size();
      const int64_t rows = m.tensors.front().ne.size() == 2 ? m.tensors.front().ne[1] : 0;
      if (static_cast<int64_t>(n) != rows)
        fail_input(options.vocab_from.string() + ": vocabulary of " + std::to_string(n) + " tokens does not match the " +
                   std::to_string(rows) + " embedding rows of " + path.string());
    }
  } else {
    spdlog::info("{}: no tokenizer (safetensors checkpoints carry none here; use --vocab-from a GGUF to copy one); "
                 "fine for conversion, not for running",
                 path.string());
  }
  return m;
}

namespace io {
Model read_safetensors_model(const std::filesystem::path& path, const LoadOptions& options) {
  return dcq::read_safetensors_model(path, options);
}
}  // namespace io

}  // namespace dcq
