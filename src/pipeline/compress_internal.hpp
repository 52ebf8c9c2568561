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

namespace dcq {

class DcqReader;

// n independent jobs on up to `threads` std::threads; the first exception is rethrown on the
// caller's thread.

template <class F>
void parallel_for(size_t n, size_t threads, F&& f) {
  if (threads <= 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        f(i);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  const size_t k = std::min(threads, n);
  for (size_t t = 1; t < k; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

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
// Error(integrity) naming the tensor and chunk.
RebuildStats rebuild_source(const DcqReader& reader, int threads,
                            const std::function<void(std::span<const uint8_t>)>& sink);

}  // namespace dcq
