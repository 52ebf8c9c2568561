// Shared by the compress/decompress/verify/analyze pipelines (not public API).
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <span>
#include <mutex>
#include <thread>
#include <time.h>
#include <vector>

#include "dcq/parallel.hpp"

namespace dcq {

class DcqReader;

// CPU time of the calling thread, in seconds: decode speeds are per core and must not count
// time the thread spent preempted on a shared machine.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct RebuildStats {
  uint64_t decoded_bytes = 0;   // tensor bytes decoded (duplicates count once per appearance)
  double decode_cpu_seconds = 0;  // summed over threads: per-core speed = bytes / this
  double wall_seconds = 0;
};
// Streams the source file in order to `sink`, decoding chunks in parallel a window at a time,
// checking every checksum, and finally the whole source's size and checksum. Throws
// Error(integrity) naming the tensor and chunk. For a folder container the stream is the files
// in file-table order: `on_file(i)` is called before file i's bytes and on_file(n_files) after
// the last; each file's size and checksum are checked when it ends.
RebuildStats rebuild_source(const DcqReader& reader, int threads,
                            const std::function<void(std::span<const uint8_t>)>& sink,
                            const std::function<void(size_t)>& on_file = {});

}  // namespace dcq
