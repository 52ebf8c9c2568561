#include "pipeline/row_stream.hpp"

#include <algorithm>
#include <thread>
#include <vector>

#include "dcq/error.hpp"
#include "dcq/quant.hpp"

namespace dcq::pipeline {

void stream_quantized_rows(GgufWriter& writer, GgmlType type, int64_t width, int64_t rows,
                           int threads, const RowFill& fill) {
  const auto rb = row_bytes(type, width);
  DCQ_ASSERT(rb.has_value());
  threads = std::max(1, threads);
  // About 8 MiB of floats per batch keeps threads busy without holding a whole tensor.
  const int64_t batch = std::max<int64_t>(threads, (8 << 20) / std::max<int64_t>(1, width * 4));
  std::vector<uint8_t> out;
  for (int64_t r0 = 0; r0 < rows; r0 += batch) {
    const int64_t nr = std::min(batch, rows - r0);
    out.assign(static_cast<size_t>(nr) * *rb, 0);
    std::exception_ptr error;
    auto work = [&](int tid) {
      try {
        std::vector<float> row(static_cast<size_t>(width));
        for (int64_t r = tid; r < nr; r += threads) {
          fill(r0 + r, row.data());
          quantize(type, row.data(), out.data() + static_cast<size_t>(r) * *rb, width);
        }
      } catch (...) {
        error = std::current_exception();  // rethrown on the calling thread below
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads && t < nr; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    if (error) std::rethrow_exception(error);
    writer.write(out);
  }
}

}  // namespace dcq::pipeline
