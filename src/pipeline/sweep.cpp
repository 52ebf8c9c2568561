// `dcq bench sweep`: builds every point of a grid of lossy settings plus llama.cpp-compatible
// baselines, measures bytes / perplexity / KL, and draws the size-perplexity plane.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "dcq/bench.hpp"
#include "dcq/compress.hpp"
#include "dcq/convert.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/io.hpp"
#include "dcq/loader.hpp"
#include "dcq/perplexity.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The built-in grid: the paper's INT8 setting with its two shaping steps, and ECSQ across rates.
json default_grid() {
  json g = json::array();
  g.push_back({{"name", "int8"}, {"quant", "int8"}});
  g.push_back({{"name", "int8-entropy"}, {"quant", "int8"}, {"rescale", "entropy"}});
  g.push_back({{"name", "int8-prune0.3-linf"}, {"quant", "int8"}, {"prune", 0.3}, {"prune_by", "linf"}});
  g.push_back({{"name", "int8-entropy-prune0.3-wanda"}, {"quant", "int8"}, {"rescale", "entropy"}, {"prune", 0.3}, {"prune_by", "wanda"}});
  g.push_back({{"name", "int4-g32"}, {"quant", "int4"}, {"group", 32}});
  for (double b : {2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0}) {
    char name[64];
    std::snprintf(name, sizeof name, "ecsq%.1f-entropy", b);
    g.push_back({{"name", name}, {"quant", "ecsq"}, {"target_bpw", b}, {"rescale", "entropy"}});
  }
  g.push_back({{"name", "ecsq4.0"}, {"quant", "ecsq"}, {"target_bpw", 4.0}});
  g.push_back({{"name", "ecsq4.0-entropy-prune0.2-wanda"}, {"quant", "ecsq"}, {"target_bpw", 4.0}, {"rescale", "entropy"}, {"prune", 0.2}, {"prune_by", "wanda"}});
  return g;
}

LossyOptions lossy_of(const json& c, const SweepOptions& o, const fs::path& out) {
  LossyOptions l;
  l.container.input = o.model;
  l.container.output = out;
  l.container.force = true;
  l.container.threads = o.threads;
  l.container.min_decode_speed_gbps = c.value("min_decode_speed", 0.0);
  l.calib = o.calib;
  l.calib_tokens = o.calib_tokens;
  l.quant = c.value("quant", std::string("int8"));
  l.rescale = c.value("rescale", std::string("none"));
  l.alpha = c.value("alpha", 0.5);
  l.lambda = c.value("lambda", 1.0);
  l.group = c.value("group", int64_t{0});
  l.target_bpw = c.value("target_bpw", 4.0);
  l.prune = c.value("prune", 0.0);
  l.prune_by = c.value("prune_by", std::string("magnitude"));
  l.baselines = false;
  return l;
}

void write_text(const fs::path& p, const std::string& s) {
  AtomicFile f(p, true);
  f.write(s.data(), s.size());
  f.commit();
}

std::string svg_plot(const json& points, const std::string& title) {
  // x: kilobytes (linear), y: perplexity (linear). The y axis stops at 1.5x the best perplexity:
  // a few very lossy points would otherwise squash the interesting region into a line; points
  // beyond it sit on the top edge with their perplexity in the label.
  double x0 = INFINITY, x1 = 0, y0 = INFINITY, y1 = 0;
  for (const auto& p : points) {
    const double x = p["bytes"].get<double>() / 1000, y = p["ppl"];
    x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  }
  const double y_cap = std::min(y1, 1.5 * y0);
  y1 = y_cap;
  const double dx = std::max(1e-9, x1 - x0), dy = std::max(1e-9, y1 - y0);
  x0 -= 0.05 * dx, x1 += 0.05 * dx, y0 -= 0.05 * dy, y1 += 0.08 * dy;
  const double W = 900, H = 600, L = 70, R = 30, T = 40, B = 60;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (std::min(y, y_cap + 0.04 * dy) - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  char buf[512];
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"22\" font-size=\"15\">%s</text>\n", L, title.c_str());
  s << buf;
  std::snprintf(buf, sizeof buf, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n",
                L, H - B, W - R, H - B, L, T, L, H - B);
  s << buf;
  for (int i = 0; i <= 5; ++i) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.0f</text>\n<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3f</text>\n",
                  px(xv), H - B + 16, xv, L - 6, py(yv) + 4, yv);
    s << buf;
  }
  std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">file size (kB)</text>\n", (L + W - R) / 2, H - 18);
  s << buf;
  std::snprintf(buf, sizeof buf, "<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" text-anchor=\"middle\">perplexity</text>\n",
                (T + H - B) / 2, (T + H - B) / 2);
  s << buf;
  // The Pareto front: points no other point beats in both bytes and perplexity.
  std::vector<std::pair<double, double>> front;
  for (const auto& p : points)
    if (p.value("pareto", false)) front.emplace_back(p["bytes"].get<double>() / 1000, p["ppl"].get<double>());
  std::sort(front.begin(), front.end());
  if (front.size() > 1) {
    s << "<polyline fill=\"none\" stroke=\"#2a7\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : front) s << px(x) << "," << py(y) << " ";
    s << "\"/>\n";
  }
  int index = 0;
  for (const auto& p : points) {
    const std::string kind = p["kind"];
    const bool off_scale = p["ppl"].get<double>() > y_cap;
    const std::string label = p["name"].get<std::string>() +
                              (off_scale ? " (PPL " + std::to_string(p["ppl"].get<double>()).substr(0, 5) + ")" : "");
    // Alternate labels above and below their points: neighbours on the front are close.
    const double dy_label = (index++ % 2) ? 14 : -4;
    const char* color = kind == "dcq" ? "#d33" : kind == "baseline" ? "#36c" : "#a5c";
    const double x = px(p["bytes"].get<double>() / 1000), y = py(p["ppl"].get<double>());
    std::snprintf(buf, sizeof buf, "<circle cx=\"%g\" cy=\"%g\" r=\"%d\" fill=\"%s\"/>\n", x, y, p.value("pareto", false) ? 5 : 3, color);
    s << buf;
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" fill=\"%s\">%s</text>\n", x + 6, y + dy_label, color,
                  label.c_str());
    s << buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%g\" y=\"%g\" fill=\"#d33\">dcq double compression</text><text x=\"%g\" y=\"%g\" fill=\"#36c\">llama.cpp types (GGUF)</text><text x=\"%g\" y=\"%g\" fill=\"#a5c\">llama.cpp types + dcq lossless</text><text x=\"%g\" y=\"%g\" fill=\"#2a7\">Pareto front</text>\n",
                W - 230, T + 10.0, W - 230, T + 26.0, W - 230, T + 42.0, W - 230, T + 58.0);
  s << buf << "</svg>\n";
  return s.str();
}

}  // namespace

json bench_sweep(const SweepOptions& o) {
  if (o.out_dir.empty()) fail_usage("bench sweep needs -o DIR");
  if (o.n_ctx < 8) fail_usage("--ctx-size must be >= 8");
  for (const auto* p : {&o.model, &o.calib, &o.eval})
    if (!fs::exists(*p)) fail_input(p->string() + ": no such file");
  json grid = default_grid();
  if (!o.configs.empty()) {
    try {
      grid = json::parse(read_text_file(o.configs));
    } catch (const json::exception& e) {
      fail_input(o.configs.string() + ": not a JSON array of settings (" + e.what() + ")");
    }
    if (!grid.is_array() || grid.empty()) fail_input(o.configs.string() + ": must be a non-empty JSON array");
    for (const auto& c : grid)
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string())
        fail_input(o.configs.string() + ": every setting needs a \"name\"");
  }
  const fs::path points_dir = o.out_dir / "points";
  fs::create_directories(points_dir);

  // Evaluation tokens and the source model's log-probabilities (for KL), computed once.
  const Model src = load_model(o.model);
  const Tokenizer tok = Tokenizer::from_model(src);
  const std::string text = read_text_file(o.eval);
  const std::vector<int32_t> ids = tok.encode(text, true);
  if (ids.size() < size_t(o.n_ctx)) fail_input(o.eval.string() + ": fewer tokens than one chunk");
  const fs::path base_path = o.out_dir / "base.logp";
  auto eval_model = [&](const fs::path& p, const BaseLogProbs* base, const fs::path& save) {
    OpenedModel om = open_weights(p, {}, {}, false, o.threads);
    Engine e(*om.weights, {o.n_ctx, o.threads});
    PerplexityOptions po;
    po.n_ctx = o.n_ctx;
    po.max_chunks = o.max_chunks;
    po.bos = tok.bos();
    po.kl_base = base;
    po.save_logprobs = save;
    return perplexity(e, ids, po);
  };
  json source_point;
  const fs::path source_record = points_dir / "source.json";
  if (fs::exists(base_path) && fs::exists(source_record)) {
    source_point = json::parse(read_text_file(source_record));
  } else {
    const auto r = eval_model(o.model, nullptr, base_path);
    source_point = {{"name", "source"}, {"kind", "source"}, {"bytes", fs::file_size(o.model)}, {"ppl", r.ppl},
                    {"ppl_err", r.ppl_err}, {"kld", 0.0}, {"same_top", 1.0}};
    write_text(source_record, source_point.dump(2));
  }
  const BaseLogProbs base = BaseLogProbs::open(base_path);

  json points = json::array();
  auto measure = [&](const std::string& name, const std::string& kind, const json& settings,
                     const std::function<fs::path()>& build) {
    const fs::path record = points_dir / (name + ".json");
    json key = {{"kind", kind}, {"settings", settings}, {"n_ctx", o.n_ctx}, {"max_chunks", o.max_chunks},
                {"eval", o.eval.filename().string()}, {"calib", o.calib.filename().string()},
                {"calib_tokens", o.calib_tokens}};
    if (fs::exists(record)) {
      const json old = json::parse(read_text_file(record), nullptr, false);
      if (!old.is_discarded() && old.value("key", json()) == key) {
        spdlog::info("{}: done before, not recomputed", name);
        points.push_back(old);
        return;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path file = build();
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto r = eval_model(file, &base, {});
    json p = {{"name", name}, {"kind", kind}, {"settings", settings}, {"file", file.filename().string()},
              {"bytes", fs::file_size(file)}, {"ppl", r.ppl}, {"ppl_err", r.ppl_err}, {"kld", r.kld_mean},
              {"same_top", r.same_top}, {"build_seconds", build_s}, {"key", key}};
    spdlog::info("{}: {} bytes, PPL {:.4f}, KLD {:.6f}", name, p["bytes"].get<uint64_t>(), r.ppl, r.kld_mean);
    write_text(record, p.dump(2));
    points.push_back(p);
  };

  for (const std::string& t : o.baselines) {
    const fs::path gguf = points_dir / (t + ".gguf");
    auto build_gguf = [&] {
      ConvertOptions c;
      c.input = o.model;
      c.output = gguf;
      c.type = t;
      c.force = true;
      c.threads = o.threads;
      convert(c);
      return gguf;
    };
    measure(t, "baseline", {{"type", t}}, build_gguf);
    measure(t + "+lossless", "baseline+lossless", {{"type", t}}, [&] {
      if (!fs::exists(gguf)) build_gguf();
      CompressOptions c;
      c.input = gguf;
      c.output = points_dir / (t + ".dcq");
      c.force = true;
      c.threads = o.threads;
      compress(c);
      return c.output;
    });
  }
  for (const auto& c : grid) {
    const std::string name = c["name"];
    measure(name, "dcq", c, [&] {
      const fs::path out = points_dir / (name + ".dcq");
      compress_lossy(lossy_of(c, o, out));
      return out;
    });
  }

  // Pareto front over every built point: no other point is both smaller and better.
  for (auto& p : points) {
    bool dominated = false;
    for (const auto& q : points)
      if (&q != &p && q["bytes"].get<double>() <= p["bytes"].get<double>() && q["ppl"].get<double>() <= p["ppl"].get<double>() &&
          (q["bytes"] != p["bytes"] || q["ppl"] != p["ppl"]))
        dominated = true;
    p["pareto"] = !dominated;
  }
  // Against each baseline: the smallest dcq point at least as good, and how much smaller it is.
  json vs = json::array();
  for (const auto& b : points) {
    if (b["kind"] != "baseline") continue;
    const json* best = nullptr;
    for (const auto& p : points)
      if (p["kind"] == "dcq" && p["ppl"].get<double>() <= b["ppl"].get<double>() &&
          (!best || p["bytes"].get<double>() < (*best)["bytes"].get<double>()))
        best = &p;
    json v = {{"baseline", b["name"]}, {"baseline_bytes", b["bytes"]}, {"baseline_ppl", b["ppl"]}};
    if (best)
      v.update({{"dcq", (*best)["name"]}, {"dcq_bytes", (*best)["bytes"]}, {"dcq_ppl", (*best)["ppl"]},
                {"ratio", b["bytes"].get<double>() / (*best)["bytes"].get<double>()}});
    vs.push_back(v);
  }
  json result = {{"model", o.model.string()}, {"eval", o.eval.string()}, {"calib", o.calib.string()},
                 {"n_ctx", o.n_ctx}, {"source", source_point}, {"points", points}, {"versus_baselines", vs}};
  write_text(o.out_dir / "results.json", result.dump(2) + "\n");
  std::ostringstream csv;
  csv << "name,kind,bytes,ppl,ppl_err,kld,same_top,pareto\n";
  for (const auto& p : points) {
    char line[512];
    std::snprintf(line, sizeof line, "%s,%s,%llu,%.6f,%.6f,%.8f,%.6f,%d\n", p["name"].get<std::string>().c_str(),
                  p["kind"].get<std::string>().c_str(), (unsigned long long)p["bytes"].get<uint64_t>(), p["ppl"].get<double>(),
                  p["ppl_err"].get<double>(), p["kld"].get<double>(), p["same_top"].get<double>(), p["pareto"].get<bool>() ? 1 : 0);
    csv << line;
  }
  write_text(o.out_dir / "results.csv", csv.str());
  write_text(o.out_dir / "plot.svg", svg_plot(points, o.model.filename().string() + ": file size vs perplexity (" +
                                                          o.eval.filename().string() + ", -c " + std::to_string(o.n_ctx) + ")"));
  return result;
}

}  // namespace dcq
