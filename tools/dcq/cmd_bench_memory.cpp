// dcq bench memory X.dcq --budgets 100%,75%,50%,25%: prompt and generation tokens/s and peak RSS
// against the memory budget, each measured in a fresh `dcq run` process (so peak RSS belongs to
// that budget alone), best of --repeats; beside each, the plan's prediction and physical limit,
// and the ratios to the all-resident run (no budget) measured in the same invocation. --paired adds
// a steadier ratio from both engines in one process, token by token (paired_ratio).
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cli.hpp"
#include "dcq/container.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/kernels.hpp"
#include "dcq/loader.hpp"
#include "dcq/sampler.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq::cli {
namespace {

struct BenchMemoryOptions {
  std::filesystem::path model;
  std::vector<std::string> budgets = {"100%", "75%", "50%", "25%"};
  int tokens = 32;
  int repeats = 3;
  std::string prompt = "Once upon a time";
  std::string read_throttle = "0";
  bool prefetch = false;
  int prefetch_depth = 2;
  bool csv = false;
  bool paired = false;              // also the paired in-process ratio (paired_ratio)
  std::filesystem::path svg;        // also draw x resident against the budget
  std::filesystem::path from_json;  // re-print (and draw) an earlier --json result, no runs
};

std::string fixed2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs this executable's `run` command and parses its --json document.
nlohmann::json run_once(const BenchMemoryOptions& o, const std::string& budget, int threads) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string cmd = quote(self) + " run " + quote(o.model.string()) + " -p " + quote(o.prompt) + " -n " +
                    std::to_string(o.tokens) + " --temp 0 --json -q --threads " + std::to_string(threads) +
                    " --read-throttle " + quote(o.read_throttle);
  if (!budget.empty()) cmd += " --mem-budget " + quote(budget);
  if (o.prefetch) cmd += " --prefetch --prefetch-depth " + std::to_string(o.prefetch_depth);
  cmd += " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) fail(ExitCode::internal, "cannot start `dcq run` for the benchmark");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(f);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  if (code != 0) {
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    const auto nl = out.rfind('\n');
    throw Error(ExitCode(code), "budget " + (budget.empty() ? std::string("none") : budget) + ": " +
                                    (nl == std::string::npos ? out : out.substr(nl + 1)));
  }
  return nlohmann::json::parse(out);
}

struct Row {
  std::string budget;
  nlohmann::json best;  // the run with the best generation speed
  double gen_min = 0, gen_max = 0;
  std::vector<double> gens;  // generation tok/s of each round, in order
  LoadPlan plan;
};

Row plan_row(const BenchMemoryOptions& o, const DcqReader& reader, const std::string& budget, int threads) {
  Row r;
  r.budget = budget;
  PlanOptions po;
  po.budget = MemBudget::parse(budget);
  po.threads = threads;
  po.read_throttle = parse_read_throttle(o.read_throttle);
  po.measure_compute = true;
  po.view_block = po.read_throttle <= 0 ? view_block_bytes() : 0;  // as DcqWeights does
  r.plan = make_plan(reader, po);
  return r;
}

void add_run(Row& r, nlohmann::json j, bool first) {
  const double g = j["gen_tokens_per_s"].get<double>();
  r.gens.push_back(g);
  if (first || g < r.gen_min) r.gen_min = g;
  if (first || g > r.gen_max) {
    r.gen_max = g;
    r.best = std::move(j);
  }
}

// Runs every budget (the resident run first) once per round, `repeats` rounds: on a shared
// machine the load changes within minutes, and interleaving lets the resident run and each
// budget see the same load, so their ratio means something (all resident runs first did not).
void measure(const BenchMemoryOptions& o, int threads, Row& resident, std::vector<Row>& rows) {
  for (int i = 0; i < o.repeats; ++i) {
    add_run(resident, run_once(o, "", threads), i == 0);
    for (auto& r : rows) add_run(r, run_once(o, r.budget, threads), i == 0);
  }
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Each round's budget run against the same round's resident run: the best-of ratio flatters a
// budget that was lucky once, the median of per-round ratios says how it does under the load
// that both runs saw (and how many rounds reach the 0.9x).
struct RoundRatios {
  std::vector<double> ratios;
  double median = 0;
  int at_least_0_9 = 0;
};

RoundRatios round_ratios(const Row& resident, const Row& r) {
  RoundRatios out;
  for (size_t i = 0; i < r.gens.size() && i < resident.gens.size(); ++i)
    out.ratios.push_back(resident.gens[i] > 0 ? r.gens[i] / resident.gens[i] : 0.0);
  for (double x : out.ratios) out.at_least_0_9 += x >= 0.9;
  out.median = median_of(out.ratios);
  return out;
}

// The budget's speed against all-resident measured in ONE process (--paired): a resident engine
// and a budgeted engine over the same file take turns token by token (greedy, the resident one's
// choice fed to both; which goes first alternates), on one shared thread pool, each forward pass
// timed on its own. On a shared host whose memory bandwidth changes within seconds, separate runs
// differ by +-10 % from round to round; here both engines see the same load within milliseconds.
// A round's ratio is the ratio of the two engines' median token times (a preempted token, 10x the
// others, would otherwise decide a round); the result is the median round. The engine built first
// in a process ran 4-5 % faster than the second on this host (two resident engines compared, cause
// unknown), so rounds alternate which one is built first: `control` (budget empty: both resident)
// measures what is left of that bias. Peak RSS is not measured here (two engines share the
// process): the separate runs report it.
nlohmann::json paired_ratio(const BenchMemoryOptions& o, const std::string& budget, int threads) {
  using Clock = std::chrono::steady_clock;
  const double throttle = parse_read_throttle(o.read_throttle);
  kernels::ThreadPool pool(threads);
  std::vector<double> rounds, res_times, bud_times;
  double sum_a = 0, sum_b = 0;
  bool equal = true;
  for (int r = 0; r < o.repeats; ++r) {
    const bool budget_first = r % 2 == 1;
    auto open_budgeted = [&] {
      OpenedModel m = open_weights(o.model, LoadOptions{}, MemBudget::parse(budget), o.prefetch, threads, throttle);
      if (m.dcq) m.dcq->set_prefetch_depth(o.prefetch_depth);
      return m;
    };
    auto open_resident = [&] { return open_weights(o.model, LoadOptions{}, MemBudget{}, false, threads, 0); };
    OpenedModel first = budget_first ? open_budgeted() : open_resident();
    OpenedModel second = budget_first ? open_resident() : open_budgeted();
    const OpenedModel& res = budget_first ? second : first;
    const Tokenizer tok = Tokenizer::from_model(res.model());
    const std::vector<int32_t> prompt = tok.encode(o.prompt, /*add_bos=*/true);
    EngineOptions eo{int(prompt.size()) + o.tokens + 1, threads};
    eo.pool = &pool;
    Engine e_first(*first.weights, eo), e_second(*second.weights, eo);
    Engine& a = budget_first ? e_second : e_first;  // resident
    Engine& b = budget_first ? e_first : e_second;  // under the budget
    std::vector<double> ta, tb;
    auto timed = [](Engine& e, std::span<const int32_t> ids, std::vector<double>* times) {
      const auto t0 = Clock::now();
      const int32_t next = argmax(e.eval(ids));
      if (times) times->push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      return next;
    };
    int32_t next = timed(a, prompt, nullptr);
    equal &= timed(b, prompt, nullptr) == next;
    for (int i = 1; i < o.tokens; ++i) {  // as `dcq run`: the last token sampled is not evaluated
      const std::span<const int32_t> one(&next, 1);
      int32_t na, nb;
      if (i % 2) {
        na = timed(a, one, &ta);
        nb = timed(b, one, &tb);
      } else {
        nb = timed(b, one, &tb);
        na = timed(a, one, &ta);
      }
      equal &= na == nb;
      next = na;
    }
    const double ma = median_of(ta), mb = median_of(tb);
    rounds.push_back(mb > 0 ? ma / mb : 0.0);
    res_times.push_back(ma);
    bud_times.push_back(mb);
    for (double t : ta) sum_a += t;
    for (double t : tb) sum_b += t;
  }
  const double ma = median_of(res_times), mb = median_of(bud_times);
  // Beside the median: total time over total time, every token counted. A stall that hits one
  // side more often (a flush's IPI waiting for the other vCPU, say) shows here and not there.
  return {{"gen_vs_resident", median_of(rounds)},
          {"gen_vs_resident_all_tokens", sum_b > 0 ? sum_a / sum_b : 0.0},
          {"rounds", rounds},
          {"resident_tok_s", ma > 0 ? 1 / ma : 0.0},
          {"gen_tok_s", mb > 0 ? 1 / mb : 0.0},
          {"tokens_equal_resident", equal}};
}

// Measures every budget (see measure) and returns the --json document.
nlohmann::json run_all(const BenchMemoryOptions& o, int threads) {
  // Check every flag before the first (long) run: a bad budget or throttle exits 2 at once.
  for (const auto& b : o.budgets) (void)MemBudget::parse(b);
  if (o.budgets.empty()) fail_usage("--budgets: give at least one budget");
  (void)parse_read_throttle(o.read_throttle);
  const auto reader = open_loader_reader(o.model);
  Row resident = plan_row(o, reader, "", threads);
  std::vector<Row> rows;
  for (const auto& b : o.budgets) rows.push_back(plan_row(o, reader, b, threads));
  measure(o, threads, resident, rows);
  const double res_gen = resident.gen_max, res_prompt = resident.best["prompt_tokens_per_s"].get<double>();

  nlohmann::json out;
  out["model"] = o.model.string();
  out["threads"] = threads;
  out["tokens"] = o.tokens;
  out["repeats"] = o.repeats;
  out["read_throttle_mb_s"] = parse_read_throttle(o.read_throttle) / 1e6;
  out["prefetch"] = o.prefetch;
  if (o.prefetch) out["prefetch_depth"] = o.prefetch_depth;
  out["resident"] = {{"gen_tok_s", res_gen}, {"gen_tok_s_min", resident.gen_min},
                     {"prompt_tok_s", res_prompt},
                     {"peak_rss_bytes", resident.best["peak_rss_bytes"]}};
  auto& arr = out["budgets"] = nlohmann::json::array();
  for (const auto& r : rows) {
    const auto& b = r.best;
    const auto& ld = b["loader"];
    const RoundRatios rr = round_ratios(resident, r);
    arr.push_back({{"gen_vs_resident_rounds", rr.ratios},
                   {"gen_vs_resident_median", rr.median},
                   {"rounds_at_least_0_9", rr.at_least_0_9},
                   {"budget", r.budget},
                   {"budget_bytes", ld["budget_bytes"]},
                   {"gen_tok_s", r.gen_max},
                   {"gen_tok_s_min", r.gen_min},
                   {"prompt_tok_s", b["prompt_tokens_per_s"]},
                   {"gen_vs_resident", res_gen > 0 ? r.gen_max / res_gen : 0.0},
                   {"prompt_vs_resident", res_prompt > 0 ? b["prompt_tokens_per_s"].get<double>() / res_prompt : 0.0},
                   {"predicted_tok_s", r.plan.predicted_tok_s},
                   {"limit_tok_s", r.plan.limit_tok_s},
                   {"gen_vs_limit", r.plan.limit_tok_s > 0 ? r.gen_max / r.plan.limit_tok_s : 0.0},
                   {"predicted_tok_s_if_raw", r.plan.predicted_tok_s_if_raw},
                   {"streamed_bytes_per_token", r.plan.streamed_bytes_per_token},
                   {"decode_gbps_one_thread", r.plan.decode_gbps_one_thread},
                   {"peak_rss_bytes", b["peak_rss_bytes"]},
                   {"peak_cache_bytes", ld["peak_resident_bytes"]},
                   {"pinned_bytes", ld["pinned_bytes"]},
                   {"bytes_decoded", ld["bytes_decoded"]},
                   {"decode_seconds", ld["decode_seconds"]},
                   {"read_wait_seconds", ld["read_wait_seconds"]},
                   {"tokens_equal_resident", b["tokens"] == resident.best["tokens"]}});
    if (o.paired) arr.back()["paired"] = paired_ratio(o, r.budget, threads);
  }
  if (o.paired) out["paired_control"] = paired_ratio(o, "", threads);  // resident against resident
  return out;
}

// An earlier `--json` result (--from-json): every field the table, CSV and chart read is checked
// here, so a wrong or hand-edited file is one bad-input line, not a JSON exception.
nlohmann::json read_result(const std::filesystem::path& path) {
  nlohmann::json out;
  try {
    out = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail_input(path.string() + ": not JSON: " + e.what());
  }
  auto need = [&](const nlohmann::json& j, const char* key, bool (nlohmann::json::*is)() const noexcept,
                  const std::string& where) {
    if (!j.is_object() || !j.contains(key) || !(j[key].*is)())
      fail_input(path.string() + ": not a `dcq bench memory --json` result (" + where + key + " missing or mistyped)");
  };
  using J = nlohmann::json;
  need(out, "model", &J::is_string, "");
  need(out, "threads", &J::is_number_integer, "");
  need(out, "prefetch", &J::is_boolean, "");
  need(out, "resident", &J::is_object, "");
  for (const char* k : {"gen_tok_s", "gen_tok_s_min", "prompt_tok_s", "peak_rss_bytes"})
    need(out["resident"], k, &J::is_number, "resident.");
  need(out, "budgets", &J::is_array, "");
  for (const auto& a : out["budgets"]) {
    need(a, "budget", &J::is_string, "budgets[].");
    need(a, "tokens_equal_resident", &J::is_boolean, "budgets[].");
    for (const char* k : {"budget_bytes", "gen_tok_s", "gen_tok_s_min", "prompt_tok_s", "gen_vs_resident",
                          "predicted_tok_s", "limit_tok_s", "gen_vs_limit", "peak_rss_bytes", "peak_cache_bytes"})
      need(a, k, &J::is_number, "budgets[].");
  }
  return out;
}

// The generation speed and peak memory against the budget as an SVG line chart: best run per
// budget (dots), the spread of the runs (bars: min..best), both as a ratio to the best
// all-resident run, the 0.9x line; peak RSS as a ratio to the resident run's (diamonds, labelled
// in MiB); the paired ratio where measured (squares). Budgets are equally spaced in the order given.
std::string svg_chart(const nlohmann::json& out) {
  const auto& arr = out["budgets"];
  const double res = out["resident"]["gen_tok_s"].get<double>();
  const double W = 640, H = 360, L = 60, R = 20, T = 40, B = 50;
  double ymax = 1.2;
  for (const auto& a : arr) ymax = std::max(ymax, a["gen_vs_resident"].get<double>() * 1.1);
  const double rss0 = out["resident"]["peak_rss_bytes"].get<double>();
  for (const auto& a : arr)
    if (rss0 > 0) ymax = std::max(ymax, a["peak_rss_bytes"].get<double>() / rss0 * 1.1);
  const size_t n = arr.size();
  auto x = [&](size_t i) { return L + (n <= 1 ? (W - L - R) / 2 : double(i) * (W - L - R) / double(n - 1)); };
  auto y = [&](double v) { return H - B - v / ymax * (H - T - B); };
  std::ostringstream s;
  char buf[512];
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"20\">%s: generation x all-resident (%.2f tok/s), %d threads%s</text>\n",
                L, std::filesystem::path(out["model"].get<std::string>()).filename().string().c_str(), res,
                out["threads"].get<int>(), out["prefetch"].get<bool>() ? ", prefetch" : "");
  s << buf;
  for (double v = 0; v <= ymax + 1e-9; v += 0.2) {
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%.1f\" "
                  "text-anchor=\"end\">%.1f</text>\n",
                  L, W - R, y(v), y(v), L - 6, y(v) + 4, v);
    s << buf;
  }
  std::snprintf(buf, sizeof buf, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n",
                L, W - R, y(0.9), y(0.9));
  s << buf;
  std::string path;
  for (size_t i = 0; i < n; ++i) {
    const auto& a = arr[i];
    const double best = a["gen_vs_resident"].get<double>();
    const double lo = res > 0 ? a["gen_tok_s_min"].get<double>() / res : 0.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#36c\" stroke-width=\"2\"/>"
                  "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#36c\"/><text x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"middle\">%.2f</text><text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                  x(i), x(i), y(lo), y(best), x(i), y(best), x(i), y(best) - 8, best, x(i), H - B + 18,
                  a["budget"].get<std::string>().c_str());
    s << buf;
    std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", i ? " " : "", x(i), y(best));
    path += buf;
  }
  s << "<polyline points=\"" << path << "\" fill=\"none\" stroke=\"#36c\"/>\n";
  // Peak RSS of each budget's run against the resident run's (orange, labelled in MiB), and the
  // paired in-process ratio where measured (green squares).
  const double res_rss = out["resident"]["peak_rss_bytes"].get<double>();
  std::string rss_path;
  bool any_paired = false;
  for (size_t i = 0; i < n; ++i) {
    const auto& a = arr[i];
    const double rss = a["peak_rss_bytes"].get<double>();
    const double v = res_rss > 0 ? rss / res_rss : 0.0;
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"#e80\" transform=\"rotate(45 %.1f %.1f)\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\" fill=\"#b60\">%.0f MiB</text>\n",
                  x(i) - 3.5, y(v) - 3.5, x(i), y(v), x(i) + 8, y(v) + 14, rss / 1048576.0);
    s << buf;
    std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", i ? " " : "", x(i), y(v));
    rss_path += buf;
    if (a.contains("paired") && a["paired"].is_object()) {
      any_paired = true;
      const double pv = a["paired"]["gen_vs_resident"].get<double>();
      std::snprintf(buf, sizeof buf, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"#2a2\"/>\n", x(i) - 4,
                    y(pv) - 4);
      s << buf;
    }
  }
  s << "<polyline points=\"" << rss_path << "\" fill=\"none\" stroke=\"#e80\" stroke-dasharray=\"2 2\"/>\n";
  std::snprintf(buf, sizeof buf,
                "<text x=\"%g\" y=\"34\" fill=\"#36c\">&#9679; tok/s x resident</text>"
                "<text x=\"%g\" y=\"34\" fill=\"#b60\">&#9670; peak RSS x resident (%.0f MiB)</text>%s\n",
                L, L + 150, res_rss / 1048576.0,
                any_paired ? "<text x=\"430\" y=\"34\" fill=\"#2a2\">&#9632; paired, one process</text>" : "");
  s << buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">memory budget (tok/s: best of %d runs, bar: slowest run; dashed: 0.9x)</text>\n",
                (L + W - R) / 2, H - 12, out["repeats"].get<int>());
  s << buf << "</svg>\n";
  return s.str();
}

const bool registered = register_command("bench-memory", [](CLI::App& app) {
  auto* sub = bench_group(app)->add_subcommand("memory", "Tokens/s and peak memory of a .dcq against the memory budget");
  auto common = add_common(sub);
  auto o = std::make_shared<BenchMemoryOptions>();
  sub->add_option("MODEL", o->model, ".dcq container")->required();
  sub->add_option("--budgets", o->budgets, "Budgets (BYTES with K/M/G or PCT%)")->delimiter(',');
  sub->add_option("--tokens", o->tokens, "Tokens to generate per run")->check(CLI::Range(1, 1 << 16));
  sub->add_option("--repeats", o->repeats, "Runs per budget (best and spread reported)")->check(CLI::Range(1, 100));
  sub->add_option("-p,--prompt", o->prompt, "Prompt text");
  sub->add_option("--read-throttle", o->read_throttle, "Simulated storage read speed in MB/s (0: off)");
  sub->add_flag("--prefetch", o->prefetch, "Decode the next tensors ahead (dcq run --prefetch)");
  sub->add_option("--prefetch-depth", o->prefetch_depth, "Tensors decoded ahead with --prefetch")
      ->check(CLI::Range(1, 64));
  sub->add_flag("--csv", o->csv, "Print CSV instead of a table");
  sub->add_flag("--paired", o->paired,
                "Also measure each budget against all-resident in one process, token by token (steadier on a shared host)");
  sub->add_option("--svg", o->svg, "Also write the ratio to all-resident per budget as an SVG chart");
  sub->add_option("--from-json", o->from_json, "Print (and --svg) an earlier --json result instead of running");
  sub->callback([common, o] {
    common->apply();
    nlohmann::json out = o->from_json.empty() ? run_all(*o, common->thread_count()) : read_result(o->from_json);
    const auto& arr = out["budgets"];
    const double res_gen = out["resident"]["gen_tok_s"].get<double>();
    const double res_gen_min = out["resident"]["gen_tok_s_min"].get<double>();
    const double res_prompt = out["resident"]["prompt_tok_s"].get<double>();
    if (!o->svg.empty()) {
      const std::string svg = svg_chart(out);
      AtomicFile f(o->svg, true);
      f.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(svg.data()), svg.size()));
      f.commit();
    }
    if (common->json) {
      print_json(out);
      return;
    }
    if (o->csv) {
      std::printf("budget,budget_bytes,gen_tok_s,gen_tok_s_min,prompt_tok_s,gen_vs_resident,predicted_tok_s,limit_tok_s,"
                  "gen_vs_limit,peak_rss_bytes,peak_cache_bytes,tokens_equal_resident\n");
      std::printf("none,,%.3f,%.3f,%.3f,1,,,,%llu,,true\n", res_gen, res_gen_min, res_prompt,
                  (unsigned long long)out["resident"]["peak_rss_bytes"].get<uint64_t>());
      for (const auto& a : arr)
        std::printf("%s,%llu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%llu,%llu,%s\n", a["budget"].get<std::string>().c_str(),
                    (unsigned long long)a["budget_bytes"].get<uint64_t>(), a["gen_tok_s"].get<double>(),
                    a["gen_tok_s_min"].get<double>(), a["prompt_tok_s"].get<double>(), a["gen_vs_resident"].get<double>(),
                    a["predicted_tok_s"].get<double>(), a["limit_tok_s"].get<double>(), a["gen_vs_limit"].get<double>(),
                    (unsigned long long)a["peak_rss_bytes"].get<uint64_t>(),
                    (unsigned long long)a["peak_cache_bytes"].get<uint64_t>(),
                    a["tokens_equal_resident"].get<bool>() ? "true" : "false");
      return;
    }
    std::printf("%-8s %9s %9s %9s %8s %8s %10s %9s %8s %10s %10s %6s\n", "budget", "gen t/s", "spread", "prompt",
                "x res", "x res md", "predicted", "limit", "x limit", "peak RSS", "peak cache", "same");
    std::printf("%-8s %9.2f %9.2f %9.1f %8.2f %8s %10s %9s %8s %10s %10s %6s\n", "none", res_gen, res_gen - res_gen_min,
                res_prompt, 1.0, "-", "-", "-", "-", human_bytes(out["resident"]["peak_rss_bytes"].get<uint64_t>()).c_str(), "-", "-");
    for (const auto& a : arr) {
      // Results written before the per-round ratios existed (--from-json) show "-".
      char median[32] = "-";
      if (a.contains("gen_vs_resident_median") && a["gen_vs_resident_median"].is_number())
        std::snprintf(median, sizeof median, "%.2f", a["gen_vs_resident_median"].get<double>());
      std::printf("%-8s %9.2f %9.2f %9.1f %8.2f %8s %10.2f %9.2f %8.2f %10s %10s %6s\n", a["budget"].get<std::string>().c_str(),
                  a["gen_tok_s"].get<double>(), a["gen_tok_s"].get<double>() - a["gen_tok_s_min"].get<double>(),
                  a["prompt_tok_s"].get<double>(), a["gen_vs_resident"].get<double>(), median, a["predicted_tok_s"].get<double>(),
                  a["limit_tok_s"].get<double>(), a["gen_vs_limit"].get<double>(),
                  human_bytes(a["peak_rss_bytes"].get<uint64_t>()).c_str(),
                  human_bytes(a["peak_cache_bytes"].get<uint64_t>()).c_str(),
                  a["tokens_equal_resident"].get<bool>() ? "yes" : "NO");
    }
    auto paired_line = [](const std::string& what, const nlohmann::json& pr) {
      std::string rounds;
      for (const auto& x : pr["rounds"]) rounds += (rounds.empty() ? "" : " ") + fixed2(x.get<double>());
      char all[48] = "";
      if (pr.contains("gen_vs_resident_all_tokens"))
        std::snprintf(all, sizeof all, ", %.3fx over all tokens", pr["gen_vs_resident_all_tokens"].get<double>());
      std::printf("paired %-8s %.3fx resident%s (median token %.1f against %.1f tok/s; rounds %s)%s\n", what.c_str(),
                  pr["gen_vs_resident"].get<double>(), all, pr["gen_tok_s"].get<double>(), pr["resident_tok_s"].get<double>(),
                  rounds.c_str(), pr["tokens_equal_resident"].get<bool>() ? "" : " TOKENS DIFFER");
    };
    for (const auto& a : arr)
      if (a.contains("paired") && a["paired"].is_object()) paired_line(a["budget"].get<std::string>(), a["paired"]);
    if (out.contains("paired_control") && out["paired_control"].is_object())
      paired_line("control", out["paired_control"]);
  });
});

}  // namespace
}  // namespace dcq::cli
