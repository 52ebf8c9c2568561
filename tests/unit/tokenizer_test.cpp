// Tokenizers against llama.cpp's own outputs: the stories260K SentencePiece vocabulary (prompt and
// the first 1000 bytes of TinyStories) and llama.cpp's conformance files (vocab/*.gguf + .inp/.out).
#include "dcq/tokenizer.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <sstream>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "runtime/tokenizer_impl.hpp"
#include "runtime/unicode.hpp"
#include "test_support.hpp"

namespace dcq {
namespace {

using test::data_dir;
using test::model_path;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << p;
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// "[1, 403, 407]" or "1, 403, 407" or "1 403 407" -> ids.
std::vector<int32_t> parse_ids(std::string s) {
  for (char& c : s)
    if (c == '[' || c == ']' || c == ',') c = ' ';
  std::istringstream in(s);
  std::vector<int32_t> ids;
  for (long v; in >> v;) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

const Model& stories() {
  static const Model m = load_model(model_path("stories260K/stories260K-F32.gguf"));
  return m;
}

TEST(TokenizerSpm, StoriesPromptWithBos) {
  DCQ_REQUIRE_DATA();
  const auto tok = Tokenizer::from_model(stories());
  EXPECT_EQ(tok.kind(), "spm");
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_EQ(tok.encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("Once upon a time", false), (std::vector<int32_t>{403, 407, 261, 378}));
  // Same ids as llama.cpp wrote next to its logits.
  const auto ref = read_text(data_dir() / "reference/stories260K/llamacpp-stories260K-F32-prompt.txt");
  const auto pos = ref.find("token ids:");
  ASSERT_NE(pos, std::string::npos);
  EXPECT_EQ(tok.encode("Once upon a time", true), parse_ids(ref.substr(pos + 10)));
}

TEST(TokenizerSpm, TinyStoriesFirst1000Bytes) {
  DCQ_REQUIRE_DATA();
  const auto tok = Tokenizer::from_model(stories());
  const std::string text = read_text(data_dir() / "text/tinystories_val.txt").substr(0, 1000);
  const auto expected = parse_ids(read_text(data_dir() / "reference/stories260K/tokens-tinystories-first1000B.txt"));
  ASSERT_GT(expected.size(), 100u);
  ASSERT_EQ(expected[0], 1);  // the reference includes BOS
  const auto ids = tok.encode(text, true);
  EXPECT_EQ(ids, expected);
  // Round trip: the decoded ids give the text back (the vocabulary has byte fallback).
  EXPECT_EQ(tok.decode(ids), text);
}

// The llama2.c checkpoint carries its tokenizer in tok512.bin; once read into a Model it must
// tokenize exactly like the GGUF conversion.
TEST(TokenizerSpm, Llama2cCheckpointTokenizesLikeGguf) {
  DCQ_REQUIRE_DATA();
  const Model m = load_model(model_path("stories260K/stories260K.bin"));
  const auto tok = Tokenizer::from_model(m);
  const std::string text = read_text(data_dir() / "text/tinystories_val.txt").substr(0, 1000);
  const auto expected = parse_ids(read_text(data_dir() / "reference/stories260K/tokens-tinystories-first1000B.txt"));
  EXPECT_EQ(tok.encode(text, true), expected);
  EXPECT_EQ(tok.decode(13), "\n");
}

TEST(TokenizerSpm, DecodeStreamingPieces) {
  DCQ_REQUIRE_DATA();
  const auto tok = Tokenizer::from_model(stories());
  EXPECT_EQ(tok.decode(403), " Once");  // U+2581 -> space
  EXPECT_EQ(tok.decode(1), "");         // BOS is a control token: prints nothing
  EXPECT_EQ(tok.token_text(1), "<s>");
  EXPECT_EQ(tok.decode(13), "\n");  // <0x0A>
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 403, 407, 261, 378}), "Once upon a time");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{403, 407}), "Once upon");
  EXPECT_EQ(tok.decode(-1), "");
  EXPECT_EQ(tok.decode(512), "");
}

TEST(TokenizerSpm, ByteFallbackAndEdgeCases) {
  DCQ_REQUIRE_DATA();
  const auto tok = Tokenizer::from_model(stories());
  EXPECT_EQ(tok.encode("", true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok.encode("", false).empty());
  // A character outside the 512-token vocabulary becomes its UTF-8 bytes as <0xXX> tokens.
  const auto ids = tok.encode("\xe5\xa5\xbd", false);  // 好
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(tok.token_text(ids[0]), "\xe2\x96\x81");  // the prefix space
  EXPECT_EQ(tok.token_text(ids[1]), "<0xE5>");
  EXPECT_EQ(tok.token_text(ids[2]), "<0xA5>");
  EXPECT_EQ(tok.token_text(ids[3]), "<0xBD>");
  EXPECT_EQ(tok.decode(ids), "\xe5\xa5\xbd");
  // Malformed UTF-8 is still tokenized byte by byte, never rejected.
  const std::string bad = "a\xff\xc3";
  EXPECT_EQ(tok.decode(tok.encode(bad, false)), bad);
}

TEST(TokenizerSpm, WholeTinyStoriesMatchesLlamaPerplexityCount) {
  DCQ_REQUIRE_DATA();
  // llama-perplexity reported 393,019 tokens for the whole file (BOS included).
  const auto tok = Tokenizer::from_model(stories());
  const std::string text = read_text(data_dir() / "text/tinystories_val.txt");
  ASSERT_EQ(text.size(), 794375u);
  const auto ids = tok.encode(text, true);
  EXPECT_EQ(ids.size(), 393019u);
  EXPECT_EQ(tok.decode(ids), text);
}

// The word-by-word merge shortcut must give exactly what one merge pass over the whole text gives.
TEST(TokenizerSpm, WordByWordMergingEqualsWholeText) {
  DCQ_REQUIRE_DATA();
  const Model m = load_model(data_dir() / "vocab/ggml-vocab-llama-spm.gguf");
  tok::Vocab v;
  const auto& toks = m.find_kv("tokenizer.ggml.tokens")->as_array("tokens").items;
  const auto& scores = m.find_kv("tokenizer.ggml.scores")->as_array("scores").items;
  for (size_t i = 0; i < toks.size(); ++i) {
    v.tokens.push_back({toks[i].as_string("t"), static_cast<float>(scores[i].as_float("s")), tok::kNormal});
    v.index[v.tokens.back().text] = static_cast<int32_t>(i);
  }
  ASSERT_TRUE(tok::spm_words_are_independent(v));
  std::string text = read_text(data_dir() / "text/wikitext2-test.txt").substr(0, 60000);
  text += "\xff\xe2\x96 x\xf0\xe2\x96\x81y  \xe5\xa5\xbd\xe5";  // malformed bytes next to spaces
  std::string escaped;
  for (char c : text) escaped += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
  std::vector<int32_t> by_word, whole;
  v.spm_words_independent = true;
  tok::spm_tokenize(v, escaped, 0, by_word);
  v.spm_words_independent = false;
  tok::spm_tokenize(v, escaped, 0, whole);
  EXPECT_GT(whole.size(), 10000u);
  EXPECT_EQ(by_word, whole);
  // A vocabulary with a token that spans a word start must not take the shortcut.
  v.tokens.push_back({"a\xe2\x96\x81" "b", 0.0f, tok::kNormal});
  EXPECT_FALSE(tok::spm_words_are_independent(v));
}

TEST(TokenizerBpe, SpecialTokensAndDecode) {
  DCQ_REQUIRE_DATA();
  const Model m = load_model(data_dir() / "vocab/ggml-vocab-gpt-2.gguf");
  const auto tok = Tokenizer::from_model(m);
  EXPECT_EQ(tok.kind(), "bpe");
  // Control tokens are plain text unless special parsing is asked for.
  EXPECT_EQ(tok.encode("Hello world<|endoftext|>", false, true), (std::vector<int32_t>{15496, 995, 50256}));
  EXPECT_EQ(tok.encode("Hello world<|endoftext|>", false).size(), 9u);
  EXPECT_EQ(tok.decode(995), " world");  // U+0120 maps back to a space
  EXPECT_EQ(tok.decode(50256), "");       // control token
  EXPECT_EQ(tok.token_text(50256), "<|endoftext|>");
  EXPECT_EQ(tok.decode(tok.encode(" tab\there\nnew line \xf0\x9f\xa6\x99", false)), " tab\there\nnew line \xf0\x9f\xa6\x99");
}

TEST(TokenizerBpe, UserDefinedTokensAreSplitFirst) {
  DCQ_REQUIRE_DATA();
  // MPT's vocabulary has user-defined runs of spaces: they win over the pre-tokenizer.
  const Model m = load_model(data_dir() / "vocab/ggml-vocab-mpt.gguf");
  const auto tok = Tokenizer::from_model(m);
  EXPECT_EQ(tok.encode("a    b", false), (std::vector<int32_t>{66, 50274, 67}));
}

TEST(TokenizerWpm, ClsSepAndUnknown) {
  DCQ_REQUIRE_DATA();
  const Model m = load_model(data_dir() / "vocab/ggml-vocab-bert-bge.gguf");
  const auto tok = Tokenizer::from_model(m);
  EXPECT_EQ(tok.kind(), "wpm");
  EXPECT_EQ(tok.encode("Hello, world", true), (std::vector<int32_t>{101, 7592, 1010, 2088, 102}));
  EXPECT_EQ(tok.encode("H\xc3\xa9llo", false), tok.encode("hello", false));  // accents stripped, lowercased
}

TEST(Unicode, PropertiesAndUtf8) {
  namespace U = dcq::unicode;
  EXPECT_TRUE(U::flags('a') & U::kLetter);
  EXPECT_TRUE(U::flags('7') & U::kNumber);
  EXPECT_TRUE(U::flags(',') & U::kPunctuation);
  EXPECT_TRUE(U::flags('+') & U::kSymbol);
  EXPECT_TRUE(U::flags(' ') & U::kWhitespace);
  EXPECT_TRUE(U::flags(0x3000) & U::kWhitespace);  // ideographic space
  EXPECT_TRUE(U::flags(0x4E2D) & U::kLetter);      // 中
  EXPECT_TRUE(U::flags(0x0301) & U::kMark);        // combining acute
  EXPECT_EQ(U::flags(0x110000), 0);
  EXPECT_EQ(U::to_lower('A'), uint32_t('a'));
  EXPECT_EQ(U::to_lower(0x0130), uint32_t('i'));   // İ: simple mapping
  EXPECT_EQ(U::to_lower(0x0411), 0x0431u);         // Б -> б
  EXPECT_EQ(U::nfd_first(0x00E9), uint32_t('e'));  // é
  EXPECT_EQ(U::nfd_first('x'), uint32_t('x'));
  EXPECT_EQ(U::decode_utf8("a\xff\xe4\xb8"), (std::vector<uint32_t>{'a', 0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_EQ(U::encode_utf8(U::decode_utf8("\xf0\x9f\xa6\x99 \xe4\xb8\xad")), "\xf0\x9f\xa6\x99 \xe4\xb8\xad");
  // GPT-2 byte alphabet: a bijection, space -> U+0120, printable ASCII unchanged.
  EXPECT_EQ(U::gpt2_byte_to_utf8(' '), "\xc4\xa0");
  EXPECT_EQ(U::gpt2_byte_to_utf8('A'), "A");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(U::gpt2_bytes_decode(U::gpt2_bytes_encode(all)), all);
}

TEST(Tokenizer, MissingMetadataIsBadInputNamingTheFile) {
  Model m;
  m.source = "/tmp/no-tokenizer.gguf";
  try {
    (void)Tokenizer::from_model(m);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("no-tokenizer.gguf"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, ForgedCountsAreRejected) {
  Model m;
  m.source = "forged.gguf";
  m.set_kv("tokenizer.ggml.model", GgufValue{std::string("llama")});
  GgufArray toks{GgufType::STRING, {GgufValue{std::string("a")}, GgufValue{std::string("b")}}};
  m.set_kv("tokenizer.ggml.tokens", GgufValue{toks});
  GgufArray scores{GgufType::FLOAT32, {GgufValue{1.0f}}};  // shorter than the token list
  m.set_kv("tokenizer.ggml.scores", GgufValue{scores});
  EXPECT_THROW((void)Tokenizer::from_model(m), Error);
  m.set_kv("tokenizer.ggml.model", GgufValue{std::string("nonsense")});
  EXPECT_THROW((void)Tokenizer::from_model(m), Error);
}

// ---- llama.cpp's conformance files ----

struct VocabCase {
  std::string input;
  std::vector<int32_t> expected;
};

// The layout test-tokenizer-0 reads: inputs separated by "\n__ggml_vocab_test__\n" (so each
// input loses exactly that one newline), one line of space-separated ids per input.
std::vector<VocabCase> read_cases(const std::filesystem::path& gguf) {
  const std::string raw = read_text(gguf.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(gguf.string() + ".out");
  std::vector<VocabCase> cases;
  size_t i = 0;
  for (std::string line; std::getline(out, line); ++i) {
    if (i >= inputs.size()) break;
    cases.push_back({inputs[i], parse_ids(line)});
  }
  EXPECT_EQ(cases.size(), inputs.size()) << gguf;
  return cases;
}

class VocabConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabConformance, MatchesLlamaCpp) {
  DCQ_REQUIRE_DATA();
  const auto path = data_dir() / "vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  const Model model = load_model(path);
  const auto tok = Tokenizer::from_model(model);
  const auto cases = read_cases(path);
  ASSERT_FALSE(cases.empty());
  size_t matched = 0, round_trips = 0;
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.input, false);
    if (tok.decode(ids) == c.input) ++round_trips;
    else if (std::getenv("DCQ_TOKENIZER_DEBUG")) std::printf("  no round trip: '%s' -> '%s'\n", c.input.c_str(), tok.decode(ids).c_str());
    if (ids == c.expected) {
      ++matched;
      continue;
    }
    std::string got, want;
    for (auto id : ids) got += std::to_string(id) + " ";
    for (auto id : c.expected) want += std::to_string(id) + " ";
    ADD_FAILURE() << GetParam() << ": input '" << c.input << "'\n  got      " << got << "\n  expected " << want;
  }
  std::printf("[ vocab    ] %-16s %s: %zu/%zu strings match, %zu decode back to the input\n", GetParam().c_str(),
              std::string(tok.kind()).c_str(), matched, cases.size(), round_trips);
  EXPECT_EQ(matched, cases.size());
  // SentencePiece with byte fallback is lossless (decode drops exactly the prefix space it
  // added); BPE's decode cleans spaces like Hugging Face ("you ?" -> "you?") and WordPiece
  // lowercases, so only SentencePiece must round-trip every string.
  if (tok.kind() == "spm") {
    EXPECT_EQ(round_trips, cases.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Files, VocabConformance,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "starcoder",
                                           "deepseek-coder", "bert-bge"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace dcq

namespace dcq {
namespace {

TEST(TokenizeCli, IdsListAndPieces) {
  DCQ_REQUIRE_DATA();
  const std::string model = model_path("stories260K/stories260K-F32.gguf").string();
  auto r = test::run_dcq("tokenize " + model + " -p 'Once upon a time' --ids");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[1, 403, 407, 261, 378]\n");
  r = test::run_dcq("tokenize " + model + " -p 'Once upon a time' --ids --no-bos");
  EXPECT_EQ(r.out, "[403, 407, 261, 378]\n");
  r = test::run_dcq("tokenize " + model + " -p 'Once upon'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "     1 -> '<s>'\n   403 -> ' Once'\n   407 -> ' upon'\n");
  r = test::run_dcq("tokenize " + model + " -p 'Once' --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kind"], "spm");
  EXPECT_EQ(j["ids"], nlohmann::json::array({1, 403}));
}

TEST(TokenizeCli, PromptFileAndSpecialTokens) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const auto prompt = dir / "prompt.txt";
  {
    std::ofstream(prompt, std::ios::binary) << "Hello world<|endoftext|>";
  }
  const std::string vocab = (data_dir() / "vocab/ggml-vocab-gpt-2.gguf").string();
  auto r = test::run_dcq("tokenize " + vocab + " -f " + prompt.string() + " --ids --special");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[15496, 995, 50256]\n");
  r = test::run_dcq("tokenize " + vocab + " -f " + prompt.string() + " --ids");
  EXPECT_EQ(r.out, "[15496, 995, 27, 91, 437, 1659, 5239, 91, 29]\n");
  r = test::run_dcq("tokenize " + vocab + " -f " + (dir / "missing.txt").string());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;
  r = test::run_dcq("tokenize " + vocab);  // no text given
  EXPECT_EQ(r.exit_code, 2);
}

TEST(TokenizeCli, ModelWithoutTokenizerIsBadInput) {
  DCQ_REQUIRE_DATA();
  const std::string folder = model_path("stories260K-hf-f32").string();
  const auto r = test::run_dcq("tokenize " + folder + " -p hi");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("stories260K-hf-f32"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokenizer"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dcq

namespace dcq {
namespace {

// Pre-tokenizers against the original Hugging Face regexes, evaluated by Python's `regex` module
// (the conformance inputs plus edge cases: CRLF runs, trailing spaces, upper-case contractions,
// non-ASCII digits and spaces). This covers the llama3 and qwen2 splitters, whose vocabularies
// are not among the shared conformance files.
struct SplitCase {
  tok::PreType pre;
  const char* text;
  std::vector<std::string> pieces;
};

TEST(BpePreTokenizer, MatchesReferenceRegex) {
  using tok::PreType;
  const std::vector<SplitCase> cases = {
    {PreType::llama3, "ied 4 \xC2""\xBD"" months", {"ied", " ", "4", " ", "\xC2""\xBD", " months"}},
    {PreType::llama3, "\xC3""\x84""pfel", {"\xC3""\x84""pfel"}},
    {PreType::llama3, " ", {" "}},
    {PreType::llama3, "  ", {"  "}},
    {PreType::llama3, "   ", {"   "}},
    {PreType::llama3, "\x09", {"\x09"}},
    {PreType::llama3, "\x0A", {"\x0A"}},
    {PreType::llama3, "\x0A""\x0A", {"\x0A""\x0A"}},
    {PreType::llama3, "\x0A""\x0A""\x0A", {"\x0A""\x0A""\x0A"}},
    {PreType::llama3, "\x09""\x0A", {"\x09""\x0A"}},
    {PreType::llama3, "Hello world", {"Hello", " world"}},
    {PreType::llama3, " Hello world", {" Hello", " world"}},
    {PreType::llama3, "Hello World", {"Hello", " World"}},
    {PreType::llama3, " Hello World", {" Hello", " World"}},
    {PreType::llama3, " Hello World!", {" Hello", " World", "!"}},
    {PreType::llama3, "Hello, world!", {"Hello", ",", " world", "!"}},
    {PreType::llama3, " Hello, world!", {" Hello", ",", " world", "!"}},
    {PreType::llama3, " this is \xF0""\x9F""\xA6""\x99"".cpp", {" this", " is", " \xF0""\x9F""\xA6""\x99"".", "cpp"}},
    {PreType::llama3, "w048 7tuijk dsdfhu", {"w", "048", " ", "7", "tuijk", " dsdfhu"}},
    {PreType::llama3, "\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", {"\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"}},
    {PreType::llama3, "\xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85""\xE1""\x9F""\x81""\xE1""\x9E""\x89", {"\xE1""\x9E""\x80", "\xE1""\x9E""\xB6""\xE1""\x9E""\x93", "\xE1""\x9F""\x8B""\xE1""\x9E""\x8F", "\xE1""\x9F""\x82""\xE1""\x9E""\x96", "\xE1""\x9E""\xB7""\xE1""\x9E""\x9F", "\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85", "\xE1""\x9F""\x81""\xE1""\x9E""\x89"}},
    {PreType::llama3, "\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" (only emoji that has its own token)", {"\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " (", "only", " emoji", " that", " has", " its", " own", " token", ")"}},
    {PreType::llama3, "Hello", {"Hello"}},
    {PreType::llama3, " Hello", {" Hello"}},
    {PreType::llama3, "  Hello", {" ", " Hello"}},
    {PreType::llama3, "   Hello", {"  ", " Hello"}},
    {PreType::llama3, "    Hello", {"   ", " Hello"}},
    {PreType::llama3, "    Hello\x0A""    Hello", {"   ", " Hello", "\x0A", "   ", " Hello"}},
    {PreType::llama3, " (", {" ("}},
    {PreType::llama3, "\x0A"" =", {"\x0A", " ="}},
    {PreType::llama3, "' era", {"'", " era"}},
    {PreType::llama3, "Hello, y'all! How are you \xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E", {"Hello", ",", " y", "'all", "!", " How", " are", " you", " \xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "131", "415", "1", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E"}},
    {PreType::llama3, "!!!!!!", {"!!!!!!"}},
    {PreType::llama3, "3", {"3"}},
    {PreType::llama3, "33", {"33"}},
    {PreType::llama3, "333", {"333"}},
    {PreType::llama3, "3333", {"333", "3"}},
    {PreType::llama3, "33333", {"333", "33"}},
    {PreType::llama3, "333333", {"333", "333"}},
    {PreType::llama3, "3333333", {"333", "333", "3"}},
    {PreType::llama3, "33333333", {"333", "333", "33"}},
    {PreType::llama3, "333333333", {"333", "333", "333"}},
    {PreType::llama3, "C\xE1""\xBB""\xAD""a Vi\xE1""\xBB""\x87""t", {"C\xE1""\xBB""\xAD""a", " Vi\xE1""\xBB""\x87""t"}},
    {PreType::llama3, " discards", {" discards"}},
    {PreType::llama3, "\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     \x0A""\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99"" 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E"" ------======= \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"" ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL", {"\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     \x0A", "\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99", " ", "3", " ", "33", " ", "333", " ", "333", "3", " ", "333", "33", " ", "333", "333", " ", "333", "333", "3", " ", "333", "333", "33", " ", "3", ".", "3", " ", "3", "..", "3", " ", "3", "...", "3", " \xE1""\x9E""\x80", "\xE1""\x9E""\xB6""\xE1""\x9E""\x93", "\xE1""\x9F""\x8B""\xE1""\x9E""\x8F", "\xE1""\x9F""\x82""\xE1""\x9E""\x96", "\xE1""\x9E""\xB7""\xE1""\x9E""\x9F", "\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6""\xE1""\x9E""\x85", "\xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "131", "415", "1", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E", " ------=======", " \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", " ''''''```````\"\"\"\"......!!!!!!??????", " I", "'ve", " been", " '", "told", " he", "'s", " there", ",", " '", "RE", " you", " sure", "?", " '", "M", " not", " sure", " I", "'ll", " make", " it", ",", " '", "D", " you", " like", " some", " tea", "?", " We", "'Ve", " a", "'lL"}},
    {PreType::llama3, "Hello\x0D""\x0A""\x0D""\x0A""  world", {"Hello", "\x0D""\x0A""\x0D""\x0A", " ", " world"}},
    {PreType::llama3, "  \x0A""\x0A""  x", {"  \x0A""\x0A", " ", " x"}},
    {PreType::llama3, "I'M HERE'S it's", {"I", "'M", " HERE", "'S", " it", "'s"}},
    {PreType::llama3, "1234567 12", {"123", "456", "7", " ", "12"}},
    {PreType::llama3, "a\xC2""\xA0""b", {"a", "\xC2""\xA0""b"}},
    {PreType::llama3, "x  \x09""\x0A"" y", {"x", "  \x09""\x0A", " y"}},
    {PreType::llama3, "'ll 've 'Re", {"'ll", " '", "ve", " '", "Re"}},
    {PreType::llama3, "ab'CD", {"ab", "'CD"}},
    {PreType::llama3, "\xE3""\x80""\x80""\xE4""\xB8""\xAD""\xE6""\x96""\x87"" \xE6""\xB5""\x8B""\xE8""\xAF""\x95", {"\xE3""\x80""\x80""\xE4""\xB8""\xAD""\xE6""\x96""\x87", " \xE6""\xB5""\x8B""\xE8""\xAF""\x95"}},
    {PreType::llama3, "abc   ", {"abc", "   "}},
    {PreType::llama3, "  leading", {" ", " leading"}},
    {PreType::llama3, "a\x0A""\x0A""\x0A""b\x0D""\x0A", {"a", "\x0A""\x0A""\x0A", "b", "\x0D""\x0A"}},
    {PreType::llama3, "$$$ ... !!!\x0A""\x0A", {"$$$", " ...", " !!!\x0A""\x0A"}},
    {PreType::llama3, "\xD9""\xA1""\xD9""\xA2""\xD9""\xA3""\xD9""\xA4"" \xC2""\xBD""\xC2""\xBD", {"\xD9""\xA1""\xD9""\xA2""\xD9""\xA3", "\xD9""\xA4", " ", "\xC2""\xBD""\xC2""\xBD"}},
    {PreType::llama3, "caf\xC3""\xA9"" na\xCC""\x88""ive", {"caf\xC3""\xA9", " na", "\xCC""\x88""ive"}},
    {PreType::qwen2, "ied 4 \xC2""\xBD"" months", {"ied", " ", "4", " ", "\xC2""\xBD", " months"}},
    {PreType::qwen2, "\xC3""\x84""pfel", {"\xC3""\x84""pfel"}},
    {PreType::qwen2, " ", {" "}},
    {PreType::qwen2, "  ", {"  "}},
    {PreType::qwen2, "   ", {"   "}},
    {PreType::qwen2, "\x09", {"\x09"}},
    {PreType::qwen2, "\x0A", {"\x0A"}},
    {PreType::qwen2, "\x0A""\x0A", {"\x0A""\x0A"}},
    {PreType::qwen2, "\x0A""\x0A""\x0A", {"\x0A""\x0A""\x0A"}},
    {PreType::qwen2, "\x09""\x0A", {"\x09""\x0A"}},
    {PreType::qwen2, "Hello world", {"Hello", " world"}},
    {PreType::qwen2, " Hello world", {" Hello", " world"}},
    {PreType::qwen2, "Hello World", {"Hello", " World"}},
    {PreType::qwen2, " Hello World", {" Hello", " World"}},
    {PreType::qwen2, " Hello World!", {" Hello", " World", "!"}},
    {PreType::qwen2, "Hello, world!", {"Hello", ",", " world", "!"}},
    {PreType::qwen2, " Hello, world!", {" Hello", ",", " world", "!"}},
    {PreType::qwen2, " this is \xF0""\x9F""\xA6""\x99"".cpp", {" this", " is", " \xF0""\x9F""\xA6""\x99"".", "cpp"}},
    {PreType::qwen2, "w048 7tuijk dsdfhu", {"w", "0", "4", "8", " ", "7", "tuijk", " dsdfhu"}},
    {PreType::qwen2, "\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", {"\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"}},
    {PreType::qwen2, "\xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85""\xE1""\x9F""\x81""\xE1""\x9E""\x89", {"\xE1""\x9E""\x80", "\xE1""\x9E""\xB6""\xE1""\x9E""\x93", "\xE1""\x9F""\x8B""\xE1""\x9E""\x8F", "\xE1""\x9F""\x82""\xE1""\x9E""\x96", "\xE1""\x9E""\xB7""\xE1""\x9E""\x9F", "\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85", "\xE1""\x9F""\x81""\xE1""\x9E""\x89"}},
    {PreType::qwen2, "\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" (only emoji that has its own token)", {"\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " (", "only", " emoji", " that", " has", " its", " own", " token", ")"}},
    {PreType::qwen2, "Hello", {"Hello"}},
    {PreType::qwen2, " Hello", {" Hello"}},
    {PreType::qwen2, "  Hello", {" ", " Hello"}},
    {PreType::qwen2, "   Hello", {"  ", " Hello"}},
    {PreType::qwen2, "    Hello", {"   ", " Hello"}},
    {PreType::qwen2, "    Hello\x0A""    Hello", {"   ", " Hello", "\x0A", "   ", " Hello"}},
    {PreType::qwen2, " (", {" ("}},
    {PreType::qwen2, "\x0A"" =", {"\x0A", " ="}},
    {PreType::qwen2, "' era", {"'", " era"}},
    {PreType::qwen2, "Hello, y'all! How are you \xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E", {"Hello", ",", " y", "'all", "!", " How", " are", " you", " \xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "1", "3", "1", "4", "1", "5", "1", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E"}},
    {PreType::qwen2, "!!!!!!", {"!!!!!!"}},
    {PreType::qwen2, "3", {"3"}},
    {PreType::qwen2, "33", {"3", "3"}},
    {PreType::qwen2, "333", {"3", "3", "3"}},
    {PreType::qwen2, "3333", {"3", "3", "3", "3"}},
    {PreType::qwen2, "33333", {"3", "3", "3", "3", "3"}},
    {PreType::qwen2, "333333", {"3", "3", "3", "3", "3", "3"}},
    {PreType::qwen2, "3333333", {"3", "3", "3", "3", "3", "3", "3"}},
    {PreType::qwen2, "33333333", {"3", "3", "3", "3", "3", "3", "3", "3"}},
    {PreType::qwen2, "333333333", {"3", "3", "3", "3", "3", "3", "3", "3", "3"}},
    {PreType::qwen2, "C\xE1""\xBB""\xAD""a Vi\xE1""\xBB""\x87""t", {"C\xE1""\xBB""\xAD""a", " Vi\xE1""\xBB""\x87""t"}},
    {PreType::qwen2, " discards", {" discards"}},
    {PreType::qwen2, "\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     \x0A""\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99"" 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E"" ------======= \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"" ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL", {"\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     \x0A", "\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99", " ", "3", " ", "3", "3", " ", "3", "3", "3", " ", "3", "3", "3", "3", " ", "3", "3", "3", "3", "3", " ", "3", "3", "3", "3", "3", "3", " ", "3", "3", "3", "3", "3", "3", "3", " ", "3", "3", "3", "3", "3", "3", "3", "3", " ", "3", ".", "3", " ", "3", "..", "3", " ", "3", "...", "3", " \xE1""\x9E""\x80", "\xE1""\x9E""\xB6""\xE1""\x9E""\x93", "\xE1""\x9F""\x8B""\xE1""\x9E""\x8F", "\xE1""\x9F""\x82""\xE1""\x9E""\x96", "\xE1""\x9E""\xB7""\xE1""\x9E""\x9F", "\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6""\xE1""\x9E""\x85", "\xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "1", "3", "1", "4", "1", "5", "1", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E", " ------=======", " \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", " ''''''```````\"\"\"\"......!!!!!!??????", " I", "'ve", " been", " '", "told", " he", "'s", " there", ",", " '", "RE", " you", " sure", "?", " '", "M", " not", " sure", " I", "'ll", " make", " it", ",", " '", "D", " you", " like", " some", " tea", "?", " We", "'Ve", " a", "'lL"}},
    {PreType::qwen2, "Hello\x0D""\x0A""\x0D""\x0A""  world", {"Hello", "\x0D""\x0A""\x0D""\x0A", " ", " world"}},
    {PreType::qwen2, "  \x0A""\x0A""  x", {"  \x0A""\x0A", " ", " x"}},
    {PreType::qwen2, "I'M HERE'S it's", {"I", "'M", " HERE", "'S", " it", "'s"}},
    {PreType::qwen2, "1234567 12", {"1", "2", "3", "4", "5", "6", "7", " ", "1", "2"}},
    {PreType::qwen2, "a\xC2""\xA0""b", {"a", "\xC2""\xA0""b"}},
    {PreType::qwen2, "x  \x09""\x0A"" y", {"x", "  \x09""\x0A", " y"}},
    {PreType::qwen2, "'ll 've 'Re", {"'ll", " '", "ve", " '", "Re"}},
    {PreType::qwen2, "ab'CD", {"ab", "'CD"}},
    {PreType::qwen2, "\xE3""\x80""\x80""\xE4""\xB8""\xAD""\xE6""\x96""\x87"" \xE6""\xB5""\x8B""\xE8""\xAF""\x95", {"\xE3""\x80""\x80""\xE4""\xB8""\xAD""\xE6""\x96""\x87", " \xE6""\xB5""\x8B""\xE8""\xAF""\x95"}},
    {PreType::qwen2, "abc   ", {"abc", "   "}},
    {PreType::qwen2, "  leading", {" ", " leading"}},
    {PreType::qwen2, "a\x0A""\x0A""\x0A""b\x0D""\x0A", {"a", "\x0A""\x0A""\x0A", "b", "\x0D""\x0A"}},
    {PreType::qwen2, "$$$ ... !!!\x0A""\x0A", {"$$$", " ...", " !!!\x0A""\x0A"}},
    {PreType::qwen2, "\xD9""\xA1""\xD9""\xA2""\xD9""\xA3""\xD9""\xA4"" \xC2""\xBD""\xC2""\xBD", {"\xD9""\xA1", "\xD9""\xA2", "\xD9""\xA3", "\xD9""\xA4", " ", "\xC2""\xBD", "\xC2""\xBD"}},
    {PreType::qwen2, "caf\xC3""\xA9"" na\xCC""\x88""ive", {"caf\xC3""\xA9", " na", "\xCC""\x88""ive"}},
    {PreType::gpt2, "ied 4 \xC2""\xBD"" months", {"ied", " 4", " \xC2""\xBD", " months"}},
    {PreType::gpt2, "\xC3""\x84""pfel", {"\xC3""\x84""pfel"}},
    {PreType::gpt2, " ", {" "}},
    {PreType::gpt2, "  ", {"  "}},
    {PreType::gpt2, "   ", {"   "}},
    {PreType::gpt2, "\x09", {"\x09"}},
    {PreType::gpt2, "\x0A", {"\x0A"}},
    {PreType::gpt2, "\x0A""\x0A", {"\x0A""\x0A"}},
    {PreType::gpt2, "\x0A""\x0A""\x0A", {"\x0A""\x0A""\x0A"}},
    {PreType::gpt2, "\x09""\x0A", {"\x09""\x0A"}},
    {PreType::gpt2, "Hello world", {"Hello", " world"}},
    {PreType::gpt2, " Hello world", {" Hello", " world"}},
    {PreType::gpt2, "Hello World", {"Hello", " World"}},
    {PreType::gpt2, " Hello World", {" Hello", " World"}},
    {PreType::gpt2, " Hello World!", {" Hello", " World", "!"}},
    {PreType::gpt2, "Hello, world!", {"Hello", ",", " world", "!"}},
    {PreType::gpt2, " Hello, world!", {" Hello", ",", " world", "!"}},
    {PreType::gpt2, " this is \xF0""\x9F""\xA6""\x99"".cpp", {" this", " is", " \xF0""\x9F""\xA6""\x99"".", "cpp"}},
    {PreType::gpt2, "w048 7tuijk dsdfhu", {"w", "048", " 7", "tuijk", " dsdfhu"}},
    {PreType::gpt2, "\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", {"\xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"}},
    {PreType::gpt2, "\xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85""\xE1""\x9F""\x81""\xE1""\x9E""\x89", {"\xE1""\x9E""\x80", "\xE1""\x9E""\xB6", "\xE1""\x9E""\x93", "\xE1""\x9F""\x8B", "\xE1""\x9E""\x8F", "\xE1""\x9F""\x82", "\xE1""\x9E""\x96", "\xE1""\x9E""\xB7", "\xE1""\x9E""\x9F", "\xE1""\x9F""\x81", "\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6", "\xE1""\x9E""\x85""\xE1""\x9E""\x81""\xE1""\x9E""\x9B""\xE1""\x9E""\x85", "\xE1""\x9F""\x81", "\xE1""\x9E""\x89"}},
    {PreType::gpt2, "\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" (only emoji that has its own token)", {"\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " (", "only", " emoji", " that", " has", " its", " own", " token", ")"}},
    {PreType::gpt2, "Hello", {"Hello"}},
    {PreType::gpt2, " Hello", {" Hello"}},
    {PreType::gpt2, "  Hello", {" ", " Hello"}},
    {PreType::gpt2, "   Hello", {"  ", " Hello"}},
    {PreType::gpt2, "    Hello", {"   ", " Hello"}},
    {PreType::gpt2, "    Hello\x0A""    Hello", {"   ", " Hello", "\x0A""   ", " Hello"}},
    {PreType::gpt2, " (", {" ("}},
    {PreType::gpt2, "\x0A"" =", {"\x0A", " ="}},
    {PreType::gpt2, "' era", {"'", " era"}},
    {PreType::gpt2, "Hello, y'all! How are you \xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E", {"Hello", ",", " y", "'", "all", "!", " How", " are", " you", " \xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "1314151", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E"}},
    {PreType::gpt2, "!!!!!!", {"!!!!!!"}},
    {PreType::gpt2, "3", {"3"}},
    {PreType::gpt2, "33", {"33"}},
    {PreType::gpt2, "333", {"333"}},
    {PreType::gpt2, "3333", {"3333"}},
    {PreType::gpt2, "33333", {"33333"}},
    {PreType::gpt2, "333333", {"333333"}},
    {PreType::gpt2, "3333333", {"3333333"}},
    {PreType::gpt2, "33333333", {"33333333"}},
    {PreType::gpt2, "333333333", {"333333333"}},
    {PreType::gpt2, "C\xE1""\xBB""\xAD""a Vi\xE1""\xBB""\x87""t", {"C\xE1""\xBB""\xAD""a", " Vi\xE1""\xBB""\x87""t"}},
    {PreType::gpt2, " discards", {" discards"}},
    {PreType::gpt2, "\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     \x0A""\xF0""\x9F""\x9A""\x80"" (normal) \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F"" (multiple emojis concatenated) \xE2""\x9C""\x85"" \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99"" 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \xE1""\x9E""\x80""\xE1""\x9E""\xB6""\xE1""\x9E""\x93""\xE1""\x9F""\x8B""\xE1""\x9E""\x8F""\xE1""\x9F""\x82""\xE1""\x9E""\x96""\xE1""\x9E""\xB7""\xE1""\x9E""\x9F""\xE1""\x9F""\x81""\xE1""\x9E""\x9F""\xE1""\x9E""\xA2""\xE1""\x9E""\xB6""\xE1""\x9E""\x85""\xF0""\x9F""\x98""\x81"" ?\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C""1314151\xE5""\xA4""\xA9""\xEF""\xBD""\x9E"" ------======= \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE"" \xD0""\xBD""\xD0""\xB0"" \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8"" ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL", {"\x0A"" \x0A""\x0A"" \x0A""\x0A""\x0A"" \x09"" \x09""\x09"" \x09""\x0A""  \x0A""   \x0A""    \x0A""     ", "\x0A", "\xF0""\x9F""\x9A""\x80", " (", "normal", ")", " \xF0""\x9F""\x98""\xB6""\xE2""\x80""\x8D""\xF0""\x9F""\x8C""\xAB""\xEF""\xB8""\x8F", " (", "multiple", " emojis", " concatenated", ")", " \xE2""\x9C""\x85", " \xF0""\x9F""\xA6""\x99""\xF0""\x9F""\xA6""\x99", " 3", " 33", " 333", " 3333", " 33333", " 333333", " 3333333", " 33333333", " 3", ".", "3", " 3", "..", "3", " 3", "...", "3", " \xE1""\x9E""\x80", "\xE1""\x9E""\xB6", "\xE1""\x9E""\x93", "\xE1""\x9F""\x8B", "\xE1""\x9E""\x8F", "\xE1""\x9F""\x82", "\xE1""\x9E""\x96", "\xE1""\x9E""\xB7", "\xE1""\x9E""\x9F", "\xE1""\x9F""\x81", "\xE1""\x9E""\x9F""\xE1""\x9E""\xA2", "\xE1""\x9E""\xB6", "\xE1""\x9E""\x85", "\xF0""\x9F""\x98""\x81", " ?", "\xE6""\x88""\x91""\xE6""\x83""\xB3""\xE5""\x9C""\xA8""apple\xE5""\xB7""\xA5""\xE4""\xBD""\x9C", "1314151", "\xE5""\xA4""\xA9", "\xEF""\xBD""\x9E", " ------=======", " \xD0""\xBD""\xD0""\xB5""\xD1""\x89""\xD0""\xBE", " \xD0""\xBD""\xD0""\xB0", " \xD0""\x91""\xD1""\x8A""\xD0""\xBB""\xD0""\xB3""\xD0""\xB0""\xD1""\x80""\xD1""\x81""\xD0""\xBA""\xD0""\xB8", " ''''''```````\"\"\"\"......!!!!!!??????", " I", "'ve", " been", " '", "told", " he", "'s", " there", ",", " '", "RE", " you", " sure", "?", " '", "M", " not", " sure", " I", "'ll", " make", " it", ",", " '", "D", " you", " like", " some", " tea", "?", " We", "'", "Ve", " a", "'", "lL"}},
    {PreType::gpt2, "Hello\x0D""\x0A""\x0D""\x0A""  world", {"Hello", "\x0D""\x0A""\x0D""\x0A"" ", " world"}},
    {PreType::gpt2, "  \x0A""\x0A""  x", {"  \x0A""\x0A"" ", " x"}},
    {PreType::gpt2, "I'M HERE'S it's", {"I", "'", "M", " HERE", "'", "S", " it", "'s"}},
    {PreType::gpt2, "1234567 12", {"1234567", " 12"}},
    {PreType::gpt2, "a\xC2""\xA0""b", {"a", "\xC2""\xA0", "b"}},
    {PreType::gpt2, "x  \x09""\x0A"" y", {"x", "  \x09""\x0A", " y"}},
    {PreType::gpt2, "'ll 've 'Re", {"'ll", " '", "ve", " '", "Re"}},
    {PreType::gpt2, "ab'CD", {"ab", "'", "CD"}},
    {PreType::gpt2, "\xE3""\x80""\x80""\xE4""\xB8""\xAD""\xE6""\x96""\x87"" \xE6""\xB5""\x8B""\xE8""\xAF""\x95", {"\xE3""\x80""\x80", "\xE4""\xB8""\xAD""\xE6""\x96""\x87", " \xE6""\xB5""\x8B""\xE8""\xAF""\x95"}},
    {PreType::gpt2, "abc   ", {"abc", "   "}},
    {PreType::gpt2, "  leading", {" ", " leading"}},
    {PreType::gpt2, "a\x0A""\x0A""\x0A""b\x0D""\x0A", {"a", "\x0A""\x0A", "\x0A", "b", "\x0D""\x0A"}},
    {PreType::gpt2, "$$$ ... !!!\x0A""\x0A", {"$$$", " ...", " !!!", "\x0A""\x0A"}},
    {PreType::gpt2, "\xD9""\xA1""\xD9""\xA2""\xD9""\xA3""\xD9""\xA4"" \xC2""\xBD""\xC2""\xBD", {"\xD9""\xA1""\xD9""\xA2""\xD9""\xA3""\xD9""\xA4", " \xC2""\xBD""\xC2""\xBD"}},
    {PreType::gpt2, "caf\xC3""\xA9"" na\xCC""\x88""ive", {"caf\xC3""\xA9", " na", "\xCC""\x88", "ive"}},
  };
  size_t matched = 0;
  for (const auto& c : cases) {
    const auto got = tok::bpe_pre_tokenize(c.pre, c.text);
    if (got == c.pieces) {
      ++matched;
      continue;
    }
    std::string g, w;
    for (const auto& x : got) g += "[" + x + "]";
    for (const auto& x : c.pieces) w += "[" + x + "]";
    ADD_FAILURE() << "pre " << static_cast<int>(c.pre) << " text '" << c.text << "'\n  got      " << g
                  << "\n  expected " << w;
  }
  EXPECT_EQ(matched, cases.size());
}

}  // namespace
}  // namespace dcq
