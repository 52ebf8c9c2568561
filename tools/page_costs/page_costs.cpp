// page_costs FILE [ROUNDS]: what streamed 2 MiB views cost in page-table work on this machine
// (docs/loader.md, "Measurements, session 8"). FILE is mapped read-only at a 2 MiB aligned address
// under MADV_HUGEPAGE, as the loader maps a .dcq (its page cache should hold 2 MiB folios: a file
// written in 2 MiB pieces, or one the loader has probed). Per round every block is mapped again
// and then given back with one madvise; printed: microseconds per 2 MiB block to map it by one
// read (a PMD fault) and by MADV_POPULATE_READ, and per MADV_DONTNEED call over the whole file,
// each with one thread and with a second thread spinning (the other compute thread, which a
// TLB shootdown interrupts).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {
constexpr size_t kBlock = 2u << 20;
#ifndef MADV_POPULATE_READ
constexpr int MADV_POPULATE_READ = 22;
#endif
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: page_costs FILE [ROUNDS]\n");
    return 2;
  }
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 200;
  const int fd = ::open(argv[1], O_RDONLY);
  if (fd < 0 || rounds < 2) {
    std::fprintf(stderr, "page_costs: %s: cannot open (or ROUNDS < 2)\n", argv[1]);
    return 3;
  }
  const size_t size = size_t(::lseek(fd, 0, SEEK_END)) / kBlock * kBlock;  // whole blocks only
  if (size == 0) {
    std::fprintf(stderr, "page_costs: %s: smaller than 2 MiB\n", argv[1]);
    return 3;
  }
  auto* r = static_cast<uint8_t*>(::mmap(nullptr, size + kBlock, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* at = reinterpret_cast<uint8_t*>((uintptr_t(r) + kBlock - 1) & ~uintptr_t(kBlock - 1));
  if (r == MAP_FAILED || ::mmap(at, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
    std::fprintf(stderr, "page_costs: %s: mmap failed\n", argv[1]);
    return 3;
  }
  (void)::madvise(at, size, MADV_HUGEPAGE);
  const size_t blocks = size / kBlock;
  for (int spinners = 0; spinners <= 1; ++spinners) {
    std::atomic<bool> stop{false};
    std::thread spin;
    if (spinners) spin = std::thread([&] {
        volatile uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) n = n + 1;
      });
    for (int populate = 0; populate <= 1; ++populate) {
      double map_s = 0, drop_s = 0;
      for (int k = 0; k < rounds; ++k) {
        const double t0 = now();
        volatile uint8_t sink = 0;
        for (size_t b = 0; b < blocks; ++b) {
          if (populate) (void)::madvise(at + b * kBlock, kBlock, MADV_POPULATE_READ);
          else sink = sink + at[b * kBlock];
        }
        const double t1 = now();
        (void)::madvise(at, size, MADV_DONTNEED);
        const double t2 = now();
        if (k > 0) map_s += t1 - t0, drop_s += t2 - t1;  // round 0 may read the file in
      }
      std::printf("%d thread%s, map by %-18s %6.2f us per 2 MiB block; MADV_DONTNEED of %zu blocks %6.1f us per call\n",
                  1 + spinners, spinners ? "s" : " ", populate ? "MADV_POPULATE_READ" : "one read",
                  map_s / (rounds - 1) / double(blocks) * 1e6, blocks, drop_s / (rounds - 1) * 1e6);
    }
    stop = true;
    if (spin.joinable()) spin.join();
  }
  return 0;
}
