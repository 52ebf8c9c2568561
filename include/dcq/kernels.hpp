// CPU compute kernels of the inference engine: matrix-vector / matrix-matrix products over every
// supported block format (with activations quantized the way ggml-cpu does, so results follow
// llama.cpp), and the small element-wise ops of a llama forward pass. Each kernel has a scalar
// reference; AVX2 and AVX-512 variants are chosen at run time from cpuid (or DCQ_ISA).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "dcq/ggml_type.hpp"

namespace dcq::kernels {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };
std::string_view isa_name(Isa isa);
// What this CPU can run (AVX2 needs FMA+F16C; AVX-512 needs F/BW/DQ/VL and OS support).
bool cpu_supports(Isa isa);
Isa best_isa();
// The path in use: DCQ_ISA (scalar|avx2|avx512) when set, else best_isa(). Throws Error when
// DCQ_ISA names a path this CPU cannot run or an unknown name.
Isa active_isa();
// Forces a path (tests use it to compare each path with its scalar twin); throws if unsupported.
void set_isa(Isa isa);

// A fixed pool of worker threads. parallel_for splits [0, n) into contiguous ranges, one per
// thread, so which thread computes which row depends only on n and the thread count; every
// output element is computed by exactly one thread, hence results do not depend on threading.
// A forward pass calls parallel_for about a hundred times per token, each call a few tens of
// microseconds long, so idle workers spin briefly on an atomic before sleeping on the condition
// variable (a futex wake-up per call would cost as much as the work on small models).
class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1 (the caller's thread is one of them)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int size() const { return n_threads_; }
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void worker(int index);
  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // DCQ_POOL_STATS=1: each thread's CPU time inside jobs, per call, summed; printed at exit
  // (the load balance of the pool, unaffected by other processes taking the CPU).
  struct Stats;
  Stats* stats_ = nullptr;
};

// Below this many multiply-adds a product (or a layer's attention) runs on the calling thread. A
// hand-off costs ~1-4 us when both vCPUs run, but on a shared host a 2-thread step waits until the
// host runs both: stories260K (64 wide) on 2 threads read 1,000-8,600 tok/s against ~16,000 on 1
// with the former threshold of 32768 (session 9). 2^18 (~25 us of work) keeps every matrix of a
// 110M-shape model on the pool.
inline constexpr int64_t kMinPoolWork = int64_t(1) << 18;
inline bool use_pool(const ThreadPool* pool, int64_t work) { return pool && pool->size() > 1 && work >= kMinPoolWork; }

// Weight types the matmul kernels accept.
bool supports_weight_type(GgmlType type);
// The format activations are converted to before a dot product with a `weight` row (ggml-cpu's
// vec_dot_type): F32 for F32, F16 for F16, BF16 for BF16, Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1
// for Q4_1/Q5_1, Q8_K for the k-quants and IQ4_XS.
GgmlType activation_type(GgmlType weight);
// Converts n floats into `act_type` (a whole number of its blocks), as ggml-cpu's from_float.
void quantize_activation(GgmlType act_type, const float* x, void* dst, int64_t n);
void quantize_activation_reference(GgmlType act_type, const float* x, void* dst, int64_t n);  // scalar twin
// Dot product of one weight row (n elements of `weight`) with an activation row already in
// activation_type(weight).
float vec_dot(GgmlType weight, int64_t n, const void* w_row, const void* act);
// Scalar reference of vec_dot, whatever the active ISA (for tests).
float vec_dot_reference(GgmlType weight, int64_t n, const void* w_row, const void* act);
// F32 / F16 rows whose width is a multiple of lane_width() (16 on the AVX2 and AVX-512 paths, 0 =
// none: the scalar path) are computed in lane order, as llama.cpp's tinyBLAS does on AVX-512: one
// FMA chain per lane, lanes summed by halving (so both SIMD paths give the same bits). vec_dot and matmul (any batch) then equal
// vec_dot_lanes_reference(weight, lane_width(), ...) bit for bit.
int lane_width();
float vec_dot_lanes_reference(GgmlType weight, int lanes, int64_t n, const void* w_row, const void* act);

// A 2-D weight in ggml layout: n_rows rows of n_cols elements, each row row_bytes(type, n_cols).
// Type I8 is dcq's integer-code format (the lossy pipeline's int8/intK/ecsq output): one signed
// code per element and a float scale per `group` consecutive elements of a row, so element
// (r, c) = scales[r * (n_cols / group) + c / group] * code(r, c). Other types ignore scales.
struct Matrix {
  GgmlType type = GgmlType::F32;
  int64_t n_cols = 0;
  int64_t n_rows = 0;
  const uint8_t* data = nullptr;
  const float* scales = nullptr;  // I8 only: n_rows * (n_cols / group) floats
  int64_t group = 0;              // I8 only: elements per scale; divides n_cols
  // Q8_0 / Q4_0 / Q4_K / Q6_K only: the bytes are interleave_rows()'s layout, not ggml's plain rows.
  bool interleaved = false;
};

// Weight repacking (llama.cpp's CPU_REPACK idea, our own layout, docs/kernels.md "Interleaved
// weights"): rows in groups (16 for Q8_0 / Q4_0, 8 for Q4_K / Q6_K) with each block column's
// blocks stored together, so that a matrix-vector product streams one contiguous array and loads
// each activation block once per group. Results are bit-identical with the plain layout on every path.
// Whether the active path wants `type` weights of this shape interleaved (the AVX2 and AVX-512
// paths: Q8_0 and Q4_0 with at least 16 rows, and Q4_K and Q6_K (docs/kernels_kquant.md) with at
// least 8, of whole blocks; DCQ_REPACK=0 turns it off).
bool interleave_pays(GgmlType type, int64_t n_rows, int64_t n_cols);
// Writes the interleaved copy of a plain Q8_0 / Q4_0 / Q4_K / Q6_K matrix (same byte count, dst != src).
void interleave_rows(GgmlType type, int64_t n_rows, int64_t n_cols, const uint8_t* src, uint8_t* dst);
// The same layout written over the plain rows themselves, one group at a time through a small
// scratch copy (a group occupies the same bytes in both layouts): no second matrix in memory.
void interleave_rows_in_place(GgmlType type, int64_t n_rows, int64_t n_cols, uint8_t* data);

// Dot product of n int8 codes (scale per `group` codes) with n floats, and its scalar twin.
float vec_dot_i8(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group);
float vec_dot_i8_reference(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group);

// y[t*n_rows + r] = dot(row r of w, x[t*n_cols ...]) for every row r and token t < n_tok. The
// activations are quantized once per token; rows are split across the pool (nullptr: this thread).
void matmul(const Matrix& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool);

// Several matrices against the same activations (Q, K and V; gate and up): jobs[i].y = jobs[i].w x,
// each bit for bit what matmul(jobs[i].w, x, n_tok, ...) gives. The activations are converted once
// (in parallel over tokens when the batch is large), then every matrix goes to the pool in a single
// parallel_for: thread i computes the same share of rows of each matrix, so one synchronisation
// replaces one per matrix. `after`, when set, runs on each thread right after its share, with the
// rows [r0, r1) it computed (all jobs must then have the same row count): an element-wise step on
// exactly those outputs (SwiGLU of gate and up, a residual add) then needs no pass of its own.
// Over all threads the [r0, r1) ranges cover [0, n_rows) once.
struct MatmulJob {
  Matrix w;
  float* y = nullptr;
};
using RowEpilogue = std::function<void(int64_t r0, int64_t r1)>;
void matmul_multi(std::span<const MatmulJob> jobs, const float* x, int64_t n_tok, ThreadPool* pool,
                  const RowEpilogue& after = {});

// Dequantizes row `row` of w into n_cols floats (the embedding lookup, ggml's get_rows).
void dequantize_row(const Matrix& w, int64_t row, float* out);

// out = x / sqrt(mean(x^2) + eps) * weight  (ggml: rms_norm then mul; the sum in double).
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps);
// In-place softmax (max-subtracted; sum in double as ggml does).
void softmax(float* x, int64_t n);
// x = silu(gate) * up, element-wise.
void swiglu(float* out, const float* gate, const float* up, int64_t n);
// llama.cpp's "normal" RoPE (adjacent pairs) on n_heads heads of head_dim at position pos,
// rotating the first n_rot dims; thetas computed as ggml's rope cache does.
void rope_normal(float* x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
                 float freq_scale);

// One query head against n_kv cached positions, as ggml-cpu's flash attention computes it with
// an F16 KV cache: q rounded to F16, scores = q.k * scale, online softmax, the V accumulator kept
// in F16. k and v point at position 0 of this KV head; rows are `stride` halves apart.
void attention_f16(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv,
                   int head_dim, float scale, float* out);

}  // namespace dcq::kernels
