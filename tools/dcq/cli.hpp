// Shared plumbing of the CLI: command registration and the flags every command takes.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "dcq/io.hpp"
#include "dcq/loader.hpp"

namespace dcq::cli {

// Flags every subcommand has: --json, -q/-v, --threads.
struct Common {
  bool json = false;
  bool quiet = false;
  int verbose = 0;
  int threads = 0;  // 0: all hardware threads
  // Sets the log level; call at the start of a command's callback.
  void apply() const;
  int thread_count() const;
};

// Adds the common flags to a subcommand; the returned struct lives as long as the program.
std::shared_ptr<Common> add_common(CLI::App* sub);

// --vocab-from / --tokenizer: what completes a safetensors or llama2.c input (dcq::LoadOptions).
void add_load_options(CLI::App* sub, LoadOptions& load);

// How `run` and `perplexity` read a .dcq or GGUF (docs/loader.md): --mem-budget, --read-throttle,
// --prefetch, --prefetch-depth.
struct LoaderFlags {
  std::string mem_budget;
  std::string read_throttle = "0";
  bool prefetch = false;
  int prefetch_depth = 2;
};
void add_loader_flags(CLI::App* sub, LoaderFlags& flags);
// Opens `model` as the flags say (open_weights) and sets the prefetch depth.
OpenedModel open_with(const std::filesystem::path& model, const LoadOptions& load, const LoaderFlags& flags,
                      int threads);

using AddCommand = std::function<void(CLI::App& app)>;
// Called from a static initializer in each cmd_*.cpp.
bool register_command(const std::string& name, AddCommand add);
void add_all_commands(CLI::App& app);
// The `dcq bench` group: each cmd_bench_<name>.cpp adds its subcommand to it.
CLI::App* bench_group(CLI::App& app);

// Writes a JSON document to stdout (the --json contract: one document, nothing else on stdout).
void print_json(const nlohmann::json& j);
void print_json(const nlohmann::ordered_json& j);
// Human-friendly byte counts ("1.13 MiB").
std::string human_bytes(uint64_t n);

}  // namespace dcq::cli
