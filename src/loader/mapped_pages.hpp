// Giving mapped pages of a .dcq back to the system (src/loader internal). Reading any byte of a
// chunk through the file mapping maps a whole page-cache folio into the process (and its
// fault-around neighbours), which counts in the resident set although the bytes are not needed
// again; the loader and the planner drop them as soon as they are done with a chunk.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>
#include <utility>

#include <sys/mman.h>

#include "dcq/container.hpp"

namespace dcq::loader_detail {

// The largest page-cache folio a fault maps on current kernels, and a PMD page-table entry's span.
inline constexpr uint64_t kFolioBytes = 2u << 20;

// The range drop_pages gives back for bytes [p, p + n) of `map`: widened to 2 MiB folios.
inline std::pair<uintptr_t, uintptr_t> folio_range(std::span<const uint8_t> map, const uint8_t* p, uint64_t n) {
  // Folios are aligned in the file, not in our address space: `map` starts at file offset 0, so
  // the boundaries are map.data() + k * 2 MiB (rounding the addresses themselves missed parts of
  // folios, and the first pass of a 20 % run kept ~40 MiB of them mapped).
  constexpr uintptr_t kFolio = kFolioBytes;
  const uintptr_t lo = uintptr_t(map.data()), hi = lo + map.size();  // lo is page aligned
  const uintptr_t off = uintptr_t(p) - lo;
  return {lo + (off & ~(kFolio - 1)), std::min(hi, lo + ((off + n + kFolio - 1) & ~(kFolio - 1)))};
}

// Drops the pages of [p, p + n) of the read-only file mapping `map` from the process (they stay
// in the page cache; a later access faults them in again, same bytes). Used for stored bytes
// already decoded and for zero-copy tensors leaving the cache, so that the mapping does not grow
// the resident set behind the budget's back. The range is widened to 2 MiB boundaries: a read
// fault maps a whole page-cache folio (up to 2 MiB on current kernels; measured: runs of up to
// 110 pages at 512 KiB boundaries, 3.7 MiB of an 18 MB file stayed mapped with exact ranges) and
// the fault-around window, i.e. neighbours' pages too. Neighbours dropped with it are simply
// faulted in again when used, and a zero-copy entry's bytes are counted whether mapped or not.
// `calls`, when given, counts the madvise calls (each one a TLB shootdown on the other threads' cores).
inline void drop_pages(std::span<const uint8_t> map, const uint8_t* p, uint64_t n,
                       std::atomic<uint64_t>* calls = nullptr) {
  const auto [a, b] = folio_range(map, p, n);
  if (b <= a) return;
  (void)::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
  if (calls) calls->fetch_add(1, std::memory_order_relaxed);
}

// The whole mapped file of an open container.
inline std::span<const uint8_t> whole_map(const DcqReader& r) {
  DcqChunk all;
  all.stored_size = r.file_size();
  return r.stored(all);
}

// Drops the stored bytes of chunk `c` (after its header was parsed or it was decoded).
inline void drop_chunk_pages(const DcqReader& r, size_t c) {
  const auto st = r.stored(r.index().chunks[c]);
  drop_pages(whole_map(r), st.data(), st.size());
}

}  // namespace dcq::loader_detail
