// Tokenizer front end: reads tokenizer.ggml.* metadata the way llama.cpp's llama_vocab::load does
// (defaults per vocabulary kind, then overrides from the file), splits user-defined special tokens
// out of the text, runs the kind's algorithm on each remaining fragment, and turns ids back into
// text. The algorithms themselves live in tokenizer_{spm,bpe,wpm}.cpp.
#include "dcq/tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <climits>

#include "dcq/error.hpp"
#include "runtime/tokenizer_impl.hpp"
#include "runtime/unicode.hpp"

namespace dcq {
namespace {

using tok::Attr;

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

enum class Kind { spm, bpe, wpm };

// llama.cpp's token types (gguf tokenizer.ggml.token_type) -> attributes.
uint32_t attr_from_type(int64_t type) {
  switch (type) {
    case 1: return tok::kNormal;
    case 2: return tok::kUnknown;
    case 3: return tok::kControl;
    case 4: return tok::kUserDefined;
    case 5: return tok::kUnused;
    case 6: return tok::kByte;
    default: return tok::kUndefined;
  }
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos);
  s = std::move(out);
}

// One piece of input text after special tokens were cut out: either raw text or a token id.
struct Fragment {
  int32_t token = -1;  // >= 0: a special token
  size_t offset = 0;
  size_t length = 0;
};

struct PreInfo {
  std::string_view name;
  tok::PreType type;
  bool ignore_merges = false;
  bool add_bos = false;
  bool clean_spaces = true;
};

// tokenizer.ggml.pre names and the flags llama.cpp attaches to each (llama-vocab.cpp, load()).
constexpr PreInfo kPreTypes[] = {
    {"default", tok::PreType::default_},
    {"llama3", tok::PreType::llama3, true, true},
    {"llama-v3", tok::PreType::llama3, true, true},
    {"llama-bpe", tok::PreType::llama3, true, true},
    {"falcon3", tok::PreType::llama3, true, true},
    {"falcon-h1", tok::PreType::llama3, true, true},
    {"pixtral", tok::PreType::llama3, true, true},
    {"midm-2.0", tok::PreType::llama3, true, true},
    {"lfm2", tok::PreType::llama3, true, true},
    {"dbrx", tok::PreType::llama3},
    {"smaug-bpe", tok::PreType::llama3},
    {"glm4", tok::PreType::llama3},
    {"chatglm-bpe", tok::PreType::llama3},
    {"deepseek-coder", tok::PreType::deepseek_coder, false, false, false},
    {"deepseek-llm", tok::PreType::deepseek_llm, false, false, false},
    {"falcon", tok::PreType::falcon},
    {"mpt", tok::PreType::gpt2},
    {"gpt-2", tok::PreType::gpt2},
    {"phi-2", tok::PreType::gpt2},
    {"jina-es", tok::PreType::gpt2},
    {"jina-de", tok::PreType::gpt2},
    {"gigachat", tok::PreType::gpt2},
    {"jina-v2-es", tok::PreType::gpt2},
    {"jina-v2-de", tok::PreType::gpt2},
    {"jina-v1-en", tok::PreType::gpt2},
    {"jina-v2-code", tok::PreType::gpt2},
    {"roberta-bpe", tok::PreType::gpt2},
    {"a.x-4.0", tok::PreType::gpt2},
    {"mellum", tok::PreType::gpt2},
    {"modern-bert", tok::PreType::gpt2},
    {"exaone4", tok::PreType::gpt2},
    {"olmo", tok::PreType::gpt2},
    {"jais", tok::PreType::gpt2},
    {"starcoder", tok::PreType::starcoder},
    {"refact", tok::PreType::starcoder},
    {"command-r", tok::PreType::starcoder, false, false, false},
    {"smollm", tok::PreType::starcoder, false, false, false},
    {"codeshell", tok::PreType::starcoder},
    {"exaone", tok::PreType::starcoder},
    {"minerva-7b", tok::PreType::starcoder},
    {"qwen2", tok::PreType::qwen2, false, false, false},
    {"deepseek-r1-qwen", tok::PreType::qwen2, false, false, false},
    {"megrez", tok::PreType::qwen2},
    {"stablelm2", tok::PreType::qwen2},
    {"poro-chat", tok::PreType::poro, false, false, false},
    {"bloom", tok::PreType::poro},
    {"gpt3-finnish", tok::PreType::poro},
    {"viking", tok::PreType::viking, false, false, false},
};

}  // namespace

struct Tokenizer::Impl {
  std::string source;  // file name, for messages
  Kind kind = Kind::spm;
  tok::Vocab vocab;
  tok::BpeRanks ranks;
  tok::BpeOptions bpe;

  int32_t bos = -1, eos = -1, unk = -1, sep = -1;
  bool add_bos = false, add_eos = false, add_sep = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;
  bool lowercase = true, strip_accents = true;  // WordPiece normaliser

  std::vector<int32_t> specials;  // control, user-defined and unknown tokens, longest first
  std::vector<std::string> pieces;  // decode(id) of every token

  [[noreturn]] void bad(const std::string& what) const { fail_input(source + ": " + what); }

  void load(const Model& model);
  void partition(std::string_view text, bool parse_special, std::vector<Fragment>& frags) const;
  std::string piece_of(int32_t id, bool special) const;
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
};

void Tokenizer::Impl::load(const Model& model) {
  source = model.source.empty() ? std::string("model") : model.source.string();
  auto kv = [&](std::string_view key) { return model.find_kv(key); };
  auto get_string = [&](std::string_view key) -> const std::string* {
    const GgufValue* v = kv(key);
    if (!v) return nullptr;
    if (v->type() != GgufType::STRING) bad("metadata " + std::string(key) + " is not a string");
    return &std::get<std::string>(v->v);
  };
  auto get_bool = [&](std::string_view key, bool& out) {
    if (const GgufValue* v = kv(key)) {
      if (!v->is_number()) bad("metadata " + std::string(key) + " is not a boolean");
      out = v->as_int(key) != 0;
    }
  };

  const std::string* model_name = get_string("tokenizer.ggml.model");
  if (!model_name) bad("no tokenizer metadata (tokenizer.ggml.model missing)");
  const std::string* pre_name = get_string("tokenizer.ggml.pre");

  // Defaults per kind, exactly as llama.cpp sets them before reading overrides.
  if (*model_name == "llama") {
    kind = Kind::spm;
    bos = 1, eos = 2, unk = 0;
    add_space_prefix = true, add_bos = true;
  } else if (*model_name == "gpt2") {
    kind = Kind::bpe;
    bos = 11, eos = 11;
    clean_spaces = true;
    const std::string pre = pre_name ? *pre_name : std::string("default");
    const auto it = std::find_if(std::begin(kPreTypes), std::end(kPreTypes),
                                 [&](const PreInfo& p) { return p.name == pre; });
    if (it == std::end(kPreTypes)) bad("unsupported pre-tokenizer tokenizer.ggml.pre '" + pre + "'");
    bpe.pre = it->type;
    bpe.ignore_merges = it->ignore_merges;
    add_bos = it->add_bos;
    clean_spaces = it->clean_spaces;
  } else if (*model_name == "bert") {
    kind = Kind::wpm;
    bos = 101, unk = 100, sep = 102;
    add_bos = true, add_sep = true, clean_spaces = true;
  } else {
    bad("unsupported tokenizer model '" + *model_name + "' (supported: llama, gpt2, bert)");
  }
  get_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);

  // Vocabulary, scores and types; every count is checked against the token list.
  const GgufValue* tokens_v = kv("tokenizer.ggml.tokens");
  if (!tokens_v || tokens_v->type() != GgufType::ARRAY ||
      std::get<GgufArray>(tokens_v->v).elem != GgufType::STRING)
    bad("tokenizer.ggml.tokens missing or not an array of strings");
  const auto& items = std::get<GgufArray>(tokens_v->v).items;
  if (items.empty() || items.size() > static_cast<size_t>(INT32_MAX)) bad("tokenizer.ggml.tokens has a bad count");
  const size_t n = items.size();

  const GgufArray* scores = nullptr;
  if (const GgufValue* v = kv("tokenizer.ggml.scores")) {
    if (v->type() != GgufType::ARRAY) bad("tokenizer.ggml.scores is not an array");
    scores = &std::get<GgufArray>(v->v);
    if (scores->elem != GgufType::FLOAT32 && scores->elem != GgufType::INT32)
      bad("tokenizer.ggml.scores must hold f32 or i32");
    if (scores->items.size() < n) bad("tokenizer.ggml.scores is shorter than the token list");
  }
  const GgufArray* types = nullptr;
  if (const GgufValue* v = kv("tokenizer.ggml.token_type")) {
    if (v->type() != GgufType::ARRAY) bad("tokenizer.ggml.token_type is not an array");
    types = &std::get<GgufArray>(v->v);
    if (types->elem != GgufType::INT32) bad("tokenizer.ggml.token_type must hold i32");
    if (types->items.size() < n) bad("tokenizer.ggml.token_type is shorter than the token list");
  }

  vocab.tokens.resize(n);
  vocab.index.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto& t = vocab.tokens[i];
    const auto* s = std::get_if<std::string>(&items[i].v);
    if (!s) bad("tokenizer.ggml.tokens[" + std::to_string(i) + "] is not a string");
    t.text = s->empty() ? "[EMPTY_" + std::to_string(i) + "]" : *s;  // as llama.cpp does
    if (scores) t.score = static_cast<float>(scores->items[i].as_float("tokenizer.ggml.scores"));
    if (types) t.attr = attr_from_type(types->items[i].as_int("tokenizer.ggml.token_type"));
    // Later duplicates win, like llama.cpp's token_to_id[word] = i.
    vocab.index[t.text] = static_cast<int32_t>(i);
    vocab.max_len = std::max(vocab.max_len, t.text.size());
  }

  if (kind == Kind::spm) vocab.spm_words_independent = tok::spm_words_are_independent(vocab);
  if (kind == Kind::bpe) {
    const GgufValue* v = kv("tokenizer.ggml.merges");
    if (!v || v->type() != GgufType::ARRAY || std::get<GgufArray>(v->v).elem != GgufType::STRING)
      bad("BPE tokenizer without tokenizer.ggml.merges (array of strings)");
    const auto& merges = std::get<GgufArray>(v->v).items;
    ranks.rank.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto* m = std::get_if<std::string>(&merges[i].v);
      if (!m) bad("tokenizer.ggml.merges[" + std::to_string(i) + "] is not a string");
      // llama.cpp splits at the first space after the first byte; a merge without one becomes
      // the pair ("", "") which can never apply.
      const size_t pos = m->size() > 1 ? m->find(' ', 1) : std::string::npos;
      if (pos == std::string::npos) continue;
      ranks.rank.emplace(*m, static_cast<int32_t>(std::min<size_t>(i, INT32_MAX)));  // first wins
    }
  }

  // Special ids: defaults out of range are disabled, file values out of range are ignored.
  const int32_t nv = vocab.size();
  auto special_id = [&](std::string_view key, int32_t& id) {
    if (id >= nv) id = -1;
    if (const GgufValue* v = kv(key)) {
      if (!v->is_integer()) bad("metadata " + std::string(key) + " is not an integer");
      const int64_t x = v->as_int(key);
      if (x >= 0 && x < nv) id = static_cast<int32_t>(x);
    }
  };
  special_id("tokenizer.ggml.bos_token_id", bos);
  special_id("tokenizer.ggml.eos_token_id", eos);
  special_id("tokenizer.ggml.unknown_token_id", unk);
  special_id("tokenizer.ggml.seperator_token_id", sep);
  get_bool("tokenizer.ggml.add_bos_token", add_bos);
  get_bool("tokenizer.ggml.add_eos_token", add_eos);
  get_bool("tokenizer.ggml.add_sep_token", add_sep);
  get_bool("tokenizer.ggml.normalizer.lowercase", lowercase);
  strip_accents = lowercase;
  get_bool("tokenizer.ggml.normalizer.strip_accents", strip_accents);

  for (int32_t id = 0; id < nv; ++id)
    if (vocab.tokens[id].attr & (tok::kControl | tok::kUserDefined | tok::kUnknown)) specials.push_back(id);
  // Longest first so that a special token containing another one wins; ties by id for a
  // deterministic order.
  std::stable_sort(specials.begin(), specials.end(), [&](int32_t a, int32_t b) {
    return vocab.tokens[a].text.size() > vocab.tokens[b].text.size();
  });

  // Phi-3 conversions rely on llama.cpp stripping the whitespace right of special tokens.
  if (const std::string* name = get_string("general.name")) {
    std::string lower = *name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos) {
      for (int32_t id : specials) vocab.tokens[id].attr |= tok::kRstrip;
      for (std::string_view t : {"</s>"})
        if (int32_t id = vocab.find(t); id >= 0) vocab.tokens[id].attr |= tok::kRstrip;
      for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"})
        if (int32_t id = vocab.find(t); id >= 0) vocab.tokens[id].attr &= ~tok::kRstrip;
    }
  }

  pieces.resize(n);
  for (int32_t id = 0; id < nv; ++id) pieces[id] = piece_of(id, false);
}

// Cuts special tokens out of the text, longest token first. Without parse_special only
// user-defined tokens are cut (control and unknown tokens stay plain text), as llama.cpp does.
void Tokenizer::Impl::partition(std::string_view text, bool parse_special, std::vector<Fragment>& frags) const {
  frags.clear();
  if (text.empty()) return;
  frags.push_back({-1, 0, text.size()});
  for (int32_t id : specials) {
    const auto& data = vocab.tokens[id];
    if (!parse_special && (data.attr & (tok::kControl | tok::kUnknown))) continue;
    const std::string_view needle = data.text;
    std::vector<Fragment> next;
    next.reserve(frags.size());
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t off = f.offset, len = f.length;
      while (len > 0) {
        const size_t hit = text.substr(off, len).find(needle);
        if (hit == std::string_view::npos) break;
        size_t left_len = hit;
        if (data.attr & tok::kLstrip)
          while (left_len > 0 && std::isspace(static_cast<unsigned char>(text[off + left_len - 1]))) --left_len;
        if (left_len > 0) next.push_back({-1, off, left_len});
        next.push_back({id, 0, 0});
        size_t right = off + hit + needle.size();
        size_t right_len = off + len - right;
        if (data.attr & tok::kRstrip)
          while (right_len > 0 && std::isspace(static_cast<unsigned char>(text[right]))) ++right, --right_len;
        off = right, len = right_len;
      }
      if (len > 0) next.push_back({-1, off, len});
    }
    frags = std::move(next);
  }
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<Fragment> frags;
  partition(text, parse_special, frags);
  std::vector<int32_t> out;
  std::string buf;
  switch (kind) {
    case Kind::spm: {
      if (add_special && add_bos && bos >= 0) out.push_back(bos);
      bool prev_special = true;  // the first fragment gets the prefix space too
      for (const Fragment& f : frags) {
        if (f.token >= 0) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        buf.clear();
        if (add_space_prefix && prev_special) buf = ' ';
        buf.append(text.substr(f.offset, f.length));
        replace_all(buf, " ", kSpace);
        tok::spm_tokenize(vocab, buf, unk, out);
        prev_special = false;
      }
      if (add_special && add_eos && eos >= 0) out.push_back(eos);
      break;
    }
    case Kind::bpe: {
      if (add_special && add_bos && bos >= 0) out.push_back(bos);
      for (const Fragment& f : frags) {
        if (f.token >= 0) out.push_back(f.token);
        else tok::bpe_tokenize(vocab, ranks, bpe, text.substr(f.offset, f.length), out);
      }
      if (add_special && add_eos && eos >= 0) out.push_back(eos);
      break;
    }
    case Kind::wpm: {
      if (add_special && bos >= 0) out.push_back(bos);
      for (const Fragment& f : frags) {
        if (f.token >= 0) out.push_back(f.token);
        else tok::wpm_tokenize(vocab, unk, text.substr(f.offset, f.length), lowercase, strip_accents, out);
      }
      if (add_special && sep >= 0) out.push_back(sep);
      break;
    }
  }
  return out;
}

// The text of one token as llama.cpp's token_to_piece renders it. Control and unknown tokens
// print as nothing unless `special` asks for their text.
std::string Tokenizer::Impl::piece_of(int32_t id, bool special) const {
  if (id < 0 || id >= vocab.size()) return {};
  const auto& t = vocab.tokens[id];
  if (t.attr & (tok::kControl | tok::kUnknown)) return special ? t.text : std::string();
  if (t.attr & tok::kUserDefined) return t.text;
  if (t.attr & tok::kByte) {
    if (kind == Kind::bpe) return unicode::gpt2_bytes_decode(t.text);
    // "<0xXX>"
    if (t.text.size() == 6 && t.text.compare(0, 3, "<0x") == 0) {
      const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
      };
      const int hi = hex(t.text[3]), lo = hex(t.text[4]);
      if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    return {};
  }
  if (t.attr & tok::kNormal) {
    if (kind == Kind::bpe) return unicode::gpt2_bytes_decode(t.text);
    std::string s = t.text;
    replace_all(s, kSpace, " ");
    return s;
  }
  return {};  // unused / undefined tokens print as nothing
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_model(const Model& model) {
  auto impl = std::make_unique<Impl>();
  impl->load(model);
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  return impl_->encode(text, add_bos, false);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  return impl_->encode(text, add_bos, parse_special);
}

std::string Tokenizer::decode(int32_t id) const {
  if (id < 0 || id >= impl_->vocab.size()) return {};
  return impl_->pieces[id];
}

namespace {

// Hugging Face's clean_up_tokenization_spaces as llama.cpp's detokenizer applies it, in place and
// in three passes: " ?" " !" " ." " ," lose the space, a lone " ' " loses both spaces, and
// " 's" " 'm" " 're" " 've" lose the space.
void clean_up_spaces(std::string& t) {
  auto pass = [&t](auto step) {
    if (t.empty()) return;
    size_t total = 1;
    const size_t n = t.size();
    for (size_t i = 1; i < n; ++i) step(i, total, n);
    t.resize(total);
  };
  pass([&t](size_t& i, size_t& total, size_t) {
    const char x = t[i];
    if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    t[total++] = x;
  });
  pass([&t](size_t& i, size_t& total, size_t n) {
    const char x = t[i];
    if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
      --total;
      t[++i] = '\0';
    }
    t[total++] = x;
  });
  pass([&t](size_t& i, size_t& total, size_t n) {
    const char x = t[i];
    if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      const char x1 = t[i + 1];
      if (x1 == 's' || x1 == 'm') --total;
      else if (i + 2 < n && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) --total;
    }
    t[total++] = x;
  });
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  // SentencePiece adds a space in front of the text; drop it again from the first text token
  // (at the start or right after a leading BOS), as SentencePiece's own decoder does.
  bool strip = impl_->add_space_prefix;
  size_t i = 0;
  if (!ids.empty() && impl_->bos >= 0 && ids[0] == impl_->bos) ++i;
  for (; i < ids.size(); ++i) {
    std::string p = decode(ids[i]);
    if (strip && !p.empty()) {  // only the first token that prints anything
      if (p[0] == ' ') p.erase(0, 1);
      strip = false;
    }
    out += p;
  }
  if (impl_->clean_spaces) clean_up_spaces(out);
  return out;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= impl_->vocab.size()) return {};
  return impl_->vocab.tokens[id].text;
}

int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::n_vocab() const { return impl_->vocab.size(); }

std::string_view Tokenizer::kind() const {
  switch (impl_->kind) {
    case Kind::spm: return "spm";
    case Kind::bpe: return "bpe";
    case Kind::wpm: return "wpm";
  }
  return "spm";
}

}  // namespace dcq
