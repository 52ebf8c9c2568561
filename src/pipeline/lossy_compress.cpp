// `dcq compress` (lossy): model -> floats -> calibrate -> prune -> rescale -> quantize -> a GGUF
// holding I8 codes + F32 scales (or llama.cpp block types) -> the lossless container. The
// intermediate GGUFs are temporary files beside the output, removed whatever happens.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <unistd.h>

#include "dcq/compress.hpp"
#include "dcq/convert.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/lossy.hpp"
#include "dcq/tokenizer.hpp"
#include "dcq/weights.hpp"
#include "pipeline/compress_internal.hpp"
#include "pipeline/type_choice.hpp"

namespace dcq {
namespace {

using namespace lossy;

// A temporary file removed when this goes out of scope.
struct TempPath {
  std::filesystem::path path;
  // The tag ends with the extension the consumer expects (convert keys on ".gguf").
  explicit TempPath(const std::filesystem::path& out, const char* tag)
      : path(out.string() + ".tmp-" + std::to_string(getpid()) + "-" + tag) {}
  ~TempPath() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    if (n == 2 && c < 0xC2) return false;  // overlong
    i += n;
  }
  return true;
}

struct QuantChoice {
  bool gguf = false;
  std::string gguf_type;  // for convert
  QuantSpec spec;
};

QuantChoice parse_quant(const LossyOptions& o) {
  QuantChoice q;
  const std::string& s = o.quant;
  if (s == "ecsq") {
    q.spec.kind = QuantKind::ecsq;
    q.spec.target_bpw = o.target_bpw;
    if (!(o.target_bpw > 0 && o.target_bpw <= 8)) fail_usage("--target-bpw must be in (0, 8], got " + std::to_string(o.target_bpw));
    return q;
  }
  if (s.size() == 4 && s.starts_with("int") && s[3] >= '2' && s[3] <= '8') {
    q.spec.kind = QuantKind::int_k;
    q.spec.bits = s[3] - '0';
    q.spec.group = o.group;
    if (o.group < 0) fail_usage("--group must be >= 0");
    return q;
  }
  // Anything else must be a llama.cpp tensor type or file type (checked now, before any work).
  pipeline::plan_types(Model{}, s, false, false);
  q.gguf = true;
  q.gguf_type = s;
  return q;
}

std::vector<int32_t> calibration_tokens(const LossyOptions& o, const Tokenizer& tok) {
  std::string text;
  try {
    text = read_text_file(o.calib);
  } catch (const Error& e) {
    fail_input(o.calib.string() + ": cannot read calibration text (" + e.what() + ")");
  }
  if (!valid_utf8(text)) fail_input(o.calib.string() + ": calibration text is not valid UTF-8");
  // Tokenizing a whole corpus to use its first N tokens is wasteful: take a prefix that is
  // comfortably enough (tokens are rarely longer than 16 bytes).
  const size_t want_bytes = size_t(o.calib_tokens) * 16 + 4096;
  if (text.size() > want_bytes) {
    size_t cut = want_bytes;
    while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters
    text.resize(cut);
  }
  std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/false);
  if (ids.size() > size_t(o.calib_tokens)) ids.resize(size_t(o.calib_tokens));
  if (ids.size() < size_t(o.calib_ctx))
    fail_input(o.calib.string() + ": calibration text has " + std::to_string(ids.size()) +
               " tokens, fewer than one chunk of " + std::to_string(o.calib_ctx) + " (--calib-ctx)");
  return ids;
}

// The GGUF that goes into the container: quantized weights as I8 codes + F32 scale tensors.
Model build_i8_model(const FloatModel& fm, const std::map<std::string, QuantTensor>& q, const std::string& quant_name) {
  Model m;
  m.source = fm.source;
  m.metadata = fm.metadata;
  m.erase_kv("general.file_type");  // a llama.cpp file type would be a lie: these are dcq's codes
  m.set_kv("dcq.quant", GgufValue{std::string(quant_name)});
  for (const auto& t : fm.tensors) {
    const auto it = q.find(t.name);
    if (it == q.end()) {
      Tensor x{t.name, GgmlType::F32, t.ne, {}};
      auto buf = m.allocate(t.data.size() * sizeof(float));
      std::memcpy(buf.data(), t.data.data(), buf.size());
      x.data = buf;
      m.tensors.push_back(std::move(x));
      continue;
    }
    const QuantTensor& qt = it->second;
    Tensor c{t.name, GgmlType::I8, t.ne, {}};
    auto cb = m.allocate(qt.codes.size());
    std::memcpy(cb.data(), qt.codes.data(), cb.size());
    c.data = cb;
    m.tensors.push_back(std::move(c));
    Tensor s{scale_tensor_name(t.name), GgmlType::F32, {t.cols() / qt.group, t.rows()}, {}};
    auto sb = m.allocate(qt.scales.size() * sizeof(float));
    std::memcpy(sb.data(), qt.scales.data(), sb.size());
    s.data = sb;
    m.tensors.push_back(std::move(s));
  }
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

nlohmann::json compress_lossy(const LossyOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const CompressOptions& co = o.container;
  // Flags first: a bad flag must not cost a model load.
  if (!(o.prune >= 0 && o.prune < 1)) fail_usage("--prune must be in [0, 1), got " + std::to_string(o.prune));
  PruneBy by;
  if (o.prune_by == "magnitude") by = PruneBy::magnitude;
  else if (o.prune_by == "linf") by = PruneBy::linf;
  else if (o.prune_by == "wanda") by = PruneBy::wanda;
  else fail_usage("--prune-by must be magnitude, linf or wanda, got '" + o.prune_by + "'");
  RescaleOptions ro;
  if (o.rescale == "none") ro.mode = RescaleMode::none;
  else if (o.rescale == "smooth") ro.mode = RescaleMode::smooth;
  else if (o.rescale == "entropy") ro.mode = RescaleMode::entropy;
  else fail_usage("--rescale must be none, smooth or entropy, got '" + o.rescale + "'");
  ro.alpha = o.alpha;
  ro.lambda = o.lambda;
  if (ro.mode == RescaleMode::smooth && !(o.alpha >= 0 && o.alpha <= 1)) fail_usage("--alpha must be in [0, 1]");
  if (ro.mode == RescaleMode::entropy && !(o.lambda > 0)) fail_usage("--lambda must be > 0");
  const QuantChoice qc = parse_quant(o);
  ro.quant = qc.gguf ? QuantSpec{} : qc.spec;
  if (o.calib_tokens < 1) fail_usage("--calib-tokens must be >= 1");
  if (o.calib_ctx < 8 || o.calib_ctx > 65536) fail_usage("--calib-ctx must be 8..65536");
  const bool needs_calib = ro.mode != RescaleMode::none || (o.prune > 0 && by != PruneBy::magnitude);
  if (needs_calib && o.calib.empty())
    fail_usage("--rescale " + o.rescale + (o.prune > 0 ? " / --prune-by " + o.prune_by : "") + " needs --calib TEXT");
  if (co.input.empty() || co.output.empty()) fail_usage("compress needs an input and -o OUTPUT");
  check_can_write(co.output, co.force);
  const int threads = std::max(1, co.threads);

  const auto fmt = detect_format(co.input);
  if (fmt == ModelFormat::dcq) fail_input(co.input.string() + ": is already a .dcq container");
  const Model src = load_model(co.input);
  FloatModel fm = to_float(src);
  const LlamaConfig cfg = config_of(fm);  // the engine must run it (calibration, and afterwards)
  nlohmann::json timing;

  std::optional<Calibration> calib;
  std::vector<int32_t> calib_ids;
  int32_t bos = -1;
  if (!o.calib.empty()) {
    const auto t = std::chrono::steady_clock::now();
    const Tokenizer tok = Tokenizer::from_model(src);
    calib_ids = calibration_tokens(o, tok);
    bos = tok.bos();
    calib = calibrate(fm, calib_ids, o.calib_ctx, bos, threads);
    timing["calibrate"] = seconds_since(t);
    spdlog::info("calibrated on {} tokens ({} chunks) in {:.1f} s", calib->n_tokens, calib->n_chunks,
                 timing["calibrate"].get<double>());
  }
  const Calibration* cal = calib ? &*calib : nullptr;

  // Pruning first, on the original weights and activations (|W_ij| * |x_j| is what matters), then
  // rescaling, which keeps zeros zero.
  auto t = std::chrono::steady_clock::now();
  const auto zeros = prune(fm, cal, o.prune, by);
  timing["prune"] = seconds_since(t);
  t = std::chrono::steady_clock::now();
  const auto groups = rescale(fm, cal ? *cal : Calibration{}, ro, threads);
  timing["rescale"] = seconds_since(t);

  nlohmann::json settings = {{"quant", qc.gguf ? qc.gguf_type : qc.spec.name()},
                             {"rescale", o.rescale},
                             {"prune", o.prune},
                             {"prune_by", o.prune_by}};
  if (ro.mode == RescaleMode::smooth) settings["alpha"] = o.alpha;
  if (ro.mode == RescaleMode::entropy) settings["lambda"] = o.lambda;
  if (!qc.gguf && qc.spec.kind == QuantKind::ecsq) settings["target_bpw"] = o.target_bpw;
  if (!qc.gguf && qc.spec.kind == QuantKind::int_k) settings["group"] = o.group;
  if (cal) settings["calibration"] = {{"file", o.calib.filename().string()}, {"tokens", cal->n_tokens}, {"ctx", o.calib_ctx}};
  std::vector<std::string> stages;
  if (cal) stages.push_back("calibrate");
  if (o.prune > 0) stages.push_back("prune");
  if (ro.mode != RescaleMode::none) stages.push_back("rescale");
  stages.push_back("quantize");

  nlohmann::json tensors = nlohmann::json::array();
  TempPath gguf(co.output, "lossy.gguf");
  std::map<std::string, QuantTensor> quantized;
  t = std::chrono::steady_clock::now();
  if (qc.gguf) {
    // llama.cpp block types: the shaped float model goes through dcq convert (same type choices,
    // fallbacks and bytes as llama-quantize).
    TempPath f32(co.output, "f32.gguf");
    write_gguf(as_model(fm), f32.path, true);
    ConvertOptions cv;
    cv.input = f32.path;
    cv.output = gguf.path;
    cv.type = qc.gguf_type;
    cv.force = true;
    cv.threads = threads;
    const ConvertReport r = convert(cv);
    for (const auto& c : r.tensors) {
      nlohmann::json j = {{"name", c.name}, {"quant", std::string(type_name(c.to))}};
      if (!c.reason.empty()) j["reason"] = c.reason;
      tensors.push_back(j);
    }
  } else {
    const auto layers = linear_layers(fm, cfg);
    // A classifier that is a copy of the embedding (llama2.c exports) stays a copy, so the
    // container stores it once.
    const FloatTensor* emb = fm.find("token_embd.weight");
    const FloatTensor* out = fm.find("output.weight");
    const bool tied_copy = emb && out && emb->data == out->data;
    std::vector<const LinearLayer*> todo;
    for (const auto& l : layers)
      if (!(tied_copy && l.tensor == "output.weight")) todo.push_back(&l);
    std::vector<ErrorWeights> w(todo.size());
    for (size_t i = 0; i < todo.size(); ++i) w[i] = error_weights(*fm.find(todo[i]->tensor), todo[i]->site, cal);
    std::vector<double> steps;
    std::map<std::string, double> sensitivities;
    if (qc.spec.kind == QuantKind::ecsq) {
      std::vector<EcsqTensor> e;
      for (size_t i = 0; i < todo.size(); ++i) e.push_back({fm.find(todo[i]->tensor), w[i]});
      if (cal) {
        // Probe each tensor near the operating point (a step giving about target_bpw bits on a
        // Gaussian) over the first two calibration chunks.
        const auto ts = std::chrono::steady_clock::now();
        std::vector<SensitivityProbe> probes(todo.size());
        parallel_for(todo.size(), size_t(threads), [&](size_t i) {
          const FloatTensor& ft = *e[i].tensor;
          double sq = 0;
          for (float v : ft.data) sq += double(v) * v;
          const double rms = std::sqrt(sq / double(std::max<size_t>(1, ft.data.size())));
          probes[i].tensors = {ft.name};
          if (tied_copy && ft.name == "token_embd.weight") probes[i].tensors.push_back("output.weight");
          if (rms > 0) probes[i].probe = quantize_step(ft, rms * std::exp2(2.05 - qc.spec.target_bpw), w[i]);
          probes[i].error = probes[i].probe.error;
        });
        const size_t n = std::min(calib_ids.size(), size_t(2 * o.calib_ctx)) / size_t(o.calib_ctx) * size_t(o.calib_ctx);
        const auto sens = measure_sensitivity(fm, probes, std::span(calib_ids).first(n), o.calib_ctx, bos, threads);
        for (size_t i = 0; i < todo.size(); ++i) e[i].sensitivity = sens[i] > 0 ? sens[i] : 1e-30;
        timing["sensitivity"] = seconds_since(ts);
      }
      steps = allocate_ecsq_steps(e, qc.spec.target_bpw, threads);
      for (size_t i = 0; i < todo.size(); ++i) sensitivities[todo[i]->tensor] = e[i].sensitivity;
    }
    std::vector<QuantTensor> qs(todo.size());
    parallel_for(todo.size(), size_t(threads), [&](size_t i) {
      const FloatTensor& ft = *fm.find(todo[i]->tensor);
      qs[i] = qc.spec.kind == QuantKind::ecsq ? quantize_step(ft, steps[i], w[i])
                                              : quantize_int(ft, qc.spec.bits, qc.spec.group, w[i]);
    });
    for (size_t i = 0; i < todo.size(); ++i) quantized[todo[i]->tensor] = std::move(qs[i]);
    if (tied_copy) quantized["output.weight"] = quantized["token_embd.weight"];
    for (const auto& l : layers) {
      const QuantTensor& q = quantized.at(l.tensor);
      int64_t zc = 0;
      for (int8_t c : q.codes) zc += c == 0;
      nlohmann::json j = {{"name", l.tensor},
                          {"quant", qc.spec.name()},
                          {"params", q.codes.size()},
                          {"entropy_bits", q.entropy_bits},
                          {"step", q.step},
                          {"rel_error", q.rel_error},
                          {"zero_codes", zc}};
      if (const auto it = zeros.find(l.tensor); it != zeros.end()) j["pruned"] = it->second;
      if (const auto it = sensitivities.find(l.tensor); it != sensitivities.end()) j["sensitivity"] = it->second;
      if (tied_copy && l.tensor == "output.weight") j["copy_of"] = "token_embd.weight";
      tensors.push_back(j);
    }
    write_gguf(build_i8_model(fm, quantized, qc.spec.name()), gguf.path, true);
  }
  timing["quantize"] = seconds_since(t);

  CompressOptions cc = co;
  cc.input = gguf.path;
  cc.source_name = co.input.filename().string();
  cc.stages = stages;
  nlohmann::json rescale_j = nlohmann::json::array();
  for (const auto& g : groups)
    rescale_j.push_back({{"site", g.site}, {"folded_into", g.folded_into}, {"consumers", g.consumers},
                         {"exponent", g.exponent}, {"min_scale", g.min_scale}, {"max_scale", g.max_scale}});
  cc.lossy = settings;
  t = std::chrono::steady_clock::now();
  nlohmann::json rep = compress(cc);
  timing["encode"] = seconds_since(t);

  // Totals and the comparisons the paper makes.
  const auto& stored = rep["tensor_stored_bytes"];
  int64_t params = 0, qparams = 0;
  double bits = 0;
  uint64_t int8_bytes = 0, src_tensor_bytes = 0;
  for (const auto& st : src.tensors) src_tensor_bytes += st.n_bytes();
  for (const auto& ft : fm.tensors) {
    params += int64_t(ft.data.size());
    const auto it = quantized.find(ft.name);
    int8_bytes += it != quantized.end() || (qc.gguf && ft.ne.size() == 2)
                      ? uint64_t(ft.data.size()) + 4 * uint64_t(ft.rows())
                      : 4 * uint64_t(ft.data.size());
  }
  // A folder (sharded safetensors) has no single file size: its tensors stand for it.
  const uint64_t in_bytes = std::filesystem::is_directory(co.input) ? src_tensor_bytes : std::filesystem::file_size(co.input);
  int8_bytes += in_bytes - std::min(in_bytes, src_tensor_bytes);  // the source's metadata
  for (auto& j : tensors) {
    const std::string name = j["name"];
    uint64_t b = stored.contains(name) ? stored[name].get<uint64_t>() : 0;
    const std::string sn = scale_tensor_name(name);
    if (!qc.gguf && stored.contains(sn)) b += stored[sn].get<uint64_t>();
    j["stored_bytes"] = b;
    if (j.contains("entropy_bits")) {
      qparams += j["params"].get<int64_t>();
      bits += j["entropy_bits"].get<double>() * j["params"].get<double>();
    }
  }
  const uint64_t out_bytes = rep["output_bytes"];
  nlohmann::json totals = {{"params", params},
                           {"quantized_params", qparams},
                           {"entropy_bpw", qparams ? bits / double(qparams) : 0.0},
                           {"output_bytes", out_bytes},
                           {"bits_per_param", 8.0 * double(out_bytes) / double(std::max<int64_t>(1, params))},
                           {"source_bytes", in_bytes},
                           {"ratio_vs_source", double(in_bytes) / double(out_bytes)},
                           {"int8_bytes", int8_bytes},
                           {"ratio_vs_int8", double(int8_bytes) / double(out_bytes)}};
  if (o.baselines && (fmt == ModelFormat::gguf || fmt == ModelFormat::safetensors) &&
      !std::filesystem::is_directory(co.input)) {
    TempPath ll(co.output, "lossless.dcq");
    CompressOptions lo = co;
    lo.output = ll.path;
    lo.force = true;
    const auto r = compress(lo);
    totals["lossless_only_bytes"] = r["output_bytes"];
    totals["ratio_vs_lossless_only"] = r["output_bytes"].get<double>() / double(out_bytes);
  }
  nlohmann::json lossy_j = {{"settings", settings}, {"stages", stages}, {"tensors", tensors},
                            {"rescale", rescale_j}, {"totals", totals}, {"timing", timing}};
  if (cal) lossy_j["calibration"] = {{"tokens", cal->n_tokens}, {"chunks", cal->n_chunks}};
  rep["lossy"] = lossy_j;
  rep["input"] = co.input.string();
  rep["input_bytes"] = in_bytes;
  rep["ratio"] = double(in_bytes) / double(out_bytes);
  rep["seconds"] = seconds_since(t0);
  rep.erase("tensor_stored_bytes");
  if (!o.report.empty()) {
    AtomicFile f(o.report, true);
    const std::string s = rep.dump(2) + "\n";
    f.write({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    f.commit();
  }
  return rep;
}

}  // namespace dcq
