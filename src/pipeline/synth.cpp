#include "dcq/synth.hpp"

#include <chrono>
#include <cmath>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant.hpp"
#include "pipeline/row_stream.hpp"

namespace dcq {
namespace {

struct Preset {
  const char* name;
  SynthShape shape;
};

// stories110M is llama2.c's 110M model shape (the speed anchor of ../shared/data/README.md);
// 1B is TinyLlama-1.1B's shape; 7B is Llama-2-7B's.
const Preset kPresets[] = {
    {"synth256", {256, 512, 2, 4, 2, 512, 2048, false}},
    {"stories110M", {768, 2048, 12, 12, 12, 32000, 1024, false}},
    {"1B", {2048, 5632, 22, 32, 4, 32000, 2048, false}},
    {"7B", {4096, 11008, 32, 32, 32, 32000, 4096, false}},
};

// Counter-based generator: every row of every tensor has its own stream, so the weights do not
// depend on how rows are spread over threads.
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fill_normal(float* out, int64_t n, uint64_t seed, float sigma) {
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i += 2) {
    // Box-Muller on two uniforms in (0, 1].
    const double u1 = (double(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = double(splitmix64(s) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(sigma * r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(sigma * r * std::sin(2.0 * M_PI * u2));
  }
}

struct Planned {
  GgufTensorInfo info;
  bool is_norm;
};

GgmlType choose_type(GgmlType wanted, const std::vector<int64_t>& ne) {
  if (ne.size() == 1) return GgmlType::F32;  // norms stay F32, as llama.cpp keeps 1-D tensors
  if (ne[0] % traits(wanted).block_size != 0) return GgmlType::F16;  // llama.cpp's last resort
  return wanted;
}

GgufValue str(std::string s) { return GgufValue{std::move(s)}; }
GgufValue u32(uint32_t v) { return GgufValue{v}; }

std::vector<GgufKV> metadata(const SynthShape& s, const std::string& name, GgmlType type) {
  std::vector<GgufKV> m;
  m.push_back({"general.architecture", str("llama")});
  m.push_back({"general.name", str(name)});
  m.push_back({"llama.context_length", u32(uint32_t(s.context))});
  m.push_back({"llama.embedding_length", u32(uint32_t(s.dim))});
  m.push_back({"llama.block_count", u32(uint32_t(s.layers))});
  m.push_back({"llama.feed_forward_length", u32(uint32_t(s.ffn))});
  m.push_back({"llama.rope.dimension_count", u32(uint32_t(s.dim / s.heads))});
  m.push_back({"llama.attention.head_count", u32(uint32_t(s.heads))});
  m.push_back({"llama.attention.head_count_kv", u32(uint32_t(s.kv_heads))});
  m.push_back({"llama.attention.layer_norm_rms_epsilon", GgufValue{1e-5f}});
  m.push_back({"general.quantization_version", u32(2)});
  (void)type;
  // A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then made-up pieces.
  GgufArray tokens{GgufType::STRING, {}}, scores{GgufType::FLOAT32, {}}, types{GgufType::INT32, {}};
  for (int64_t i = 0; i < s.vocab; ++i) {
    std::string piece;
    int32_t kind = 1;  // normal
    if (i == 0) piece = "<unk>", kind = 2;
    else if (i == 1) piece = "<s>", kind = 3;
    else if (i == 2) piece = "</s>", kind = 3;
    else if (i < 3 + 256) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", unsigned(i - 3));
      piece = buf;
      kind = 6;
    } else {
      piece = "\xe2\x96\x81";  // U+2581, SentencePiece's space
      for (int64_t k = i - 259; ; k /= 26) {
        piece += char('a' + k % 26);
        if (k < 26) break;
      }
    }
    tokens.items.push_back(str(piece));
    scores.items.push_back(GgufValue{kind == 1 ? -float(i) : 0.0f});
    types.items.push_back(GgufValue{kind});
  }
  m.push_back({"tokenizer.ggml.model", str("llama")});
  m.push_back({"tokenizer.ggml.tokens", GgufValue{std::move(tokens)}});
  m.push_back({"tokenizer.ggml.scores", GgufValue{std::move(scores)}});
  m.push_back({"tokenizer.ggml.token_type", GgufValue{std::move(types)}});
  m.push_back({"tokenizer.ggml.bos_token_id", u32(1)});
  m.push_back({"tokenizer.ggml.eos_token_id", u32(2)});
  m.push_back({"tokenizer.ggml.unknown_token_id", u32(0)});
  return m;
}

}  // namespace

std::string synth_presets() {
  std::string s;
  for (const auto& p : kPresets) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

SynthShape synth_preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return p.shape;
  fail_usage("unknown synth preset '" + name + "' (known: " + synth_presets() + ")");
}

SynthReport synth(const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const SynthShape s = o.preset.empty() ? o.shape : synth_preset(o.preset);
  if (s.dim <= 0 || s.ffn <= 0 || s.layers <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.vocab <= 3 + 256)
    fail_usage("synth shape needs positive sizes and a vocabulary above 259");
  if (s.dim % s.heads != 0 || s.heads % s.kv_heads != 0)
    fail_usage("synth shape: dim must divide by heads and heads by kv heads");
  const auto wanted = parse_type(o.type);
  if (!wanted) fail_usage("unknown tensor type '" + o.type + "'");
  if (!can_quantize(*wanted)) fail_usage("dcq cannot write tensors of type " + o.type + " yet");

  const int64_t kv_dim = s.dim / s.heads * s.kv_heads;
  std::vector<Planned> plan;
  auto add = [&](std::string name, std::vector<int64_t> ne, bool norm) {
    plan.push_back({{std::move(name), norm ? GgmlType::F32 : choose_type(*wanted, ne), ne}, norm});
  };
  add("token_embd.weight", {s.dim, s.vocab}, false);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {s.dim}, true);
    add(b + "attn_q.weight", {s.dim, s.dim}, false);
    add(b + "attn_k.weight", {s.dim, kv_dim}, false);
    add(b + "attn_v.weight", {s.dim, kv_dim}, false);
    add(b + "attn_output.weight", {s.dim, s.dim}, false);
    add(b + "ffn_norm.weight", {s.dim}, true);
    add(b + "ffn_gate.weight", {s.dim, s.ffn}, false);
    add(b + "ffn_down.weight", {s.ffn, s.dim}, false);
    add(b + "ffn_up.weight", {s.dim, s.ffn}, false);
  }
  add("output_norm.weight", {s.dim}, true);
  if (!s.tied_output) add("output.weight", {s.dim, s.vocab}, false);

  std::vector<GgufTensorInfo> infos;
  for (const auto& p : plan) infos.push_back(p.info);
  GgufWriter w(o.output, o.force, metadata(s, o.preset.empty() ? "synth" : o.preset, *wanted), infos);

  SynthReport rep;
  rep.shape = s;
  for (size_t ti = 0; ti < plan.size(); ++ti) {
    const auto& info = plan[ti].info;
    const int64_t width = info.ne[0];
    const int64_t rows = info.ne.size() > 1 ? info.ne[1] : 1;
    rep.parameters += uint64_t(width * rows);
    if (plan[ti].is_norm) {
      std::vector<float> ones(size_t(width), 1.0f);
      w.write({reinterpret_cast<const uint8_t*>(ones.data()), ones.size() * 4});
      continue;
    }
    const uint64_t tensor_seed = o.seed * 0x100000001b3ull ^ (uint64_t(ti) << 40);
    pipeline::stream_quantized_rows(w, info.type, width, rows, o.threads, [&](int64_t r, float* out) {
      fill_normal(out, width, tensor_seed ^ uint64_t(r), o.sigma);
    });
  }
  w.commit();
  rep.file_bytes = std::filesystem::file_size(o.output);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace dcq
