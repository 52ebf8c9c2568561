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
