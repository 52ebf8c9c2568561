// Model -> Hugging Face llama checkpoint (model.safetensors + config.json), the inverse of
// read_safetensors_model: GGUF names back to Hugging Face names, q/k rows back to rotate-half
// order, ggml ne back to row-major shapes.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/safetensors.hpp"
#include "io/hf_names.hpp"

namespace dcq {
namespace {

using io::RopePermute;
using ojson = nlohmann::ordered_json;

std::string_view dtype_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::BF16: return "BF16";
    default: return {};
  }
}

int64_t meta_int(const Model& m, const std::string& key, int64_t fallback) {
  const auto* v = m.find_kv(key);
  return v ? v->as_int(key) : fallback;
}

// A float32 hyper-parameter printed as its shortest decimal (1e-05, not 9.999999747378752e-06),
// so config.json reads as a person would write it and parses back to the same float32.
double short_float(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(v));
  double out = 0;
  std::from_chars(buf, r.ptr, out);
  return out;
}

struct Planned {
  const Tensor* t;
  std::string hf_name;
  RopePermute perm;
  int64_t head_dim;
  uint64_t begin, end;
};

}  // namespace

void write_safetensors_model(const Model& model, const std::filesystem::path& file, bool force) {
  const std::string src = model.source.empty() ? std::string("model") : model.source.string();
  const auto arch = model.find_kv("general.architecture");
  if (arch && arch->as_string("general.architecture") != "llama")
    fail_input(src + ": architecture '" + arch->as_string("general.architecture") +
               "' cannot be written as a Hugging Face llama checkpoint");
  const int64_t n_head = meta_int(model, "llama.attention.head_count", 0);
  const int64_t n_head_kv = meta_int(model, "llama.attention.head_count_kv", n_head);
  const int64_t n_embd = meta_int(model, "llama.embedding_length", 0);
  if (n_head <= 0 || n_head_kv <= 0 || n_embd <= 0)
    fail_input(src + ": llama.attention.head_count, head_count_kv and embedding_length must be positive");

  std::vector<Planned> plan;
  uint64_t offset = 0;
  GgmlType main_type = GgmlType::F32;
  for (const auto& t : model.tensors) {
    if (dtype_name(t.type).empty())
      fail_input(src + ": tensor '" + t.name + "' is " + std::string(type_name(t.type)) +
                 "; safetensors output takes F32, F16 or BF16 only (dequantize it first)");
    const auto hf = io::gguf_to_hf_name(t.name);
    DCQ_ASSERT(t.data.size() == t.n_bytes());
    if (!hf) fail_input(src + ": tensor '" + t.name + "' has no Hugging Face llama name");
    if (t.ne.empty() || t.ne.size() > 4) fail_input(src + ": tensor '" + t.name + "' has an unsupported rank");
    Planned p{&t, *hf, io::rope_permute_of(t.name), 0, offset, offset + t.n_bytes()};
    if (p.perm != RopePermute::none) {
      const int64_t heads = p.perm == RopePermute::q ? n_head : n_head_kv;
      const int64_t rows = t.n_rows();
      if (rows % heads != 0 || (rows / heads) % 2 != 0)
        fail_input(src + ": tensor '" + t.name + "' has " + std::to_string(rows) + " rows, not " +
                   std::to_string(heads) + " heads of an even size");
      p.head_dim = rows / heads;
    }
    if (t.ne.size() >= 2) main_type = t.type;
    offset = p.end;
    plan.push_back(std::move(p));
  }
  if (plan.empty()) fail_input(src + ": no tensors to write");
  // Hugging Face's usual order (the shared stories260K-hf-* files use it), then data offsets.
  std::stable_sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    return io::hf_tensor_rank(a.t->name) < io::hf_tensor_rank(b.t->name);
  });
  offset = 0;
  for (auto& p : plan) {
    p.begin = offset;
    p.end = offset += p.t->n_bytes();
  }

  // Header: __metadata__ first (kept from a safetensors source, else the usual "pt"), then the
  // tensors in data order. Padded with spaces so the data section starts 8-byte aligned.
  ojson header = ojson::object();
  ojson meta = ojson::object();
  for (const auto& kv : model.metadata)
    if (kv.key.starts_with(kSafetensorsMetadataPrefix) && kv.value.type() == GgufType::STRING)
      meta[kv.key.substr(kSafetensorsMetadataPrefix.size())] = kv.value.as_string(kv.key);
  if (meta.empty()) meta["format"] = "pt";
  header["__metadata__"] = meta;
  for (const auto& p : plan) {
    if (header.contains(p.hf_name)) fail_input(src + ": two tensors map to '" + p.hf_name + "'");
    ojson shape = ojson::array();
    for (auto it = p.t->ne.rbegin(); it != p.t->ne.rend(); ++it) shape.push_back(*it);
    header[p.hf_name] = {{"dtype", dtype_name(p.t->type)}, {"shape", shape}, {"data_offsets", {p.begin, p.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  // config.json from the llama.* metadata (transformers' LlamaConfig names).
  const int64_t n_layer = meta_int(model, "llama.block_count", 0);
  const Tensor* embd = model.find_tensor("token_embd.weight");
  const int64_t vocab = meta_int(model, "llama.vocab_size", embd && embd->ne.size() == 2 ? embd->ne[1] : 0);
  ojson cfg;
  cfg["architectures"] = {"LlamaForCausalLM"};
  cfg["model_type"] = "llama";
  cfg["hidden_size"] = n_embd;
  cfg["intermediate_size"] = meta_int(model, "llama.feed_forward_length", 0);
  cfg["num_attention_heads"] = n_head;
  cfg["num_key_value_heads"] = n_head_kv;
  cfg["num_hidden_layers"] = n_layer;
  if (const auto* v = model.find_kv("llama.attention.key_length")) cfg["head_dim"] = v->as_int("key_length");
  const auto* eps = model.find_kv("llama.attention.layer_norm_rms_epsilon");
  cfg["rms_norm_eps"] = eps ? short_float(eps->as_float("layer_norm_rms_epsilon")) : 1e-5;
  cfg["vocab_size"] = vocab;
  if (const auto* v = model.find_kv("llama.context_length")) cfg["max_position_embeddings"] = v->as_int("context_length");
  const auto* theta = model.find_kv("llama.rope.freq_base");
  cfg["rope_theta"] = theta ? short_float(theta->as_float("freq_base")) : 10000.0;
  if (const auto* v = model.find_kv("tokenizer.ggml.bos_token_id")) cfg["bos_token_id"] = v->as_int("bos");
  if (const auto* v = model.find_kv("tokenizer.ggml.eos_token_id")) cfg["eos_token_id"] = v->as_int("eos");
  cfg["tie_word_embeddings"] = model.find_tensor("output.weight") == nullptr;
  cfg["hidden_act"] = "silu";
  cfg["torch_dtype"] = main_type == GgmlType::F32 ? "float32" : main_type == GgmlType::F16 ? "float16" : "bfloat16";
  const std::string cfg_text = cfg.dump(2);

  const auto config_path = file.parent_path() / "config.json";
  check_can_write(file, force);
  check_can_write(config_path, force);

  AtomicFile out(file, force);
  const uint64_t header_len = text.size();
  out.write(&header_len, sizeof header_len);
  out.write(text.data(), text.size());
  for (const auto& p : plan) {
    const auto& t = *p.t;
    if (p.perm == RopePermute::none) {
      out.write(t.data);
      continue;
    }
    // Hugging Face row h holds GGUF row g where hf_row_of_gguf_row(g) == h: write GGUF rows in
    // the order that makes that true.
    const int64_t rows = t.n_rows();
    const uint64_t row_bytes = t.data.size() / static_cast<uint64_t>(rows);
    std::vector<int64_t> gguf_of_hf(static_cast<size_t>(rows));
    for (int64_t g = 0; g < rows; ++g) gguf_of_hf[static_cast<size_t>(io::hf_row_of_gguf_row(g, p.head_dim))] = g;
    for (int64_t h = 0; h < rows; ++h) out.write(t.data.subspan(gguf_of_hf[static_cast<size_t>(h)] * row_bytes, row_bytes));
  }
  AtomicFile cfg_out(config_path, force);
  cfg_out.write(cfg_text.data(), cfg_text.size());
  out.commit();
  cfg_out.commit();
}

}  // namespace dcq
