// The lossy stage of double compression (docs/lossy.md): calibration through dcq's own engine,
// compression-aware per-channel rescaling folded into the preceding layer, unstructured pruning,
// and quantization to integer codes (int8 / intK / entropy-constrained) whose low entropy the
// lossless stage then turns into bytes. Everything works on a FloatModel: the model's tensors as
// floats, edited in place stage by stage.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dcq/engine.hpp"
#include "dcq/ggml_type.hpp"
#include "dcq/gguf_value.hpp"
#include "dcq/model.hpp"

namespace dcq::lossy {

struct FloatTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  GgmlType source_type = GgmlType::F32;
  std::vector<float> data;
  int64_t cols() const { return ne.empty() ? 1 : ne[0]; }
  int64_t rows() const { return cols() ? int64_t(data.size()) / cols() : 0; }
};

struct FloatModel {
  std::string source;                 // for messages
  std::vector<GgufKV> metadata;
  std::vector<FloatTensor> tensors;   // in source order
  FloatTensor* find(std::string_view name);
  const FloatTensor* find(std::string_view name) const;
};

// Dequantizes every tensor (any type dcq reads) into floats. Throws Error(bad_input) for a type
// that cannot be dequantized.
FloatModel to_float(const Model& model);
// An F32 Model viewing the FloatModel's data (valid while `f` lives and is not resized): what the
// engine runs for calibration and what the rescale tests compare.
Model as_model(const FloatModel& f);

// ---------------------------------------------------------------- calibration
// Per input channel of one activation site: max |x| (the l-infinity statistic of paper 1) and
// mean x^2 (activation energy: what weights the output error of a linear layer).
struct ChannelStats {
  std::vector<float> max_abs;
  std::vector<double> mean_sq;
  int64_t n_rows = 0;  // activation rows (tokens) seen
};

struct Calibration {
  std::map<std::string, ChannelStats> sites;  // key: site_key(layer, site)
  std::vector<double> token_freq;             // per vocabulary id, relative (sums to 1)
  int64_t n_tokens = 0;
  int n_chunks = 0;
  bool empty() const { return sites.empty(); }
};

std::string site_key(int layer, LinearSite site);

// Runs the float model over `tokens` in chunks of n_ctx (each starting with `bos` when >= 0)
// and collects the statistics of every linear layer's input. Throws Error(bad_input) when fewer
// than `min_tokens` tokens are given.
Calibration calibrate(const FloatModel& model, std::span<const int32_t> tokens, int n_ctx, int32_t bos,
                      int n_threads);

// Which activation site feeds each 2-D weight of a llama model (the embedding has none: its
// rows are weighted by token frequency instead).
struct LinearLayer {
  std::string tensor;
  std::string site;  // site_key; empty for token_embd
};
std::vector<LinearLayer> linear_layers(const FloatModel& model, const LlamaConfig& cfg);
LlamaConfig config_of(const FloatModel& model);

// ---------------------------------------------------------------- quantization
enum class QuantKind { int_k, ecsq };
struct QuantSpec {
  QuantKind kind = QuantKind::int_k;
  int bits = 8;            // int_k: codes in [-(2^(bits-1)-1), 2^(bits-1)-1]; 2..8
  int64_t group = 0;       // int_k: elements per scale along a row; 0 = one scale per row (channel)
  double target_bpw = 4;   // ecsq: entropy of the codes, bits per weight, over all quantized tensors
  std::string name() const;
};

// Codes and scales of one quantized tensor: element (r, c) = scales[r * groups + c / group] * code.
struct QuantTensor {
  std::vector<int8_t> codes;
  std::vector<float> scales;
  int64_t group = 0;        // elements per scale (divides cols)
  double entropy_bits = 0;  // order-0 entropy of the codes, bits per weight
  double error = 0;         // activation-weighted squared error (see weighted_error)
  double rel_error = 0;     // error / weighted energy of the float weights
  double step = 0;          // ecsq: the tensor's step; int_k: mean scale
};

// Per-element error weights of a 2-D weight: col_w[c] * row_w[r] (either may be empty = 1).
struct ErrorWeights {
  std::vector<double> col;  // mean x^2 of the input channel (linear layers)
  std::vector<double> row;  // token frequency (the embedding)
};
ErrorWeights error_weights(const FloatTensor& t, const std::string& site, const Calibration* calib);

// Symmetric per-row (or per-group) quantization with max |w| -> 2^(bits-1)-1. A row that is not
// a whole number of groups gets one scale per row (QuantTensor::group says which was used).
QuantTensor quantize_int(const FloatTensor& t, int bits, int64_t group, const ErrorWeights& w);
// Uniform quantization with one step for the whole tensor; a row whose largest weight would need
// a code beyond +-127 uses max|w| / 127 instead (its own scale), so nothing is clipped.
QuantTensor quantize_step(const FloatTensor& t, double step, const ErrorWeights& w);
// Entropy of int8 codes, bits per symbol (order 0).
double code_entropy(std::span<const int8_t> codes);

// ECSQ rate allocation: one step per tensor so that the entropy-weighted total meets target_bpw
// with the least activation-weighted error (a Lagrangian over a grid of steps per tensor).
// Returns the step of each tensor, in the order given.
struct EcsqTensor {
  const FloatTensor* tensor;
  ErrorWeights weights;
  double sensitivity = 1;  // loss per unit of weighted error (measure_sensitivity)
};
std::vector<double> allocate_ecsq_steps(const std::vector<EcsqTensor>& tensors, double target_bpw, int n_threads);

// Sensitivity: mean KL(float || probed) per unit of weighted error, when the tensors of one probe
// (a tensor, or an embedding and its classifier copy) alone are replaced by `probe`'s codes.
struct SensitivityProbe {
  std::vector<std::string> tensors;
  QuantTensor probe;
  double error = 0;  // the probe's weighted error (summed over its tensors)
};
std::vector<double> measure_sensitivity(const FloatModel& model, const std::vector<SensitivityProbe>& probes,
                                        std::span<const int32_t> tokens, int n_ctx, int32_t bos, int n_threads);

// ---------------------------------------------------------------- rescaling
enum class RescaleMode { none, smooth, entropy };
struct RescaleOptions {
  RescaleMode mode = RescaleMode::none;
  double alpha = 0.5;   // smooth: migration strength
  double lambda = 1.0;  // entropy: weight of log2 error against bits (1 = the high-rate exchange rate)
  QuantSpec quant;      // entropy: the quantizer whose code entropy is minimised
};
struct RescaleGroup {
  std::string site;
  std::vector<std::string> consumers;  // weights whose input columns were multiplied by s
  std::string folded_into;             // the tensor divided by s
  double exponent = 0;                 // entropy: the chosen gamma of s = (rms / geomean)^gamma
  double min_scale = 1, max_scale = 1;
};
// Multiplies input channel j of every consumer of a site by s_j and divides the producer of that
// channel (the RMSNorm weight, ffn_up's row j, or attn_v's row for attn_output) by s_j, so the
// float model computes the same function. Needs calibration.
std::vector<RescaleGroup> rescale(FloatModel& model, const Calibration& calib, const RescaleOptions& options,
                                  int n_threads);

// ---------------------------------------------------------------- pruning
enum class PruneBy { magnitude, linf, wanda };
// Sets exactly round(ratio * n) weights of every per-block linear layer to zero: those with the
// smallest score |W| (magnitude), |W| * max|x_j| (linf, paper 1) or |W| * ||x_j||_2 (wanda);
// ties broken by position. Returns the number of zeros written per tensor.
std::map<std::string, int64_t> prune(FloatModel& model, const Calibration* calib, double ratio, PruneBy by);

}  // namespace dcq::lossy
