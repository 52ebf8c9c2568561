#include "cli.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>
#include <thread>

namespace dcq::cli {

namespace {
std::map<std::string, AddCommand>& registry() {
  static std::map<std::string, AddCommand> r;
  return r;
}
}  // namespace

void Common::apply() const {
  if (quiet) spdlog::set_level(spdlog::level::err);
  else if (verbose >= 2) spdlog::set_level(spdlog::level::trace);
  else if (verbose == 1) spdlog::set_level(spdlog::level::debug);
  else spdlog::set_level(spdlog::level::info);
}

int Common::thread_count() const {
  if (threads > 0) return threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

std::shared_ptr<Common> add_common(CLI::App* sub) {
  auto c = std::make_shared<Common>();
  sub->add_flag("--json", c->json, "Print one machine-readable JSON document on stdout");
  sub->add_flag("-q,--quiet", c->quiet, "Only print errors on stderr");
  sub->add_flag("-v,--verbose", c->verbose, "More detail on stderr (repeat for more)");
  sub->add_option("--threads", c->threads, "Worker threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  return c;
}

void add_load_options(CLI::App* sub, LoadOptions& load) {
  sub->add_option("--vocab-from", load.vocab_from, "GGUF whose tokenizer completes a safetensors model");
  sub->add_option("--tokenizer", load.tokenizer, "llama2.c tokenizer (default: tok*.bin beside the model)");
}

void add_loader_flags(CLI::App* sub, LoaderFlags& flags) {
  sub->add_option("--mem-budget", flags.mem_budget,
                  "Memory for the weights of a .dcq or GGUF: BYTES (K/M/G) or PCT% of their size; the rest is "
                  "read again on every token");
  sub->add_option("--read-throttle", flags.read_throttle,
                  "Simulated storage read speed for a .dcq or GGUF, MB/s (0: off); reads go through pread");
  sub->add_flag("--prefetch", flags.prefetch,
                "Decode the next .dcq tensors ahead on a worker thread (chunks in parallel on --threads decoders)");
  sub->add_option("--prefetch-depth", flags.prefetch_depth, "Tensors decoded ahead with --prefetch")
      ->check(CLI::Range(1, 64));
}

OpenedModel open_with(const std::filesystem::path& model, const LoadOptions& load, const LoaderFlags& flags,
                      int threads) {
  OpenedModel m = open_weights(model, load, MemBudget::parse(flags.mem_budget), flags.prefetch, threads,
                               parse_read_throttle(flags.read_throttle));
  if (m.dcq) m.dcq->set_prefetch_depth(flags.prefetch_depth);
  return m;
}

bool register_command(const std::string& name, AddCommand add) {
  registry()[name] = std::move(add);
  return true;
}

void add_all_commands(CLI::App& app) {
  for (auto& [name, add] : registry()) add(app);
}

CLI::App* bench_group(CLI::App& app) {
  for (auto* b : app.get_subcommands([](CLI::App* a) { return a->get_name() == "bench"; })) return b;
  auto* b = app.add_subcommand("bench", "Benchmarks (results as tables or --json; see docs/benchmarks.md)");
  b->require_subcommand(1);
  return b;
}

namespace {
void put_line(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}
}  // namespace

void print_json(const nlohmann::json& j) {
  put_line(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
}

void print_json(const nlohmann::ordered_json& j) {
  put_line(j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

std::string human_bytes(uint64_t n) {
  char buf[64];
  if (n < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else if (n < (1u << 20)) std::snprintf(buf, sizeof buf, "%.2f KiB", n / 1024.0);
  else if (n < (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  return buf;
}

}  // namespace dcq::cli
