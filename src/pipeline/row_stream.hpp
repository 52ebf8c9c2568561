// Quantizes a tensor row batch by row batch into a GGUF writer, rows spread over threads.
// Memory: one batch of output rows plus one float row per thread, whatever the tensor size;
// output identical for any thread count (each row is produced by exactly one thread).
#pragma once

#include <cstdint>
#include <functional>

#include "dcq/ggml_type.hpp"
#include "dcq/gguf.hpp"

namespace dcq::pipeline {

// fill(row, out) writes the `width` floats of row `row` into out.
using RowFill = std::function<void(int64_t row, float* out)>;

void stream_quantized_rows(GgufWriter& writer, GgmlType type, int64_t width, int64_t rows,
                           int threads, const RowFill& fill);

}  // namespace dcq::pipeline
