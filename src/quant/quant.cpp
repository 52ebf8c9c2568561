// Dispatch from GgmlType to the per-family block code (legacy.cpp, kquants.cpp, iquants.cpp),
// the plain float formats, and the multi-threaded whole-tensor entry points.
#include "dcq/quant.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"
#include "quant/quant_internal.hpp"

namespace dcq {

namespace {

using QuantizeFn = void (*)(const float*, void*, int64_t nblocks);
using DequantizeFn = void (*)(const void*, float*, int64_t nblocks);

struct Codec {
  GgmlType type;
  QuantizeFn quantize;
  DequantizeFn dequantize;
};

namespace qd = quant_detail;

// F32/F16/BF16 are handled as "blocks" of one element so one code path serves all types.
void quantize_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
void dequantize_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
void quantize_f16(const float* x, void* y, int64_t n) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = float_to_fp16(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}
void dequantize_f16(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    y[i] = fp16_to_float(h);
  }
}
void quantize_bf16(const float* x, void* y, int64_t n) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = float_to_bf16(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    y[i] = bf16_to_float(h);
  }
}

constexpr Codec kCodecs[] = {
    {GgmlType::F32, quantize_f32, dequantize_f32},
    {GgmlType::F16, quantize_f16, dequantize_f16},
    {GgmlType::BF16, quantize_bf16, dequantize_bf16},
    {GgmlType::Q4_0, qd::quantize_q4_0, qd::dequantize_q4_0},
    {GgmlType::Q4_1, qd::quantize_q4_1, qd::dequantize_q4_1},
    {GgmlType::Q5_0, qd::quantize_q5_0, qd::dequantize_q5_0},
    {GgmlType::Q5_1, qd::quantize_q5_1, qd::dequantize_q5_1},
    {GgmlType::Q8_0, qd::quantize_q8_0, qd::dequantize_q8_0},
    {GgmlType::Q8_1, qd::quantize_q8_1, qd::dequantize_q8_1},
    {GgmlType::Q2_K, qd::quantize_q2_K, qd::dequantize_q2_K},
    {GgmlType::Q3_K, qd::quantize_q3_K, qd::dequantize_q3_K},
    {GgmlType::Q4_K, qd::quantize_q4_K, qd::dequantize_q4_K},
    {GgmlType::Q5_K, qd::quantize_q5_K, qd::dequantize_q5_K},
    {GgmlType::Q6_K, qd::quantize_q6_K, qd::dequantize_q6_K},
    {GgmlType::Q8_K, qd::quantize_q8_K, qd::dequantize_q8_K},
    {GgmlType::IQ4_NL, qd::quantize_iq4_nl, qd::dequantize_iq4_nl},
    {GgmlType::IQ4_XS, qd::quantize_iq4_xs, qd::dequantize_iq4_xs},
};

const Codec* find_codec(GgmlType t) {
  for (const auto& c : kCodecs)
    if (c.type == t) return &c;
  return nullptr;
}

// Number of whole blocks in n elements, or a bad_input error naming the mismatch.
int64_t whole_blocks(GgmlType type, int64_t n, const char* what) {
  const int64_t bs = traits(type).block_size;
  if (n < 0 || n % bs != 0)
    fail_input(std::string("cannot ") + what + " " + std::to_string(n) + " values as " +
               std::string(type_name(type)) + ": not a multiple of its block size " + std::to_string(bs));
  return n / bs;
}

// Runs fn(first_row, n_rows) over [0, n_rows) in contiguous slices, one per thread. Small
// tensors stay on the calling thread: starting threads costs more than the work.
template <typename Fn>
void for_row_slices(int64_t n_rows, int64_t n_per_row, int n_threads, Fn fn) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  constexpr int64_t kMinElementsPerThread = 1 << 16;
  const int64_t by_size = std::max<int64_t>(1, n_rows * n_per_row / kMinElementsPerThread);
  const int64_t n = std::min<int64_t>({int64_t(n_threads), n_rows, by_size});
  if (n <= 1) {
    fn(int64_t(0), n_rows);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(size_t(n - 1));
  const int64_t per = n_rows / n, extra = n_rows % n;
  int64_t first = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t count = per + (t < extra ? 1 : 0);
    if (t == n - 1) {
      fn(first, count);  // the calling thread takes the last slice
    } else {
      try {
        workers.emplace_back(fn, first, count);
      } catch (const std::system_error&) {
        fn(first, count);  // no thread available: do this slice here
      }
    }
    first += count;
  }
  for (auto& w : workers) w.join();
}

}  // namespace

bool can_dequantize(GgmlType t) { return find_codec(t) != nullptr; }
bool can_quantize(GgmlType t) { return find_codec(t) != nullptr; }

void dequantize(GgmlType type, const void* src, float* dst, int64_t n) {
  const Codec* c = find_codec(type);
  if (!c) fail_input("no dequantizer for type " + std::string(type_name(type)));
  c->dequantize(src, dst, whole_blocks(type, n, "dequantize"));
}

void quantize(GgmlType type, const float* src, void* dst, int64_t n) {
  const Codec* c = find_codec(type);
  if (!c) fail_input("no quantizer for type " + std::string(type_name(type)));
  c->quantize(src, dst, whole_blocks(type, n, "quantize"));
}

void quantize_tensor(GgmlType type, const float* src, void* dst, int64_t n_per_row, int64_t n_rows,
                     int n_threads) {
  const Codec* c = find_codec(type);
  if (!c) fail_input("no quantizer for type " + std::string(type_name(type)));
  if (n_rows < 0) fail_input("cannot quantize a tensor with " + std::to_string(n_rows) + " rows");
  const int64_t blocks_per_row = whole_blocks(type, n_per_row, "quantize rows of");
  const uint64_t row_size = uint64_t(blocks_per_row) * traits(type).type_size;
  for_row_slices(n_rows, n_per_row, n_threads, [&](int64_t first, int64_t count) {
    c->quantize(src + first * n_per_row, static_cast<uint8_t*>(dst) + uint64_t(first) * row_size,
                blocks_per_row * count);
  });
}

void dequantize_tensor(GgmlType type, const void* src, float* dst, int64_t n_per_row, int64_t n_rows,
                       int n_threads) {
  const Codec* c = find_codec(type);
  if (!c) fail_input("no dequantizer for type " + std::string(type_name(type)));
  if (n_rows < 0) fail_input("cannot dequantize a tensor with " + std::to_string(n_rows) + " rows");
  const int64_t blocks_per_row = whole_blocks(type, n_per_row, "dequantize rows of");
  const uint64_t row_size = uint64_t(blocks_per_row) * traits(type).type_size;
  for_row_slices(n_rows, n_per_row, n_threads, [&](int64_t first, int64_t count) {
    c->dequantize(static_cast<const uint8_t*>(src) + uint64_t(first) * row_size, dst + first * n_per_row,
                  blocks_per_row * count);
  });
}

}  // namespace dcq
