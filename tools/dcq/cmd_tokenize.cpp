// dcq tokenize MODEL -p TEXT: token ids of a text with the model's own tokenizer (the GGUF
// tokenizer.ggml.* metadata), printed like llama.cpp's llama-tokenize.
#include <cstdio>
#include <fstream>

#include "cli.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq::cli {
namespace {

struct TokenizeOptions {
  std::filesystem::path model;
  std::string prompt;
  std::filesystem::path prompt_file;
  bool ids_only = false;
  bool no_bos = false;
  bool parse_special = false;
  LoadOptions load;
};

// Printable form of a piece for the per-line listing: control characters escaped so one token
// stays on one line.
std::string escape_piece(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

void run(const TokenizeOptions& opt, const Common& common) {
  std::string text = opt.prompt;
  if (!opt.prompt_file.empty()) {
    std::ifstream f(opt.prompt_file, std::ios::binary);
    if (!f) fail_input(opt.prompt_file.string() + ": cannot open the prompt file");
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  const Model model = load_model(opt.model, opt.load);
  const Tokenizer tok = Tokenizer::from_model(model);
  const auto ids = tok.encode(text, !opt.no_bos, opt.parse_special);

  // The piece shown next to an id: what the token prints as, or its vocabulary text for tokens
  // that print as nothing (control tokens such as <s>).
  auto shown = [&](int32_t id) {
    std::string p = tok.decode(id);
    return p.empty() ? tok.token_text(id) : p;
  };

  if (common.json) {
    nlohmann::ordered_json j;
    j["file"] = opt.model.string();
    j["kind"] = std::string(tok.kind());
    j["n_vocab"] = tok.n_vocab();
    j["bos"] = tok.bos();
    j["eos"] = tok.eos();
    j["n_tokens"] = ids.size();
    j["ids"] = ids;
    auto pieces = nlohmann::ordered_json::array();
    for (int32_t id : ids) pieces.push_back(shown(id));
    j["pieces"] = std::move(pieces);
    print_json(j);
    return;
  }
  if (opt.ids_only) {
    std::string line = "[";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
    line += "]";
    std::printf("%s\n", line.c_str());
    return;
  }
  for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, escape_piece(shown(id)).c_str());
}

const bool registered = register_command("tokenize", [](CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Token ids of a text with a model's tokenizer (GGUF tokenizer metadata)");
  auto common = add_common(sub);
  auto opt = std::make_shared<TokenizeOptions>();
  sub->add_option("MODEL", opt->model, "Model file with tokenizer metadata (GGUF, or any format dcq loads)")
      ->required();
  auto* p = sub->add_option("-p,--prompt", opt->prompt, "Text to tokenize");
  auto* f = sub->add_option("-f,--file", opt->prompt_file, "Read the text to tokenize from a file");
  p->excludes(f);
  sub->add_flag("--ids", opt->ids_only, "Print only the id list, e.g. [1, 403, 407]");
  sub->add_flag("--no-bos", opt->no_bos, "Do not add BOS (or the other special tokens the vocabulary adds)");
  sub->add_flag("--special", opt->parse_special, "Turn control-token text in the input (e.g. <s>) into its id");
  add_load_options(sub, opt->load);
  sub->callback([common, opt, p, f] {
    common->apply();
    if (p->count() == 0 && f->count() == 0) fail_usage("tokenize: give the text with -p TEXT or -f FILE");
    run(*opt, *common);
  });
});

}  // namespace
}  // namespace dcq::cli
