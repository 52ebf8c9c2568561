// llama2.c checkpoint + tokenizer -> the Model llama.cpp's convert-llama2c-to-ggml writes
// (same tensor names, order and bytes; same metadata keys, types and order).
#include <cctype>

#include <spdlog/spdlog.h>

#include "dcq/byte_reader.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/llama2c.hpp"
#include "io/readers.hpp"

namespace dcq {
namespace {

constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c's newer export formats
constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);

// llama_token_type values (llama.h).
constexpr int32_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeByte = 6;

// Float counts of each weight array, in file order, computed with overflow checks.
struct Layout {
  uint64_t embd, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq, wcls;
  uint64_t total;  // all of them
};

uint64_t mul(std::initializer_list<uint64_t> xs, const std::string& source) {
  uint64_t r = 1;
  for (uint64_t x : xs)
    if (mul_overflows(r, x, &r)) fail_input(source + ": header sizes overflow");
  return r;
}

Layout layout_of(const Llama2cConfig& c, const std::string& source) {
  const uint64_t dim = c.dim, hidden = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t kv_dim = dim / c.n_heads * c.n_kv_heads, head = dim / c.n_heads;
  Layout l{};
  l.embd = mul({V, dim}, source);
  l.rms_att = mul({L, dim}, source);
  l.wq = mul({L, dim, dim}, source);
  l.wk = mul({L, kv_dim, dim}, source);
  l.wv = l.wk;
  l.wo = l.wq;
  l.rms_ffn = l.rms_att;
  l.w1 = mul({L, hidden, dim}, source);
  l.w2 = l.w1;
  l.w3 = l.w1;
  l.rms_final = dim;
  l.freq = mul({static_cast<uint64_t>(c.seq_len), head}, source);  // real and imaginary halves
  l.wcls = c.shared_classifier ? 0 : l.embd;
  l.total = 0;
  for (uint64_t n : {l.embd, l.rms_att, l.wq, l.wk, l.wv, l.wo, l.rms_ffn, l.w1, l.w2, l.w3, l.rms_final, l.freq, l.wcls})
    if (add_overflows(l.total, n, &l.total)) fail_input(source + ": header sizes overflow");
  return l;
}

bool is_byte_token(const std::string& t) {
  // llama.cpp tests sscanf(text, "<0x%02hhX>") == 1: "<0x", optional white space (not counted in
  // the field width), then within a width of 2 an optional sign and at least one hex digit.
  if (t.compare(0, 3, "<0x") != 0) return false;
  size_t i = 3;
  while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
  const size_t field = i;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  return i < t.size() && i - field < 2 && std::isxdigit(static_cast<unsigned char>(t[i]));
}

std::string escape_spaces(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == ' ') out += "\xe2\x96\x81";  // U+2581, SentencePiece's space
    else out += ch;
  }
  return out;
}

GgufValue u32(uint32_t v) { return GgufValue{v}; }

}  // namespace

Llama2cConfig parse_llama2c_config(std::span<const uint8_t> bytes, const std::string& source) {
  ByteReader r(bytes, source);
  if (bytes.size() >= 4) {
    uint32_t magic;
    std::memcpy(&magic, bytes.data(), 4);
    if (magic == kVersionedMagic)
      fail_input(source + ": llama2.c versioned export (magic 'ak42') is not supported; export with the legacy (version 0) format");
  }
  int32_t h[7];
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) h[i] = r.read<int32_t>(names[i]);
  for (int i = 0; i < 7; ++i) {
    const bool ok = i == 5 ? (h[i] != 0 && h[i] != INT32_MIN) : h[i] > 0;
    if (!ok) fail_input(source + ": header field " + names[i] + " = " + std::to_string(h[i]) + " is invalid");
  }
  Llama2cConfig c;
  c.dim = h[0], c.hidden_dim = h[1], c.n_layers = h[2], c.n_heads = h[3], c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.seq_len = h[6];
  if (c.dim % c.n_heads != 0)
    fail_input(source + ": dim " + std::to_string(c.dim) + " is not a multiple of n_heads " + std::to_string(c.n_heads));
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
    fail_input(source + ": n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_kv_heads " +
               std::to_string(c.n_kv_heads));
  if ((c.dim / c.n_heads) % 2 != 0)
    fail_input(source + ": head size " + std::to_string(c.dim / c.n_heads) + " is odd (RoPE needs pairs)");
  const Layout l = layout_of(c, source);
  uint64_t need = 0;
  if (mul_overflows(l.total, sizeof(float), &need) || add_overflows(need, kHeaderBytes, &need))
    fail_input(source + ": header sizes overflow");
  if (need != bytes.size())
    fail_input(source + ": header (dim " + std::to_string(c.dim) + ", hidden_dim " + std::to_string(c.hidden_dim) +
               ", n_layers " + std::to_string(c.n_layers) + ", n_heads " + std::to_string(c.n_heads) + ", n_kv_heads " +
               std::to_string(c.n_kv_heads) + ", vocab_size " + std::to_string(h[5]) + ", seq_len " +
               std::to_string(c.seq_len) + ") implies " + std::to_string(need) + " bytes but the file has " +
               std::to_string(bytes.size()));
  return c;
}

std::vector<Llama2cToken> parse_llama2c_tokenizer(std::span<const uint8_t> bytes, int32_t vocab_size,
                                                  const std::string& source) {
  ByteReader r(bytes, source);
  r.read<uint32_t>("max_token_length");
  if (vocab_size < 3) fail_input(source + ": vocabulary of " + std::to_string(vocab_size) + " tokens is too small");
  // Each token takes at least 8 bytes: refuse a vocab_size the file cannot hold before reserving.
  if (static_cast<uint64_t>(vocab_size) > r.remaining() / 8)
    fail_input(source + ": too short for " + std::to_string(vocab_size) + " tokens (" + std::to_string(bytes.size()) +
               " bytes)");
  std::vector<Llama2cToken> out;
  out.reserve(static_cast<size_t>(vocab_size));
  for (int32_t id = 0; id < vocab_size; ++id) {
    Llama2cToken t;
    t.score = r.read<float>("token score");
    const int32_t len = r.read<int32_t>("token length");
    if (len < 0) fail_input(source + ": token " + std::to_string(id) + " has negative length " + std::to_string(len));
    const auto b = r.read_bytes(static_cast<uint64_t>(len), "token text");
    std::string text(reinterpret_cast<const char*>(b.data()), b.size());
    // The same special cases as llama.cpp's converter, so the vocabularies match exactly.
    if (id == 0) text = "<unk>", t.type = kTypeUnknown;
    else if (id == 1) text = "<s>", t.type = kTypeControl;
    else if (id == 2) text = "</s>", t.type = kTypeControl;
    else if (text.empty()) t.type = kTypeControl;
    else if (is_byte_token(text)) t.type = kTypeByte;
    else t.type = kTypeNormal;
    t.text = escape_spaces(text);
    out.push_back(std::move(t));
  }
  if (r.remaining() != 0)
    fail_input(source + ": " + std::to_string(r.remaining()) + " bytes follow the " + std::to_string(vocab_size) +
               " tokens the model needs (tokenizer for a different vocabulary?)");
  return out;
}

Model parse_llama2c_model(std::span<const uint8_t> bytes, const std::string& source,
                          const std::vector<Llama2cToken>* tokens, uint32_t context_length) {
  const Llama2cConfig c = parse_llama2c_config(bytes, source);
  const Layout l = layout_of(c, source);
  const int64_t dim = c.dim, hidden = c.hidden_dim, kv_dim = int64_t(c.dim) / c.n_heads * c.n_kv_heads,
                V = c.vocab_size;

  Model m;
  m.format = ModelFormat::llama2c;
  // Metadata in the converter's order (tokenizer first).
  if (tokens) {
    if (tokens->size() != static_cast<size_t>(V))
      fail_input(source + ": tokenizer holds " + std::to_string(tokens->size()) + " tokens, the model " + std::to_string(V));
    GgufArray texts{GgufType::STRING, {}}, scores{GgufType::FLOAT32, {}}, types{GgufType::INT32, {}};
    for (const auto& t : *tokens) {
      texts.items.push_back(GgufValue{t.text});
      scores.items.push_back(GgufValue{t.score});
      types.items.push_back(GgufValue{t.type});
    }
    m.set_kv("tokenizer.ggml.tokens", GgufValue{std::move(texts)});
    m.set_kv("tokenizer.ggml.scores", GgufValue{std::move(scores)});
    m.set_kv("tokenizer.ggml.token_type", GgufValue{std::move(types)});
    m.set_kv("tokenizer.ggml.model", GgufValue{std::string("llama")});
  }
  m.set_kv("general.architecture", GgufValue{std::string("llama")});
  m.set_kv("general.name", GgufValue{std::string("llama")});
  if (tokens) {
    m.set_kv("tokenizer.ggml.unknown_token_id", u32(0));
    m.set_kv("tokenizer.ggml.bos_token_id", u32(1));
    m.set_kv("tokenizer.ggml.eos_token_id", u32(2));
    m.set_kv("tokenizer.ggml.seperator_token_id", u32(UINT32_MAX));  // LLAMA_TOKEN_NULL, llama.cpp's spelling
    m.set_kv("tokenizer.ggml.padding_token_id", u32(UINT32_MAX));
  }
  m.set_kv("llama.context_length", u32(context_length ? context_length : kLlama2cConverterContext));
  m.set_kv("llama.embedding_length", u32(c.dim));
  m.set_kv("llama.feed_forward_length", u32(c.hidden_dim));
  m.set_kv("llama.attention.head_count", u32(c.n_heads));
  m.set_kv("llama.attention.head_count_kv", u32(c.n_kv_heads));
  m.set_kv("llama.block_count", u32(c.n_layers));
  m.set_kv("llama.rope.dimension_count", u32(c.dim / c.n_heads));
  m.set_kv("llama.attention.layer_norm_rms_epsilon", GgufValue{1e-5f});

  // Weight arrays, as views of the file. llama2.c's row-major [rows, cols] is ggml's [cols, rows]
  // with the same bytes, and its RoPE pairs are already interleaved as ggml expects.
  const uint8_t* base = bytes.data() + kHeaderBytes;
  uint64_t pos = 0;
  auto next = [&](uint64_t n_floats) {
    const uint8_t* p = base + pos * sizeof(float);
    pos += n_floats;
    return p;
  };
  const uint8_t* embd = next(l.embd);
  const uint8_t* rms_att = next(l.rms_att);
  const uint8_t* wq = next(l.wq);
  const uint8_t* wk = next(l.wk);
  const uint8_t* wv = next(l.wv);
  const uint8_t* wo = next(l.wo);
  const uint8_t* rms_ffn = next(l.rms_ffn);
  const uint8_t* w1 = next(l.w1);
  const uint8_t* w2 = next(l.w2);
  const uint8_t* w3 = next(l.w3);
  const uint8_t* rms_final = next(l.rms_final);
  next(l.freq);
  const uint8_t* wcls = c.shared_classifier ? embd : next(l.wcls);
  DCQ_ASSERT(kHeaderBytes + pos * sizeof(float) == bytes.size());

  auto add = [&](std::string name, std::vector<int64_t> ne, const uint8_t* layer0, int64_t layer) {
    Tensor t;
    t.name = std::move(name);
    t.type = GgmlType::F32;
    t.ne = std::move(ne);
    const uint64_t n = static_cast<uint64_t>(t.n_elements()) * sizeof(float);
    t.data = std::span<const uint8_t>(layer0 + static_cast<uint64_t>(layer) * n, n);
    m.tensors.push_back(std::move(t));
  };
  // The converter stores the tied classifier as its own output.weight copy.
  add("token_embd.weight", {dim, V}, embd, 0);
  add("output_norm.weight", {dim}, rms_final, 0);
  add("output.weight", {dim, V}, wcls, 0);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_q.weight", {dim, dim}, wq, i);
    add(b + "attn_k.weight", {dim, kv_dim}, wk, i);
    add(b + "attn_v.weight", {dim, kv_dim}, wv, i);
    add(b + "attn_output.weight", {dim, dim}, wo, i);
    add(b + "attn_norm.weight", {dim}, rms_att, i);
    add(b + "ffn_gate.weight", {dim, hidden}, w1, i);
    add(b + "ffn_down.weight", {hidden, dim}, w2, i);
    add(b + "ffn_up.weight", {dim, hidden}, w3, i);
    add(b + "ffn_norm.weight", {dim}, rms_ffn, i);
  }
  return m;
}

namespace {

// The only tok*.bin beside the checkpoint; empty when there is none.
std::filesystem::path find_tokenizer(const std::filesystem::path& checkpoint) {
  namespace fs = std::filesystem;
  std::vector<fs::path> found;
  std::error_code ec;
  const auto dir = checkpoint.has_parent_path() ? checkpoint.parent_path() : fs::path(".");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (e.is_regular_file(ec) && name.starts_with("tok") && name.ends_with(".bin") &&
        e.path().filename() != checkpoint.filename())
      found.push_back(e.path());
  }
  if (found.size() > 1) {
    std::string list;
    for (const auto& p : found) list += (list.empty() ? "" : ", ") + p.filename().string();
    fail_input(checkpoint.string() + ": several tokenizers beside it (" + list + "); choose one with --tokenizer");
  }
  return found.empty() ? fs::path() : found.front();
}

}  // namespace

Model read_llama2c_model(const std::filesystem::path& path, const Llama2cOptions& options) {
  auto map = MappedFile::open(path);
  const Llama2cConfig c = parse_llama2c_config(map->bytes(), path.string());
  std::vector<Llama2cToken> tokens;
  bool have_tokens = false;
  if (options.vocab_from.empty()) {
    const auto tok_path = options.tokenizer.empty() ? find_tokenizer(path) : options.tokenizer;
    if (!tok_path.empty()) {
      const auto tok_map = MappedFile::open(tok_path);
      tokens = parse_llama2c_tokenizer(tok_map->bytes(), c.vocab_size, tok_path.string());
      have_tokens = true;
    } else {
      spdlog::info("{}: no tok*.bin beside it and no --tokenizer: the model has no tokenizer "
                   "(fine for conversion, not for running)",
                   path.string());
    }
  }
  Model m = parse_llama2c_model(map->bytes(), path.string(), have_tokens ? &tokens : nullptr, options.context_length);
  if (!options.context_length)
    spdlog::debug("{}: llama.context_length = {} as llama.cpp's converter writes it (checkpoint seq_len {})",
                  path.string(), kLlama2cConverterContext, c.seq_len);
  if (!options.vocab_from.empty()) {
    // As the converter's --copy-vocab-from-model: the GGUF's tokenizer keys, first.
    const Model vocab = read_gguf(options.vocab_from);
    std::vector<GgufKV> meta;
    for (const auto& kv : vocab.metadata)
      if (kv.key.starts_with("tokenizer.")) meta.push_back(kv);
    if (meta.empty()) fail_input(options.vocab_from.string() + ": holds no tokenizer.* metadata to copy");
    if (const auto* toks = vocab.find_kv("tokenizer.ggml.tokens");
        !toks || toks->as_array("tokenizer.ggml.tokens").items.size() != static_cast<size_t>(c.vocab_size))
      fail_input(options.vocab_from.string() + ": vocabulary size does not match the " + std::to_string(c.vocab_size) +
                 " of " + path.string());
    for (auto& kv : m.metadata) meta.push_back(std::move(kv));
    m.metadata = std::move(meta);
  }
  m.source = path;
  m.keep(map);
  return m;
}

namespace io {
Model read_llama2c_model(const std::filesystem::path& path, const LoadOptions& options) {
  return dcq::read_llama2c_model(path, Llama2cOptions{options.tokenizer, options.vocab_from, 0});
}
}  // namespace io

}  // namespace dcq
