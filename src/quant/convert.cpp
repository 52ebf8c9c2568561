// Whole-tensor type conversion: dequantize a bounded chunk of rows to floats, quantize it to the
// target type, on several threads. Used when writing a quantized model from any source type.
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <system_error>
#include <thread>

#include "dcq/error.hpp"
#include "dcq/quant.hpp"
#include "dcq/quant_plan.hpp"

namespace dcq {

namespace {

// Rows x row width with overflow checks: shapes come from files.
void tensor_shape(const Tensor& t, int64_t& width, int64_t& rows) {
  if (t.ne.empty()) fail_input("tensor " + t.name + " has no dimensions");
  width = t.ne[0];
  rows = 1;
  for (size_t i = 0; i < t.ne.size(); ++i) {
    if (t.ne[i] < 0) fail_input("tensor " + t.name + " has a negative dimension");
    if (i > 0) {
      if (t.ne[i] != 0 && rows > std::numeric_limits<int64_t>::max() / t.ne[i])
        fail_input("tensor " + t.name + " is too large");
      rows *= t.ne[i];
    }
  }
  if (width != 0 && rows > std::numeric_limits<int64_t>::max() / width) fail_input("tensor " + t.name + " is too large");
}

}  // namespace

std::vector<uint8_t> convert_tensor(const Tensor& t, GgmlType type, int n_threads) {
  int64_t width = 0, rows = 0;
  tensor_shape(t, width, rows);
  const auto src_row = row_bytes(t.type, width);
  if (!src_row) fail_input("tensor " + t.name + ": row width " + std::to_string(width) + " is not a whole number of " + std::string(type_name(t.type)) + " blocks");
  if (*src_row * uint64_t(rows) != t.data.size())
    fail_input("tensor " + t.name + ": " + std::to_string(t.data.size()) + " data bytes, expected " + std::to_string(*src_row * uint64_t(rows)));
  const auto dst_row = row_bytes(type, width);
  if (!dst_row)
    fail_input("tensor " + t.name + ": cannot convert to " + std::string(type_name(type)) + ": row width " + std::to_string(width) +
               " is not a multiple of " + std::to_string(traits(type).block_size));
  if (t.type == type) return {t.data.begin(), t.data.end()};
  if (!can_dequantize(t.type)) fail_input("tensor " + t.name + ": no dequantizer for " + std::string(type_name(t.type)));
  if (!can_quantize(type)) fail_input("tensor " + t.name + ": no quantizer for " + std::string(type_name(type)));

  std::vector<uint8_t> out(*dst_row * size_t(rows));
  if (rows == 0 || width == 0) return out;
  // Each thread converts a contiguous range of rows, at most ~64K floats at a time, so memory
  // stays bounded whatever the tensor size.
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t chunk_rows = std::max<int64_t>(1, (int64_t(1) << 16) / width);
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(n_threads, (rows + chunk_rows - 1) / chunk_rows));
  // Buffers are allocated here, not in the threads, so an allocation failure is an exception
  // on the calling thread rather than std::terminate.
  std::vector<std::vector<float>> bufs(size_t(n), std::vector<float>(size_t(std::min(chunk_rows, rows) * width)));
  auto work = [&](int64_t first, int64_t count, std::vector<float>& buf) {
    for (int64_t r = first; r < first + count; r += chunk_rows) {
      const int64_t nr = std::min(chunk_rows, first + count - r);
      dequantize(t.type, t.data.data() + uint64_t(r) * *src_row, buf.data(), nr * width);
      quantize(type, buf.data(), out.data() + uint64_t(r) * *dst_row, nr * width);
    }
  };
  std::vector<std::thread> workers;
  const int64_t per = rows / n, extra = rows % n;
  int64_t first = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t count = per + (i < extra ? 1 : 0);
    if (i == n - 1) {
      work(first, count, bufs[size_t(i)]);
    } else {
      try {
        workers.emplace_back(work, first, count, std::ref(bufs[size_t(i)]));
      } catch (const std::system_error&) {
        work(first, count, bufs[size_t(i)]);  // no thread available: do it here
      }
    }
    first += count;
  }
  for (auto& w : workers) w.join();
  return out;
}

}  // namespace dcq
