// Kernel dispatch: ISA detection, the active kernel table, matmul over a thread pool.
#include "dcq/kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include <cpuid.h>

#include "dcq/error.hpp"
#include "kernels/blocks.hpp"

namespace dcq::kernels {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

namespace {

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

struct CpuFeatures {
  bool avx2 = false, avx512 = false;
};

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  f.avx2 = ymm_os && avx2 && fma && f16c;
  // Our AVX-512 files are compiled with VNNI enabled, so require it.
  f.avx512 = f.avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl && vnni;
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

KernelTable make_table(Isa isa) {
  KernelTable t;
  fill_scalar(t);
  if (isa == Isa::avx2 || isa == Isa::avx512) {
    fill_avx2(t);
    fill_avx2_kquant(t);
    fill_avx2_gemm(t);  // after fill_avx2: replaces its F32 dot and tile (the AVX-512 path's bits)
  }
  if (isa == Isa::avx512) {
    fill_avx512(t);
    // The interleaved Q8_0 / Q4_0 layout has its own VNNI kernels (repack_avx512.cpp); on this
    // AMD EPYC (Zen 4) they stream weights at ~3x the rate of the plain-row VNNI dot4 kernels for
    // one token (docs/kernels.md, "Interleaved weights"), so this path packs too.
    // fill_avx512 has its own dot_f32 (ggml's AVX-512 order), so the F32 tile comes from the same
    // file as the layout's kernels, made for that order (AVX2's tile would no longer equal it).
    fill_avx512_repack(t);
    fill_avx512_kquant(t);
    fill_avx512_gemm(t);  // F32 / F16 in 16-lane order (replaces the AVX2 path's 8-lane panels)
  }
  return t;
}

const KernelTable& scalar_table() {
  static const KernelTable t = make_table(Isa::scalar);
  return t;
}

Isa isa_from_env() {
  const char* env = std::getenv("DCQ_ISA");
  if (!env || !*env) return best_isa();
  const std::string s = env;
  Isa isa;
  if (s == "scalar") isa = Isa::scalar;
  else if (s == "avx2") isa = Isa::avx2;
  else if (s == "avx512") isa = Isa::avx512;
  else fail_usage("DCQ_ISA=" + s + ": unknown instruction set (use scalar, avx2 or avx512)");
  if (!cpu_supports(isa))
    fail(ExitCode::resource, "DCQ_ISA=" + s + ": this CPU cannot run the " + s + " kernels");
  return isa;
}

struct Active {
  Isa isa;
  KernelTable table;
};

Active*& active_slot() {
  static Active* a = nullptr;
  return a;
}

const Active& active() {
  static std::once_flag once;
  std::call_once(once, [] {
    const Isa isa = isa_from_env();
    active_slot() = new Active{isa, make_table(isa)};
  });
  return *active_slot();
}

}  // namespace

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return features().avx2;
    case Isa::avx512: return features().avx512;
  }
  return false;
}

Isa best_isa() {
  if (cpu_supports(Isa::avx512)) return Isa::avx512;
  if (cpu_supports(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

Isa active_isa() { return active().isa; }

void set_isa(Isa isa) {
  if (!cpu_supports(isa))
    fail(ExitCode::resource, "this CPU cannot run the " + std::string(isa_name(isa)) + " kernels");
  (void)active();
  // Not thread-safe with running kernels: tests switch paths between computations only.
  auto* next = new Active{isa, make_table(isa)};
  Active* old = active_slot();
  active_slot() = next;
  delete old;
}

bool supports_weight_type(GgmlType type) {
  if (type == GgmlType::I8) return true;
  const auto i = static_cast<uint32_t>(type);
  return i < kMaxType && scalar_table().vec_dot[i] != nullptr;
}

GgmlType activation_type(GgmlType weight) {
  switch (weight) {
    case GgmlType::F32: case GgmlType::I8: return GgmlType::F32;
    case GgmlType::F16: return GgmlType::F16;
    case GgmlType::BF16: return GgmlType::BF16;
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: case GgmlType::IQ4_NL:
      return GgmlType::Q8_0;
    case GgmlType::Q4_1: case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K:
    case GgmlType::Q6_K: case GgmlType::IQ4_XS:
      return GgmlType::Q8_K;
    default:
      fail_input("no matmul kernel for weight type " + std::string(type_name(weight)));
  }
}

void quantize_activation(GgmlType act_type, const float* x, void* dst, int64_t n) {
  const auto f = active().table.quantize[static_cast<int>(act_type)];
  DCQ_ASSERT(f != nullptr);
  f(x, dst, n);
}

float vec_dot(GgmlType weight, int64_t n, const void* w_row, const void* act) {
  const KernelTable& t = active().table;
  const int i = static_cast<int>(weight);
  // Widths the lane-order panels take must give the same bits here as in matmul.
  if (t.lane_dot[i] && n % t.panel_lanes == 0) return t.lane_dot[i](n, w_row, act);
  return t.vec_dot[i](n, w_row, act);
}

int lane_width() { return active().table.panel_lanes; }

float vec_dot_lanes_reference(GgmlType weight, int lanes, int64_t n, const void* w_row, const void* act) {
  return dot_lanes_scalar(weight, lanes, n, w_row, act);
}

float vec_dot_reference(GgmlType weight, int64_t n, const void* w_row, const void* act) {
  return scalar_table().vec_dot[static_cast<int>(weight)](n, w_row, act);
}

void attention_f16(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv,
                   int head_dim, float scale, float* out) {
  active().table.attention(q, k, v, stride, n_kv, head_dim, scale, out);
}

void quantize_activation_reference(GgmlType act_type, const float* x, void* dst, int64_t n) {
  const auto f = scalar_table().quantize[static_cast<int>(act_type)];
  DCQ_ASSERT(f != nullptr);
  f(x, dst, n);
}

float vec_dot_i8(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group) {
  return active().table.dot_i8(n, w, x, scales, group);
}

float vec_dot_i8_reference(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group) {
  return scalar_table().dot_i8(n, w, x, scales, group);
}

namespace {

void check_i8(const Matrix& w) {
  if (!w.scales || w.group <= 0 || w.n_cols % w.group != 0)
    fail_input("matmul: I8 weight without scales, or a group of " + std::to_string(w.group) +
               " that does not divide its " + std::to_string(w.n_cols) + " columns");
}

// dcq's I8 codes: activations stay float (any row width works, including ffn widths such as 172).
// A batch goes in tiles of 16 rows x 4 tokens: each code is widened once per 4 tokens, and the
// tile's rows and tokens stay in cache while they are combined.
void matmul_i8(const Matrix& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool) {
  check_i8(w);
  const I8DotFn dot = active().table.dot_i8;
  const I8Dot4Fn dot4 = active().table.dot_i8_4;
  const int64_t n_groups = w.n_cols / w.group;
  const auto* codes = reinterpret_cast<const int8_t*>(w.data);
  auto rows = [&](int64_t r0, int64_t r1) {
    constexpr int64_t kRowTile = 16;
    for (int64_t rt = r0; rt < r1; rt += kRowTile) {
      const int64_t re = std::min(rt + kRowTile, r1);
      int64_t t = 0;
      for (; t + 4 <= n_tok; t += 4) {
        const float* xs[4] = {x + t * w.n_cols, x + (t + 1) * w.n_cols, x + (t + 2) * w.n_cols, x + (t + 3) * w.n_cols};
        for (int64_t r = rt; r < re; ++r) {
          float out[4];
          dot4(w.n_cols, codes + r * w.n_cols, xs, w.scales + r * n_groups, w.group, out);
          for (int i = 0; i < 4; ++i) y[(t + i) * w.n_rows + r] = out[i];
        }
      }
      for (; t < n_tok; ++t)
        for (int64_t r = rt; r < re; ++r)
          y[t * w.n_rows + r] = dot(w.n_cols, codes + r * w.n_cols, x + t * w.n_cols, w.scales + r * n_groups, w.group);
    }
  };
  if (use_pool(pool, w.n_rows * w.n_cols * n_tok)) pool->parallel_for(w.n_rows, rows);
  else rows(0, w.n_rows);
}

}  // namespace

namespace {

// Elements and bytes of one plain block of a type with an interleaved layout (0 for others), and
// the rows per group: 16 for the lane layouts of Q8_0 / Q4_0, 8 for the k-quants' x8 blocks.
struct PlainBlock {
  int64_t elems = 0;
  size_t bytes = 0;
  int rows = 0;
};
PlainBlock interleaved_block(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0: return {QK, sizeof(BlockQ8_0), kLaneRows};
    case GgmlType::Q4_0: return {QK, sizeof(BlockQ4_0), kLaneRows};
    case GgmlType::Q4_K: return {QK_K, sizeof(BlockQ4_K), kRows};
    case GgmlType::Q6_K: return {QK_K, sizeof(BlockQ6_K), kRows};
    default: return {};
  }
}

}  // namespace

bool interleave_pays(GgmlType type, int64_t n_rows, int64_t n_cols) {
  const PlainBlock pb = interleaved_block(type);
  if (pb.elems == 0) return false;
  if (n_rows < pb.rows || n_cols <= 0 || n_cols % pb.elems != 0) return false;
  if (const char* env = std::getenv("DCQ_REPACK"); env && std::string(env) == "0") return false;
  return active().table.interleave_pays;
}

static size_t interleaved_row_offset(const Matrix& w, int64_t row, int64_t block) {
  const PlainBlock pb = interleaved_block(w.type);
  const size_t bs = pb.bytes;
  const int64_t nb = w.n_cols / pb.elems;
  const int64_t full = w.n_rows / pb.rows * pb.rows;
  if (row >= full) return size_t(full * nb) * bs + size_t((row - full) * nb + block) * bs;
  return (size_t((row / pb.rows) * nb + block) * size_t(pb.rows)) * bs;  // start of the group's block
}

void interleave_rows(GgmlType type, int64_t n_rows, int64_t n_cols, const uint8_t* src, uint8_t* dst) {
  const PlainBlock pb = interleaved_block(type);
  DCQ_ASSERT(pb.elems != 0 && n_cols % pb.elems == 0);
  const int64_t nb = n_cols / pb.elems;
  const int64_t groups = n_rows / pb.rows;
  const size_t bs = pb.bytes;
  const size_t row_stride = size_t(nb) * bs;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = dst + (size_t(g * nb + b) * size_t(pb.rows)) * bs;
      auto block = [&](int r) { return src + size_t(g * pb.rows + r) * row_stride + size_t(b) * bs; };
      if (type == GgmlType::Q4_K) {  // k-quants: scales unpacked, levels regrouped (repack_kquant.cpp)
        const BlockQ4_K* rows[kRows];
        for (int r = 0; r < kRows; ++r) rows[r] = reinterpret_cast<const BlockQ4_K*>(block(r));
        pack_q4_k_x8(rows, *reinterpret_cast<BlockQ4_Kx8*>(out));
      } else if (type == GgmlType::Q6_K) {
        const BlockQ6_K* rows[kRows];
        for (int r = 0; r < kRows; ++r) rows[r] = reinterpret_cast<const BlockQ6_K*>(block(r));
        pack_q6_k_x8(rows, *reinterpret_cast<BlockQ6_Kx8*>(out));
      } else if (type == GgmlType::Q8_0) {  // chunk c (levels 4c..4c+3) of row r at qs[c][r]
        auto* o = reinterpret_cast<BlockQ8_0x16*>(out);
        for (int r = 0; r < kLaneRows; ++r) {
          const auto* i = reinterpret_cast<const BlockQ8_0*>(block(r));
          o->d[r] = i->d;
          for (int c = 0; c < 8; ++c) std::memcpy(o->qs[c][r], i->qs + 4 * c, 4);
        }
      } else {  // Q4_0: packed bytes 4c..4c+3 (elements 4c.. low, 16 + 4c.. high) of row r at qs[c][r]
        auto* o = reinterpret_cast<BlockQ4_0x16*>(out);
        for (int r = 0; r < kLaneRows; ++r) {
          const auto* i = reinterpret_cast<const BlockQ4_0*>(block(r));
          o->d[r] = i->d;
          for (int c = 0; c < 4; ++c) std::memcpy(o->qs[c][r], i->qs + 4 * c, 4);
        }
      }
    }
  }
  const size_t done = size_t(groups * pb.rows) * row_stride;  // the remainder rows stay plain
  std::memcpy(dst + done, src + done, size_t(n_rows) * row_stride - done);
}

void interleave_rows_in_place(GgmlType type, int64_t n_rows, int64_t n_cols, uint8_t* data) {
  const PlainBlock pb = interleaved_block(type);
  DCQ_ASSERT(pb.elems != 0 && n_cols % pb.elems == 0);
  const size_t group_bytes = size_t(pb.rows) * size_t(n_cols / pb.elems) * pb.bytes;
  thread_local std::vector<uint8_t> scratch;  // one group: 16 rows of up to a few KiB
  scratch.resize(group_bytes);
  for (int64_t g = 0; g < n_rows / pb.rows; ++g) {
    uint8_t* at = data + size_t(g) * group_bytes;
    std::memcpy(scratch.data(), at, group_bytes);
    interleave_rows(type, pb.rows, n_cols, scratch.data(), at);
  }
}

namespace {

// y = w x for a matrix whose rows are interleaved in groups (16 rows for Q8_0 / Q4_0, 8 for the
// k-quants): threads split the groups (the last unit is the plain remainder rows), each group meets
// the tokens a few at a time while its blocks stay in L1/L2. Q8_0 / Q4_0: the tokens' lane_act
// (float scales, offset corrections) is computed once here, shared by every group.
void matmul_interleaved(const Matrix& w, const uint8_t* abase, size_t a_stride, int64_t n_tok, float* y,
                        ThreadPool* pool) {
  const Active& act = active();
  const PlainBlock pb = interleaved_block(w.type);
  const GroupDotFn gdot = act.table.group_dot[static_cast<int>(w.type)];
  const LaneGroupFn lane = pb.rows == kLaneRows ? act.table.lane_group[static_cast<int>(w.type)] : nullptr;
  const VecDotFn dot = act.table.vec_dot[static_cast<int>(w.type)];
  DCQ_ASSERT(gdot != nullptr && (pb.rows != kLaneRows || lane != nullptr));
  const int rows = pb.rows;
  constexpr int kMaxTile = std::max(kLaneTokens, 4);  // group_dot (k-quants) takes 1..4 tokens
  const int tile = lane ? kLaneTokens : 4;
  const int64_t groups = w.n_rows / rows;
  const size_t row_stride = *row_bytes(w.type, w.n_cols);
  const size_t group_bytes = size_t(rows) * row_stride;
  const int64_t units = groups + (w.n_rows % rows ? 1 : 0);
  const int64_t nb = w.n_cols / QK;          // Q8_0 / Q4_0 blocks per row (lane layouts only)
  thread_local std::vector<LaneAct> lact;  // the caller's: workers only read it
  if (lane) {
    lact.resize(size_t(nb * n_tok));
    for (int64_t t = 0; t < n_tok; ++t)
      lane_act(w.n_cols, abase + size_t(t) * a_stride, lane_offset(w.type), lact.data() + t * nb);
  }
  const LaneAct* lbase = lact.data();
  auto run = [&](int64_t u0, int64_t u1) {
    for (int64_t g = u0; g < u1; ++g) {
      if (g == groups) {  // remainder rows, plain layout
        const uint8_t* plain = w.data + size_t(groups) * group_bytes;
        for (int64_t r = groups * rows; r < w.n_rows; ++r)
          for (int64_t t = 0; t < n_tok; ++t)
            y[t * w.n_rows + r] = dot(w.n_cols, plain + size_t(r - groups * rows) * row_stride, abase + size_t(t) * a_stride);
        continue;
      }
      const void* gp = w.data + size_t(g) * group_bytes;
      for (int64_t t = 0; t < n_tok; t += tile) {
        const int nt = int(std::min<int64_t>(tile, n_tok - t));
        const void* a[kMaxTile];
        const LaneAct* la[kMaxTile];
        float out[kLaneRows * kMaxTile];
        for (int i = 0; i < nt; ++i) a[i] = abase + size_t(t + i) * a_stride;
        if (lane) {
          for (int i = 0; i < nt; ++i) la[i] = lbase + (t + i) * nb;
          lane(w.n_cols, gp, a, la, nt, out);
        } else {
          gdot(w.n_cols, gp, a, nt, out);
        }
        for (int i = 0; i < nt; ++i)
          std::memcpy(y + (t + i) * w.n_rows + g * rows, out + rows * i, sizeof(float) * size_t(rows));
      }
    }
  };
  if (use_pool(pool, w.n_rows * w.n_cols * n_tok)) pool->parallel_for(units, run);
  else run(0, units);
}

// ------------------------------------------------------------ row-split products (matmul_multi)
// F32 / F16 in lane order (gemm_avx2.cpp / gemm_avx512.cpp) and interleaved Q4_K / Q6_K (groups
// of 8 rows, kquant_*.cpp) go through one scheme: thread i of the pool takes rows
// [split(i), split(i + 1)) of every matrix of the call, split() a multiple of 8 so that no 8-row
// group (nor a 4-row F32 panel block) is cut. Each output is computed exactly as its kernel
// computes it alone (any panel shape, any 1..4-token group call gives the same bits), so the
// split does not change results.

constexpr int64_t kRowAlign = 8;

int64_t row_split(int64_t n_rows, int parts, int i) {
  if (i >= parts) return n_rows;
  return n_rows * i / parts / kRowAlign * kRowAlign;
}

// How one matrix of a row-split product is computed.
struct RowKernel {
  enum Kind { none, panel, kquant } kind = none;
  PanelFn panel_fn = nullptr;
  QuantizeFn act_fn = nullptr;  // panel: activations to floats (F16 rounding; nullptr: x as is)
  GroupDotFn gdot = nullptr;    // kquant: the 8-row group kernel
  VecDotFn dot = nullptr;       // kquant: plain remainder rows
};

RowKernel row_kernel(const KernelTable& t, const Matrix& w) {
  RowKernel k;
  const int i = static_cast<int>(w.type);
  if (w.type == GgmlType::I8) return k;
  if (!w.interleaved && t.panel[i] && t.panel_lanes > 0 && w.n_cols % t.panel_lanes == 0) {
    k.kind = RowKernel::panel;
    k.panel_fn = t.panel[i];
    k.act_fn = t.panel_act[i];
    return k;
  }
  if (w.interleaved && (w.type == GgmlType::Q4_K || w.type == GgmlType::Q6_K) && t.group_dot[i] &&
      w.n_cols % QK_K == 0) {
    k.kind = RowKernel::kquant;
    k.gdot = t.group_dot[i];
    k.dot = t.vec_dot[i];
  }
  return k;
}

// Rows [r0, r1) of w (r0 a multiple of 8) against n_tok activation rows in the kernel's format.
void run_rows(const RowKernel& k, const Matrix& w, const uint8_t* act, size_t a_stride, int64_t n_tok, float* y,
              int64_t r0, int64_t r1) {
  if (r0 >= r1) return;
  const size_t w_stride = *row_bytes(w.type, w.n_cols);
  if (k.kind == RowKernel::panel) {
    // Each 4-row block meets every token while its rows stay in L1 (the tokens, 64 x 768 floats
    // = 192 KiB for a 110M prompt, stay in L2). One token is the same call.
    k.panel_fn(w.n_cols, w.data + size_t(r0) * w_stride, w_stride, int(r1 - r0), reinterpret_cast<const float*>(act),
               a_stride / sizeof(float), n_tok, y + r0, w.n_rows);
    return;
  }
  // Interleaved k-quants: each group of 8 rows meets the tokens 4 at a time; rows past the last
  // whole group are stored plain.
  const int64_t full = w.n_rows / kRows * kRows;
  const size_t group_bytes = size_t(kRows) * w_stride;
  for (int64_t g = r0 / kRows; g < std::min(r1, full) / kRows; ++g) {
    const void* gp = w.data + size_t(g) * group_bytes;
    for (int64_t t = 0; t < n_tok; t += 4) {
      const int nt = int(std::min<int64_t>(4, n_tok - t));
      const void* a[4];
      for (int i = 0; i < nt; ++i) a[i] = act + size_t(t + i) * a_stride;
      float out[4 * kRows];
      k.gdot(w.n_cols, gp, a, nt, out);
      for (int i = 0; i < nt; ++i) std::memcpy(y + (t + i) * w.n_rows + g * kRows, out + kRows * i, sizeof(float) * kRows);
    }
  }
  const uint8_t* plain = w.data + size_t(full / kRows) * group_bytes;
  for (int64_t r = std::max(r0, full); r < r1; ++r)
    for (int64_t t = 0; t < n_tok; ++t)
      y[t * w.n_rows + r] = k.dot(w.n_cols, plain + size_t(r - full) * w_stride, act + size_t(t) * a_stride);
}

}  // namespace

void matmul_multi(std::span<const MatmulJob> jobs, const float* x, int64_t n_tok, ThreadPool* pool,
                  const RowEpilogue& after) {
  if (jobs.empty()) return;
  const Active& act = active();
  const int64_t n_cols = jobs[0].w.n_cols;
  int64_t work = 0;
  bool split = true;  // every matrix takes the row-split path
  for (const MatmulJob& j : jobs) {
    DCQ_ASSERT(j.w.n_cols == n_cols && j.y != nullptr);
    if (after) DCQ_ASSERT(j.w.n_rows == jobs[0].w.n_rows);
    if (j.w.type != GgmlType::I8 && !row_bytes(j.w.type, j.w.n_cols))
      fail_input("matmul: row of " + std::to_string(j.w.n_cols) + " elements is not a whole number of " +
                 std::string(type_name(j.w.type)) + " blocks");
    split = split && row_kernel(act.table, j.w).kind != RowKernel::none;
    work += j.w.n_rows * j.w.n_cols * n_tok;
  }
  const int parts = use_pool(pool, work) ? pool->size() : 1;
  if (!split) {  // other formats: one matmul each, then the epilogue split over rows
    for (const MatmulJob& j : jobs) matmul(j.w, x, n_tok, j.y, pool);
    if (!after) return;
    const int64_t rows = jobs[0].w.n_rows;
    if (parts == 1 || n_tok < 8) return after(0, rows);  // a few tokens: cheaper than a hand-off
    pool->parallel_for(parts, [&](int64_t i, int64_t) { after(row_split(rows, parts, int(i)), row_split(rows, parts, int(i) + 1)); });
    return;
  }

  // Activations, once per distinct format (the matrices of one call usually share one): float
  // (F32: x itself), F16-rounded floats, or the activation type of the k-quants (Q8_K).
  struct Act {
    int key;  // weight type for panel_act conversions, 1000 + activation type for quantized
    QuantizeFn fn;
    size_t stride;
    const uint8_t* data;
  };
  thread_local std::vector<uint8_t> abuf[3];  // the caller's: workers see it through acts[].data
  Act acts[3];
  int n_acts = 0;
  std::vector<int> act_of(jobs.size());
  std::vector<RowKernel> kern(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Matrix& w = jobs[i].w;
    kern[i] = row_kernel(act.table, w);
    int key;
    QuantizeFn fn;
    size_t stride;
    if (kern[i].kind == RowKernel::panel) {
      key = kern[i].act_fn ? static_cast<int>(w.type) : -1;
      fn = kern[i].act_fn;
      stride = size_t(n_cols) * sizeof(float);
    } else {
      const GgmlType at = activation_type(w.type);
      key = 1000 + static_cast<int>(at);
      fn = act.table.quantize[static_cast<int>(at)];
      stride = *row_bytes(at, n_cols);
    }
    int a = 0;
    while (a < n_acts && acts[a].key != key) ++a;
    if (a == n_acts) {
      DCQ_ASSERT(n_acts < 3);
      acts[n_acts++] = {key, fn, stride, reinterpret_cast<const uint8_t*>(x)};
    }
    act_of[i] = a;
  }
  std::vector<int> to_convert;
  for (int a = 0; a < n_acts; ++a) {
    if (!acts[a].fn) continue;
    abuf[a].resize(acts[a].stride * size_t(n_tok));
    acts[a].data = abuf[a].data();
    to_convert.push_back(a);
  }
  if (!to_convert.empty()) {
    // Converting is per token, so a batch splits it over the pool (it was ~5 % of a serial
    // 2-thread Q4_K prompt, repeated for each of Q, K and V).
    auto convert = [&](int64_t t0, int64_t t1) {
      for (int a : to_convert)
        for (int64_t t = t0; t < t1; ++t)
          acts[a].fn(x + t * n_cols, const_cast<uint8_t*>(acts[a].data) + size_t(t) * acts[a].stride, n_cols);
    };
    if (parts > 1 && n_tok >= 4) pool->parallel_for(n_tok, convert);
    else convert(0, n_tok);
  }

  auto share = [&](int64_t i, int64_t) {
    for (size_t j = 0; j < jobs.size(); ++j) {
      const Matrix& w = jobs[j].w;
      run_rows(kern[j], w, acts[act_of[j]].data, acts[act_of[j]].stride, n_tok, jobs[j].y,
               row_split(w.n_rows, parts, int(i)), row_split(w.n_rows, parts, int(i) + 1));
    }
    if (after) after(row_split(jobs[0].w.n_rows, parts, int(i)), row_split(jobs[0].w.n_rows, parts, int(i) + 1));
  };
  if (parts > 1) pool->parallel_for(parts, share);
  else share(0, 1);
}

void matmul(const Matrix& w, const float* x, int64_t n_tok, float* y, ThreadPool* pool) {
  if (w.type == GgmlType::I8) return matmul_i8(w, x, n_tok, y, pool);
  const GgmlType at = activation_type(w.type);
  const auto w_stride = row_bytes(w.type, w.n_cols);
  const auto a_stride = row_bytes(at, w.n_cols);
  if (!w_stride || !a_stride)
    fail_input("matmul: row of " + std::to_string(w.n_cols) + " elements is not a whole number of " +
               std::string(type_name(w.type)) + " blocks");
  const Active& act = active();
  if (row_kernel(act.table, w).kind != RowKernel::none) {  // F32 / F16 panels, interleaved Q4_K / Q6_K
    const MatmulJob job{w, y};
    return matmul_multi({&job, 1}, x, n_tok, pool);
  }
  // Activations converted once per token, shared read-only by all threads.
  thread_local std::vector<uint8_t> abuf;
  abuf.resize(*a_stride * size_t(n_tok));
  const auto qf = act.table.quantize[static_cast<int>(at)];
  for (int64_t t = 0; t < n_tok; ++t) qf(x + t * w.n_cols, abuf.data() + t * *a_stride, w.n_cols);
  if (w.interleaved) {
    if (interleaved_block(w.type).elems == 0 || !act.table.group_dot[static_cast<int>(w.type)])
      fail_input("matmul: interleaved rows of type " + std::string(type_name(w.type)));
    return matmul_interleaved(w, abuf.data(), *a_stride, n_tok, y, pool);
  }
  const VecDotFn dot = act.table.vec_dot[static_cast<int>(w.type)];
  const VecDot4Fn dot4 = act.table.vec_dot4[static_cast<int>(w.type)];
  const Gemm4x4Fn gemm = act.table.gemm4x4[static_cast<int>(w.type)];
  const Row4Fn row4 = act.table.row4[static_cast<int>(w.type)];
  const uint8_t* abase = abuf.data();
  auto wrow = [&](int64_t r) { return static_cast<const void*>(w.data + size_t(r) * *w_stride); };
  auto arow = [&](int64_t t) { return static_cast<const void*>(abase + size_t(t) * *a_stride); };
  auto rows = [&](int64_t r0, int64_t r1) {
    int64_t r = r0;
    if (dot4 && n_tok == 1) {
      // One token: four rows at a time.
      const void* a[4] = {arow(0), arow(0), arow(0), arow(0)};
      for (; r + 4 <= r1; r += 4) {
        const void* wr[4] = {wrow(r), wrow(r + 1), wrow(r + 2), wrow(r + 3)};
        dot4(w.n_cols, wr, a, y + r);
      }
    }
    // A batch: tiles of 16 rows x 4 tokens, so both stay in L1 while they are combined (rows
    // outer, tokens inner would stream every token's activations once per row).
    constexpr int64_t kRowTile = 16;
    for (int64_t rt = r; rt < r1; rt += kRowTile) {
      const int64_t re = std::min(rt + kRowTile, r1);
      int64_t t = 0;
      if (gemm) {  // 4 rows x 4 tokens per call, remainder rows one at a time
        for (; t + 4 <= n_tok; t += 4) {
          const void* a[4] = {arow(t), arow(t + 1), arow(t + 2), arow(t + 3)};
          int64_t rr = rt;
          for (; rr + 4 <= re; rr += 4) {
            const void* wr[4] = {wrow(rr), wrow(rr + 1), wrow(rr + 2), wrow(rr + 3)};
            float out[16];
            gemm(w.n_cols, wr, a, out);
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j) y[(t + i) * w.n_rows + rr + j] = out[4 * i + j];
          }
          for (; rr < re; ++rr)
            for (int i = 0; i < 4; ++i) y[(t + i) * w.n_rows + rr] = dot(w.n_cols, wrow(rr), a[i]);
        }
      }
      if (row4) {  // one row x 4 tokens: the row decoded once per 4 tokens
        for (; t + 4 <= n_tok; t += 4) {
          const void* a[4] = {arow(t), arow(t + 1), arow(t + 2), arow(t + 3)};
          for (int64_t rr = rt; rr < re; ++rr) {
            float out[4];
            row4(w.n_cols, wrow(rr), a, out);
            for (int i = 0; i < 4; ++i) y[(t + i) * w.n_rows + rr] = out[i];
          }
        }
      }
      if (dot4) {
        for (; t + 4 <= n_tok; t += 4) {
          const void* a[4] = {arow(t), arow(t + 1), arow(t + 2), arow(t + 3)};
          for (int64_t rr = rt; rr < re; ++rr) {
            const void* wr[4] = {wrow(rr), wrow(rr), wrow(rr), wrow(rr)};
            float out[4];
            dot4(w.n_cols, wr, a, out);
            for (int i = 0; i < 4; ++i) y[(t + i) * w.n_rows + rr] = out[i];
          }
        }
      }
      for (; t < n_tok; ++t)
        for (int64_t rr = rt; rr < re; ++rr) y[t * w.n_rows + rr] = dot(w.n_cols, wrow(rr), arow(t));
    }
  };
  if (use_pool(pool, w.n_rows * w.n_cols * n_tok)) pool->parallel_for(w.n_rows, rows);
  else rows(0, w.n_rows);
}

void dequantize_row(const Matrix& w, int64_t row, float* out) {
  if (w.type == GgmlType::I8) {
    check_i8(w);
    DCQ_ASSERT(row >= 0 && row < w.n_rows);
    const auto* c = reinterpret_cast<const int8_t*>(w.data) + row * w.n_cols;
    const float* s = w.scales + row * (w.n_cols / w.group);
    for (int64_t k = 0; k < w.n_cols; ++k) out[k] = s[k / w.group] * float(c[k]);
    return;
  }
  const auto stride = row_bytes(w.type, w.n_cols);
  DCQ_ASSERT(stride && row >= 0 && row < w.n_rows);
  if (w.interleaved) {  // gather the row's blocks back into ggml's layout
    std::vector<uint8_t> plain(*stride);
    const bool q8 = w.type == GgmlType::Q8_0;
    const PlainBlock pb = interleaved_block(w.type);
    DCQ_ASSERT(pb.elems != 0);
    const size_t bs = pb.bytes;
    const bool tail = row >= w.n_rows / pb.rows * pb.rows;
    const int r = int(row % pb.rows);
    for (int64_t b = 0; b < w.n_cols / pb.elems; ++b) {
      const uint8_t* src = w.data + interleaved_row_offset(w, row, b);
      uint8_t* dst = plain.data() + size_t(b) * bs;
      if (tail) {
        std::memcpy(dst, src, bs);
      } else if (w.type == GgmlType::Q4_K) {
        unpack_q4_k_x8(*reinterpret_cast<const BlockQ4_Kx8*>(src), r, *reinterpret_cast<BlockQ4_K*>(dst));
      } else if (w.type == GgmlType::Q6_K) {
        unpack_q6_k_x8(*reinterpret_cast<const BlockQ6_Kx8*>(src), r, *reinterpret_cast<BlockQ6_K*>(dst));
      } else if (q8) {
        const auto* i = reinterpret_cast<const BlockQ8_0x16*>(src);
        std::memcpy(dst, &i->d[r], 2);
        for (int c = 0; c < 8; ++c) std::memcpy(dst + 2 + 4 * c, i->qs[c][r], 4);
      } else {
        const auto* i = reinterpret_cast<const BlockQ4_0x16*>(src);
        std::memcpy(dst, &i->d[r], 2);
        for (int c = 0; c < 4; ++c) std::memcpy(dst + 2 + 4 * c, i->qs[c][r], 4);
      }
    }
    dequantize_row_scalar(w.type, plain.data(), out, w.n_cols);
    return;
  }
  dequantize_row_scalar(w.type, w.data + size_t(row) * *stride, out, w.n_cols);
}

// ------------------------------------------------------------------ thread pool

// DCQ_POOL_STATS=1 (diagnostics): per call, each thread's CPU time inside the job
// (CLOCK_THREAD_CPUTIME_ID, so time-sharing with other processes does not count) and the caller's
// wall time from publishing the job to the last thread's end. "lost" = sum over calls of
// (slowest thread - mean thread): what an even split would save; "wall - busy": the hand-off.
struct ThreadPool::Stats {
  std::vector<double> busy;   // per thread, this call (seconds)
  std::vector<double> total;  // per thread, all calls
  double lost = 0, wall = 0, max_busy = 0;
  int64_t calls = 0;
  static double thread_cpu() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
};

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (const char* env = std::getenv("DCQ_POOL_STATS"); env && std::string(env) == "1") {
    stats_ = new Stats;
    stats_->busy.assign(size_t(n_threads_), 0.0);
    stats_->total.assign(size_t(n_threads_), 0.0);
  }
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_.store(true);
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
  if (stats_) {
    std::fprintf(stderr, "pool stats: %lld calls, busy ms per thread:", static_cast<long long>(stats_->calls));
    for (double b : stats_->total) std::fprintf(stderr, " %.2f", b * 1e3);
    std::fprintf(stderr, ", lost to imbalance %.2f ms, slowest thread summed %.2f ms, caller wall %.2f ms\n",
                 stats_->lost * 1e3, stats_->max_busy * 1e3, stats_->wall * 1e3);
    delete stats_;
  }
}

static void range_of(int64_t n, int parts, int index, int64_t& b, int64_t& e) {
  b = n * index / parts;
  e = n * (index + 1) / parts;
}

// About 0.1-0.3 ms of spinning (pause is ~40-140 cycles): longer than the gaps between the
// matmuls of one token, short enough not to burn a core between tokens.
static constexpr int kSpins = 4000;

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      if (spin < kSpins) {
        __builtin_ia32_pause();
      } else {
        std::unique_lock lk(mu_);
        cv_work_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
      }
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = g;
    int64_t b, e;
    range_of(job_n_, n_threads_, index, b, e);
    const double c0 = stats_ ? Stats::thread_cpu() : 0;
    if (b < e) (*job_)(b, e);
    if (stats_) stats_->busy[size_t(index)] = Stats::thread_cpu() - c0;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lk(mu_);  // pairs with the predicate check in parallel_for: no lost wake-up
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n_threads_ == 1) {
    const double c0 = stats_ ? Stats::thread_cpu() : 0;
    fn(0, n);
    if (stats_) {  // the same totals, so 1- and 2-thread runs compare
      const double c = Stats::thread_cpu() - c0;
      stats_->total[0] += c;
      stats_->max_busy += c;
      ++stats_->calls;
    }
    return;
  }
  job_ = &fn;
  job_n_ = n;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard lk(mu_);
    generation_.fetch_add(1, std::memory_order_release);  // publishes job_ and job_n_
  }
  cv_work_.notify_all();
  int64_t b, e;
  range_of(n, n_threads_, 0, b, e);
  const double w0 = stats_ ? Stats::now() : 0, c0 = stats_ ? Stats::thread_cpu() : 0;
  if (b < e) fn(b, e);
  if (stats_) stats_->busy[0] = Stats::thread_cpu() - c0;
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpins) {
      __builtin_ia32_pause();
    } else {
      std::unique_lock lk(mu_);
      cv_done_.wait(lk, [&] { return pending_.load() == 0; });
    }
  }
  if (stats_) {  // the workers' busy[] writes happen before their pending_ decrement (acq_rel)
    double sum = 0, mx = 0;
    for (size_t i = 0; i < stats_->busy.size(); ++i) {
      sum += stats_->busy[i];
      mx = std::max(mx, stats_->busy[i]);
      stats_->total[i] += stats_->busy[i];
    }
    stats_->lost += mx - sum / double(n_threads_);
    stats_->max_busy += mx;
    stats_->wall += Stats::now() - w0;
    ++stats_->calls;
  }
}

}  // namespace dcq::kernels
