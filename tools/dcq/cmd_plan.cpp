// dcq plan X.dcq --mem-budget B: the speed-adaptive load plan `dcq run --mem-budget B` follows —
// per tensor pinned (decoded once) or streamed (decoded every token), its bytes and measured
// decode cost, and the predicted tokens/s against the physical limit (docs/loader.md, "Plan").
#include <algorithm>
#include <cstdio>

#include "cli.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/loader.hpp"

namespace dcq::cli {
namespace {

struct PlanCmdOptions {
  std::filesystem::path model;
  std::string mem_budget;
  std::string read_throttle = "0";
  std::filesystem::path repack;
  bool force = false;
  bool all_raw = false;
  bool plain_rows = false;
};

// Whether the plan streams a table read by rows (the embedding): one chunk decoded per token.
bool streams_rows(const LoadPlan& p) {
  return std::any_of(p.tensors.begin(), p.tensors.end(), [](const TensorPlan& t) { return t.row_access && !t.pinned; });
}

void print_text(const LoadPlan& p) {
  std::printf("%-32s %-8s %10s %10s %11s %9s  %s\n", "tensor", "plan", "MiB", "MiB/token", "ms/token", "GB/s", "encoding");
  for (const auto& t : p.tensors)
    std::printf("%-32s %-8s %10.3f %10.3f %11.3f %9.2f  %s\n", t.name.c_str(), t.pinned ? "pinned" : "streamed",
                double(t.bytes) / 1048576.0, t.pinned ? 0.0 : double(t.bytes_per_pass) / 1048576.0,
                t.pinned ? 0.0 : t.decode_seconds * 1e3,
                t.decode_seconds > 0 ? double(t.bytes_per_pass) / t.decode_seconds / 1e9 : 0.0, t.encoding.c_str());
  const auto mib = [](uint64_t b) { return double(b) / 1048576.0; };
  std::printf("\nbudget %s | weights %.2f MiB decoded, %.2f MiB stored | pinned %.2f MiB + window %.2f MiB "
              "(smallest working set %.2f MiB)\n",
              p.budget_bytes == UINT64_MAX ? "unlimited" : (std::to_string(p.budget_bytes) + " B").c_str(),
              mib(p.weight_bytes), mib(p.stored_bytes), mib(p.pinned_bytes), mib(p.working_set), mib(p.min_working_set));
  std::printf("per token: stream %.2f MiB decoded (%.2f MiB stored) at %.2f GB/s/thread x %d threads: decode %.2f ms, "
              "read %.2f ms, compute %.2f ms\n",
              mib(p.streamed_bytes_per_token), mib(p.streamed_stored_per_token), p.decode_gbps_one_thread, p.threads,
              p.decode_seconds_per_token * 1e3, p.read_seconds_per_token * 1e3, p.compute_seconds_per_token * 1e3);
  if (p.view_block)
    std::printf("views in %.0f KiB blocks: %.1f flushes and %.1f blocks mapped per token, %.2f ms\n",
                double(p.view_block) / 1024.0, p.view_flushes_per_token, p.view_blocks_per_token,
                p.view_seconds_per_token * 1e3);
  std::printf("predicted %.1f tok/s (no overlap) | resident %.1f tok/s | limit %.1f tok/s (decode hidden behind "
              "compute) | predicted/resident %.2f\n",
              p.predicted_tok_s, p.resident_tok_s, p.limit_tok_s,
              p.resident_tok_s > 0 ? p.predicted_tok_s / p.resident_tok_s : 0.0);
  if (!p.store_raw.empty())
    std::printf("repack: storing the %zu streamed tensors raw (+%.2f MiB of file; checksum+copy %.2f GB/s/thread) "
                "would give %.1f tok/s\n",
                p.store_raw.size(), mib(p.raw_extra_file_bytes), p.raw_gbps_one_thread, p.predicted_tok_s_if_raw);
}

const bool registered = register_command("plan", [](CLI::App& app) {
  auto* sub = app.add_subcommand("plan", "Which .dcq tensors stay decoded under a memory budget, and the predicted speed");
  auto common = add_common(sub);
  auto opt = std::make_shared<PlanCmdOptions>();
  sub->add_option("MODEL", opt->model, ".dcq container")->required();
  sub->add_option("--mem-budget", opt->mem_budget, "Memory for decoded weights: BYTES (K/M/G) or PCT% of their size")
      ->required();
  sub->add_option("--read-throttle", opt->read_throttle, "Simulated storage read speed in MB/s (0: off)");
  sub->add_option("--repack", opt->repack, "Write a copy of MODEL with the streamed tensors stored raw (zero decode cost)");
  sub->add_flag("--force", opt->force, "Replace an existing --repack output");
  sub->add_flag("--plain-rows", opt->plain_rows,
                "With --repack: keep the streamed Q8_0/Q4_0 matrices in ggml's plain row order instead of the "
                "kernels' interleaved 16-row groups (transform row_groups, format version 3)");
  sub->add_flag("--all-raw", opt->all_raw,
                "With --repack: store every tensor raw in its row chunks (the GGUF's bytes through the loader: "
                "the slow-storage baseline)");
  sub->callback([common, opt] {
    common->apply();
    PlanOptions po;
    po.budget = MemBudget::parse(opt->mem_budget);
    po.read_throttle = parse_read_throttle(opt->read_throttle);
    po.threads = common->thread_count();
    po.measure_compute = true;
    po.view_block = po.read_throttle <= 0 ? view_block_bytes() : 0;  // as DcqWeights does
    po.for_repack = !opt->repack.empty() && !opt->all_raw;
    const auto reader = open_loader_reader(opt->model);
    if (!opt->repack.empty() && reader.bare())
      fail_usage(opt->model.string() + ": --repack reads a .dcq; compress the GGUF first (dcq compress " +
                 opt->model.string() + " -o X.dcq), then repack X.dcq");
    if (!opt->repack.empty()) check_can_write(opt->repack, opt->force);
    const auto plan = make_plan(reader, po);
    nlohmann::json repacked;
    if (opt->all_raw && opt->repack.empty()) fail_usage("--all-raw needs --repack OUT.dcq");
    if (opt->plain_rows && opt->repack.empty()) fail_usage("--plain-rows needs --repack OUT.dcq");
    if (!opt->repack.empty()) {
      std::vector<std::string> all;
      if (opt->all_raw)
        for (const auto& t : plan.tensors) all.push_back(t.name);
      // --all-raw is the GGUF's bytes through the loader (the slow-storage baseline): plain rows.
      repacked = opt->all_raw ? repack_raw(opt->model, opt->repack, all, opt->force, false)
                              : repack_raw(opt->model, opt->repack, plan.store_raw, opt->force, true, !opt->plain_rows,
                                           streams_rows(plan) ? kRowChunkBytes : 0);
    }
    if (common->json) {
      auto j = plan.to_json();
      j["model"] = opt->model.string();
      if (!repacked.is_null()) j["repack"] = repacked;
      print_json(j);
    } else {
      print_text(plan);
      if (!repacked.is_null())
        std::printf("wrote %s: %s (%llu chunks of %llu tensors stored raw; %llu row_groups chunks)\n",
                    opt->repack.string().c_str(), human_bytes(repacked["output_bytes"].get<uint64_t>()).c_str(),
                    (unsigned long long)repacked["raw_chunks"].get<uint64_t>(),
                    (unsigned long long)repacked["raw_tensors"].get<uint64_t>(),
                    (unsigned long long)repacked["row_group_chunks"].get<uint64_t>());
    }
  });
});

}  // namespace
}  // namespace dcq::cli
