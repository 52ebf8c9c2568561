#include <chrono>

#include "dcq/bench.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/quant.hpp"
#include "dcq/quant_plan.hpp"

namespace dcq {
namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

std::vector<QuantBenchRow> bench_quant(const QuantBenchOptions& o) {
  const Model m = load_model(o.model);
  // Source weights as floats once, so that only quantization is timed.
  struct Src {
    const Tensor* t;
    std::vector<float> f;
  };
  std::vector<Src> src;
  for (const auto& t : m.tensors) {
    if (t.ne.size() != 2) continue;
    Src s{&t, std::vector<float>(static_cast<size_t>(t.n_elements()))};
    dequantize_tensor(t.type, t.data.data(), s.f.data(), t.row_width(), t.n_rows(), o.threads);
    src.push_back(std::move(s));
  }
  std::vector<QuantBenchRow> rows;
  for (const auto& name : o.types) {
    const auto type = parse_type(name);
    if (!type || !can_quantize(*type)) fail_usage("bench quant: cannot quantize to '" + name + "'");
    QuantBenchRow r;
    r.type = std::string(type_name(*type));
    std::vector<std::vector<uint8_t>> out(src.size());
    double best_q = 1e30, best_d = 1e30;
    for (int rep = 0; rep < std::max(1, o.repeats); ++rep) {
      r.parameters = r.bytes = 0;
      const double t0 = now();
      for (size_t i = 0; i < src.size(); ++i) {
        const Tensor& t = *src[i].t;
        if (t.row_width() % traits(*type).block_size != 0) continue;  // no fallback in a benchmark
        out[i].resize(*row_bytes(*type, t.row_width()) * t.n_rows());
        quantize_tensor(*type, src[i].f.data(), out[i].data(), t.row_width(), t.n_rows(), o.threads);
        r.parameters += t.n_elements();
        r.bytes += out[i].size();
      }
      best_q = std::min(best_q, now() - t0);
      std::vector<float> back;
      const double t1 = now();
      for (size_t i = 0; i < src.size(); ++i) {
        if (out[i].empty()) continue;
        const Tensor& t = *src[i].t;
        back.resize(static_cast<size_t>(t.n_elements()));
        dequantize_tensor(*type, out[i].data(), back.data(), t.row_width(), t.n_rows(), 1);
      }
      best_d = std::min(best_d, now() - t1);
    }
    r.quantize_seconds = best_q;
    r.quantize_mparams_per_s = r.parameters / best_q / 1e6;
    r.dequantize_gb_per_s = r.parameters * 4.0 / best_d / 1e9;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace dcq
