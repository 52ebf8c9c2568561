// dcq synth: random-weight llama models of a preset or custom shape, streamed to a GGUF.
#include <cstdio>

#include "cli.hpp"
#include "dcq/synth.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("synth", [](CLI::App& app) {
  auto* sub = app.add_subcommand("synth", "Write a random-weight llama model (speed and scale tests)");
  auto common = add_common(sub);
  auto o = std::make_shared<SynthOptions>();
  sub->add_option("--preset", o->preset, "Shape preset: " + synth_presets());
  sub->add_option("--dim", o->shape.dim, "Embedding width")->check(CLI::Range(1, 1 << 16));
  sub->add_option("--ffn", o->shape.ffn, "Feed-forward width")->check(CLI::Range(1, 1 << 18));
  sub->add_option("--layers", o->shape.layers, "Transformer blocks")->check(CLI::Range(1, 512));
  sub->add_option("--heads", o->shape.heads, "Attention heads")->check(CLI::Range(1, 1024));
  sub->add_option("--kv-heads", o->shape.kv_heads, "Key/value heads")->check(CLI::Range(1, 1024));
  sub->add_option("--vocab", o->shape.vocab, "Vocabulary size")->check(CLI::Range(260, 1 << 20));
  sub->add_option("--context", o->shape.context, "context_length written to the metadata")
      ->check(CLI::Range(1, 1 << 24));
  sub->add_flag("--tied", o->shape.tied_output, "Tie the output matrix to the embedding");
  sub->add_option("--type", o->type, "Tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, ...)");
  sub->add_option("--seed", o->seed, "Random seed");
  sub->add_option("-o,--output", o->output, "Output GGUF")->required();
  sub->add_flag("--force", o->force, "Replace an existing output");
  sub->callback([common, o] {
    common->apply();
    o->threads = common->thread_count();
    const SynthReport r = synth(*o);
    if (common->json) {
      print_json(nlohmann::json{{"output", o->output.string()}, {"parameters", r.parameters},
                  {"file_bytes", r.file_bytes}, {"seconds", r.seconds}, {"type", o->type}});
    } else {
      std::printf("%s: %llu parameters, %s, %s, %.2f s\n", o->output.string().c_str(),
                  static_cast<unsigned long long>(r.parameters), o->type.c_str(),
                  human_bytes(r.file_bytes).c_str(), r.seconds);
    }
  });
});

}  // namespace
}  // namespace dcq::cli
