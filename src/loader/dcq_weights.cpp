// Lazy weights from a .dcq container (policy in docs/loader.md).
//
// The engine reads the weights cyclically: token_embd rows, then layer 0..N-1, then the output,
// for every token. Under a budget smaller than the model, LRU would evict exactly the tensor that
// is needed next and miss on everything. Instead the first tensors (in container order) that fit
// in `budget - working set` are pinned (decoded once, never evicted), and the others stream
// through the remaining window, where the most recently released entry is evicted first (for a
// cyclic pattern the entry released longest ago is the one needed soonest).
#include <algorithm>
#include <chrono>
#include <functional>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <exception>
#include <fstream>
#include <future>
#include <mutex>
#include <new>
#include <thread>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <xxhash.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/loader.hpp"
#include "mapped_pages.hpp"

namespace dcq {

namespace {

using loader_detail::drop_pages;

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
constexpr std::align_val_t kAlign{64};
// Stored chunks up to this size are decoded from a pread copy (one scratch buffer per decoding
// thread, part of the fixed overhead); larger ones through the mapping, whose drop afterwards is
// then one madvise for many pages.
constexpr uint64_t kPreadPayloadBytes = 1u << 20;
// Raw row chunks up to this size are read with pread rather than mapped (zero_copy_view).
constexpr uint64_t kPreadRowChunkBytes = 64u << 10;

// A decoded tensor's memory. Large buffers are their own anonymous mapping, so that freeing one
// gives its pages back to the system at once: from the heap, freed buffers of varying sizes stay
// in the process and the resident set drifts above the cache's accounting (measured: +7 MiB on
// an 18 MB model at a 10 MiB budget). Small ones come from the heap.
constexpr uint64_t kMapThreshold = 64 * 1024;

// DCQ_KEEP_MAPPED=1 (measurement only): leave evicted zero-copy pages mapped, to time what giving
// them back costs; the resident set then exceeds the budget by up to the file size.
bool keep_mapped() {
  static const bool keep = [] {
    const char* v = std::getenv("DCQ_KEEP_MAPPED");
    return v && std::string_view(v) == "1";
  }();
  return keep;
}

uint8_t* alloc_buffer(uint64_t n) {
  if (n >= kMapThreshold) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // Large buffers (the classifier, big layers) on 2 MiB pages where the kernel allows it: fewer
    // faults when first filled and fewer TLB misses for the matrix products reading them.
    if (n >= (2u << 20)) (void)::madvise(p, n, MADV_HUGEPAGE);
    return static_cast<uint8_t*>(p);
  }
  return static_cast<uint8_t*>(::operator new[](std::max<uint64_t>(n, 1), kAlign));
}

void free_buffer(uint8_t* p, uint64_t n) {
  if (!p) return;
  if (n >= kMapThreshold)
    ::munmap(p, n);
  else
    ::operator delete[](p, kAlign);
}

// Alignment the kernels and the engine need for a tensor's rows: F32 norms are read as float*,
// block types as structs with uint16_t fields; loads in the kernels are unaligned otherwise.
uintptr_t row_alignment(GgmlType t) {
  switch (t) {
    case GgmlType::I8: return 1;
    case GgmlType::F32:
    case GgmlType::I32: return 4;
    case GgmlType::I64:
    case GgmlType::F64: return 8;
    default: return 2;
  }
}

std::string human(uint64_t b) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / (1024.0 * 1024.0));
  return std::string(buf) + " (" + std::to_string(b) + " bytes)";
}

}  // namespace

struct DcqWeights::Entry {
  Entry() = default;
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;
  ~Entry() {
    if (!arena) free_buffer(data, bytes);
  }
  uint8_t* data = nullptr;        // owned (alloc_buffer of `bytes`), or null for a view
  bool arena = false;             // `data` is this pinned tensor's slot in the arena (not owned)
  const uint8_t* view = nullptr;  // zero-copy: the rows inside the mmapped file (no `data`)
  const uint8_t* ptr() const { return view ? view : data; }
  uint64_t bytes = 0;
  int holds = 0;
  bool pinned = false;
  bool interleaved = false;  // rows in kernels::interleave_rows' layout (want_interleaved)
  bool huge = false;         // `view` lies in the 2 MiB mapping (map_huge): charged by blocks
  double decode_seconds = 0;
};

MemBudget MemBudget::parse(const std::string& text) {
  MemBudget b;
  if (text.empty()) return b;
  std::string s = text;
  double mult = 1;
  if (s.back() == '%') {
    b.percent = true;
    s.pop_back();
  } else {
    const char c = char(std::toupper(static_cast<unsigned char>(s.back())));
    if (c == 'K' || c == 'M' || c == 'G') {
      mult = c == 'K' ? 1024.0 : c == 'M' ? 1024.0 * 1024 : 1024.0 * 1024 * 1024;
      s.pop_back();
    }
  }
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0' || !(v > 0) || !std::isfinite(v) || (b.percent && v > 100000))
    fail_usage("--mem-budget '" + text + "': expected BYTES (K/M/G suffix allowed) or a percentage such as 50%");
  b.unlimited = false;
  b.value = v * mult;
  return b;
}

uint64_t MemBudget::resolve(uint64_t weight_bytes) const {
  if (unlimited) return kUnlimited;
  const double b = percent ? value / 100.0 * double(weight_bytes) : value;
  return b >= 1.8e19 ? kUnlimited : uint64_t(b);
}

uint64_t view_block_bytes() {
  if (const char* v = std::getenv("DCQ_HUGE_MAP"); v && std::string_view(v) == "0") return 0;
  if (const char* v = std::getenv("DCQ_VIEW_BLOCK_KIB"); v && *v) {
    const uint64_t kib = std::strtoull(v, nullptr, 10);
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    if (kib == 0 || (kib & (kib - 1)) != 0 || kib * 1024 < page || kib * 1024 > loader_detail::kFolioBytes)
      fail_usage("DCQ_VIEW_BLOCK_KIB=" + std::string(v) + ": expected a power of two from the page size to 2048");
    return kib * 1024;
  }
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  return std::getline(f, line) && line.find("[never]") == std::string::npos ? loader_detail::kFolioBytes : 0;
}

nlohmann::json LoaderStats::to_json() const {
  nlohmann::json j;
  j["hits"] = hits;
  j["misses"] = misses;
  j["bytes_decoded"] = bytes_decoded;
  j["decode_seconds"] = decode_seconds;
  j["peak_resident_bytes"] = peak_resident_bytes;
  j["budget_bytes"] = budget_bytes == kUnlimited ? nlohmann::json(nullptr) : nlohmann::json(budget_bytes);
  j["pinned_bytes"] = pinned_bytes;
  j["weight_bytes"] = weight_bytes;
  j["min_working_set_bytes"] = min_working_set;
  j["prefetched"] = prefetched;
  j["prefetch_wait_seconds"] = prefetch_wait_seconds;
  j["bytes_read"] = bytes_read;
  j["read_wait_seconds"] = read_wait_seconds;
  j["zero_copy_acquires"] = zero_copy_acquires;
  j["zero_copy_bytes"] = zero_copy_bytes;
  j["verify_seconds"] = verify_seconds;
  j["stream_copy_bytes"] = stream_copy_bytes;
  j["view_block_bytes"] = view_block;
  j["huge_mapped"] = huge_mapped;
  j["unmap_calls"] = unmap_calls;
  j["unmap_seconds"] = unmap_seconds;
  j["view_blocks_mapped"] = view_blocks_mapped;
  return j;
}

DcqWeights::DcqWeights(const std::filesystem::path& path, const MemBudget& budget, bool prefetch, int threads,
                       double read_throttle, bool zero_copy)
    : DcqWeights(DcqReader::open(path), budget, prefetch, threads, read_throttle, zero_copy) {}

DcqWeights::DcqWeights(DcqReader reader, const MemBudget& budget, bool prefetch, int threads, double read_throttle,
                       bool zero_copy)
    : reader_(std::move(reader)), read_throttle_(read_throttle), copy_streamed_(prefetch), prefetch_(prefetch) {
  const std::filesystem::path path = reader_.source();
  if (!(read_throttle >= 0) || !std::isfinite(read_throttle)) fail_usage("--read-throttle must be a finite number >= 0");
  if (threads > 1) pool_ = std::make_unique<kernels::ThreadPool>(threads);
  // The prefetcher's own decoder pool: the engine's thread may use pool_ (a miss) while the
  // worker decodes ahead, and a ThreadPool runs one parallel_for at a time.
  if (prefetch && threads > 1) pf_pool_ = std::make_unique<kernels::ThreadPool>(threads);
  const auto& ix = reader_.index();
  if (ix.source_format != DcqSourceFormat::gguf)
    fail_input(path.string() + ": only containers made from a GGUF can run (this one holds safetensors)");
  // The GGUF header (metadata, tensor infos) is the first extras segment.
  const auto extras = reader_.read_blob(ix.extras, "extras");
  if (ix.segments.empty() || ix.segments[0].kind != DcqSegment::extras || ix.segments[0].a != 0)
    fail_input(path.string() + ": the container does not start with the GGUF header");
  meta_ = parse_gguf_header(std::span<const uint8_t>(extras).first(ix.segments[0].b), path.string());
  meta_.source = path;
  meta_.format = reader_.bare() ? ModelFormat::gguf : ModelFormat::dcq;
  meta_.tensors.clear();  // data lives in the chunks; shapes come from the index

  // Which tensors stay decoded comes from the speed-adaptive plan (plan.cpp): measured decode
  // cost per byte decides, the embedding table (read by rows) streams, the window fits the rest.
  for (size_t i = 0; i < ix.tensors.size(); ++i) by_name_.emplace(ix.tensors[i].name, i);
  PlanOptions po;
  po.budget = budget;
  po.threads = threads;
  po.read_throttle = read_throttle;
  po.zero_copy = zero_copy;
  po.view_block = zero_copy && read_throttle <= 0 ? view_block_bytes() : 0;
  plan_ = make_plan(reader_, po);
  stats_.weight_bytes = plan_.weight_bytes;
  stats_.min_working_set = plan_.min_working_set;
  budget_ = plan_.budget_bytes;
  stats_.budget_bytes = budget_;
  stats_.pinned_bytes = plan_.pinned_bytes;
  pinned_ = plan_.pinned_by_index;
  make_arena();
  want_il_.assign(ix.tensors.size(), false);
  next_.assign(ix.tensors.size(), SIZE_MAX);

  // Zero-copy candidates (only the payload headers are read here; checksums come at first use).
  zc_rows_.assign(ix.chunks.size(), nullptr);
  zc_verified_ = std::make_unique<std::atomic<bool>[]>(ix.chunks.size());
  bool any_raw = false;
  if (zero_copy && read_throttle <= 0)
    for (uint32_t c = 0; c < ix.chunks.size(); ++c) any_raw |= (zc_rows_[c] = raw_rows(c)) != nullptr;
  // Under a budget, streamed chunks are read with pread() (raw rows into reused buffers, fill_raw;
  // small stored chunks before decoding them, decode_into): an own descriptor.
  if (budget_ != kUnlimited) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail_input(path.string() + ": cannot open for reading: " + std::strerror(errno));
  }
  // Opening read the index, the extras and (for the plan) samples of chunks through the mapping:
  // give those pages back, so the resident set starts from the cache's accounting.
  DcqChunk all;
  all.stored_size = reader_.file_size();
  map_ = reader_.stored(all);
  drop_pages(map_, map_.data(), map_.size());
  if (plan_.view_block && any_raw) map_huge();
}

namespace {

// FilePmdMapped of this process (kB): file pages mapped by 2 MiB page-table entries.
uint64_t file_pmd_mapped_kb() {
  FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "FilePmdMapped:", 14) == 0) kb = std::strtoull(line + 14, nullptr, 10);
  std::fclose(f);
  return kb;
}

}  // namespace

void DcqWeights::map_huge() {
  // Streamed views are mapped in and dropped again on every token. With 4 KiB pages that is a
  // fault per page (~3 ms per 19 MB, as much as the compute); with the file mapped at a 2 MiB
  // aligned address under MADV_HUGEPAGE and its page cache in 2 MiB folios, one fault maps
  // 2 MiB (measured on the 71 MB file: drop + touch all 0.2-0.4 ms instead of 4 ms).
  constexpr size_t kHuge = loader_detail::kFolioBytes;
  const size_t n = map_.size();
  void* r = ::mmap(nullptr, n + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return;
  auto* lo = static_cast<uint8_t*>(r);
  auto* at = reinterpret_cast<uint8_t*>((uintptr_t(lo) + kHuge - 1) & ~uintptr_t(kHuge - 1));
  const size_t page = size_t(::sysconf(_SC_PAGESIZE)), mapped = (n + page - 1) / page * page;
  if (at > lo) ::munmap(lo, size_t(at - lo));  // the reservation's slack on both sides
  if (lo + n + kHuge > at + mapped) ::munmap(at + mapped, size_t(lo + n + kHuge - (at + mapped)));
  if (::mmap(at, n, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, 0) == MAP_FAILED) {
    ::munmap(at, mapped);
    return;
  }
  huge_ = {at, n};
  block_ = plan_.view_block;
  stats_.view_block = block_;
  block_refs_.assign((n + block_ - 1) / block_, 0);
  block_pending_.assign(block_refs_.size(), 0);
  if (block_ < kHuge) return;  // DCQ_VIEW_BLOCK_KIB: the accounting without huge pages
  (void)::madvise(at, n, MADV_HUGEPAGE);

  // The range of the streamed zero-copy rows, in whole 2 MiB blocks of the file.
  const auto& ix = reader_.index();
  uint64_t b = UINT64_MAX, e = 0;
  for (uint32_t c = 0; c < ix.chunks.size(); ++c) {
    if (!zc_rows_[c] || pinned_[ix.chunks[c].tensor]) continue;
    b = std::min<uint64_t>(b, uint64_t(zc_rows_[c] - map_.data()));
    e = std::max<uint64_t>(e, uint64_t(zc_rows_[c] - map_.data()) + ix.chunks[c].decoded_size);
  }
  // Whole blocks around them (the edge blocks are mapped by the views too); a last block cut by
  // the end of the file cannot be a 2 MiB folio and is left out.
  b = b / kHuge * kHuge;
  e = std::min<uint64_t>((e + kHuge - 1) / kHuge * kHuge, n / kHuge * kHuge);
  if (b >= e) return;
  // Are the file's pages there 2 MiB folios? Touch the blocks and look. If not (a file just
  // written or read in small pieces), the range's clean cached pages are dropped and read again
  // through this mapping, which brings them in as 2 MiB folios: a one-time read of the streamed
  // part (a fraction of a second) for every later run and token.
  // Every block is probed: a file written a moment ago holds folios of mixed sizes. A few blocks
  // at a time, given back before the next few: probing the whole range at once mapped it all
  // (118 MiB of a 40 % Q8_0 repack whose views lie back to back, above budget + overhead). Eight
  // blocks (fewer madvise calls), but never more than half the budget: nothing else is resident
  // yet, and a budget of a few blocks must hold at open what it holds later.
  auto probe = [&] {
    const uint64_t batch = std::clamp<uint64_t>(budget_ / kHuge / 2, 1, 8) * kHuge;
    bool pmd = true;
    for (uint64_t o0 = b; o0 < e; o0 += batch) {
      const uint64_t o1 = std::min(e, o0 + batch);
      const uint64_t before = file_pmd_mapped_kb();
      for (uint64_t o = o0; o < o1; o += kHuge) (void)*static_cast<volatile const uint8_t*>(at + o);
      pmd = pmd && file_pmd_mapped_kb() - before >= (o1 - o0) / 1024;
      (void)::madvise(at + o0, size_t(o1 - o0), MADV_DONTNEED);
    }
    return pmd;
  };
  if (probe()) {
    stats_.huge_mapped = true;
    return;
  }
  (void)::fdatasync(fd_);  // only clean pages can be dropped
  (void)::posix_fadvise(fd_, off_t(b), off_t(e - b), POSIX_FADV_DONTNEED);
  for (uint64_t o = b; o < e; o += kHuge) {  // one block at a time: the peak resident set stays put
    populate_pages({at + o, kHuge});
    (void)::madvise(at + o, kHuge, MADV_DONTNEED);
  }
  stats_.huge_mapped = probe();
}

const uint8_t* DcqWeights::raw_rows(uint32_t c) const {
  const auto& ix = reader_.index();
  const auto& ch = ix.chunks[c];
  const uint64_t kHeader = reader_.raw_header_bytes();  // one stream (docs/format.md, "Chunk payload")
  // Plain rows (transform none) or the kernels' interleaved rows (row_groups, docs/format.md).
  if ((ch.transform != TransformId::none && ch.transform != TransformId::row_groups) || ch.n_streams != 1 ||
      ch.stored_size != kHeader + ch.decoded_size)
    return nullptr;
  const GgmlType type = ix.tensors[ch.tensor].type;
  const auto st = reader_.stored(ch);
  if (reader_.bare())  // a GGUF's rows, where the file has them
    return uintptr_t(st.data()) % row_alignment(type) == 0 ? st.data() : nullptr;
  // Parsing the header faulted in a folio around it: give it back now, not after the scan of all
  // chunks (else the whole file is mapped for a moment: the peak resident set at open).
  struct Drop {
    const DcqReader& r;
    uint32_t c;
    ~Drop() { loader_detail::drop_chunk_pages(r, c); }
  } drop{reader_, c};
  try {
    const auto streams = parse_payload(type, ch.transform, st, ch.decoded_size);
    if (streams.size() != 1 || streams[0].codec.id != CodecId::raw) return nullptr;
  } catch (const Error&) {
    return nullptr;  // a bad header is reported by the decode path
  }
  const uint8_t* rows = st.data() + kHeader;
  return uintptr_t(rows) % row_alignment(type) == 0 ? rows : nullptr;
}

bool DcqWeights::grouped(uint32_t c) const { return reader_.index().chunks[c].transform == TransformId::row_groups; }

const uint8_t* DcqWeights::zero_copy_view(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1) const {
  if (chunk1 != chunk0 + 1) return nullptr;
  // A small chunk of an embedding's rows (`dcq plan --repack` writes 16 KiB raw ones) is read
  // with pread and checked (decode_into): ~5 us, where a view costs a fault and, every few
  // tokens, a madvise whose TLB shootdown stops the other compute thread (~35 us).
  if (key != tensor && fd_ >= 0 && reader_.index().chunks[chunk0].decoded_size <= kPreadRowChunkBytes) return nullptr;
  // Interleaved rows in the file serve only a whole matrix the engine wants interleaved; anyone
  // else gets them decoded (decode_chunk puts them back into plain rows).
  if (grouped(chunk0) && !(key == tensor && want_il_[tensor])) return nullptr;
  return zc_rows_[chunk0];
}

void DcqWeights::verify_once(uint32_t c) {
  if (zc_verified_[c].load(std::memory_order_acquire)) return;
  if (reader_.bare()) {  // a GGUF has no checksums to check
    zc_verified_[c].store(true, std::memory_order_release);
    return;
  }
  // Same checks as decode_chunk (stored and decoded XXH3; for a raw stream the stored one covers
  // the 14-byte header and the rows), before the rows are first handed out. In one streaming pass
  // that gives the pages behind it back every few MiB: hashing a 26 MiB classifier whole mapped it
  // all at once (and a row_groups chunk's plain copy doubled that), the peak of a 20 % run.
  const auto t0 = std::chrono::steady_clock::now();
  const auto& ix = reader_.index();
  const auto& ch = ix.chunks[c];
  const auto& t = ix.tensors[ch.tensor];
  const auto st = reader_.stored(ch);
  using State = std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)>;
  State hs(XXH3_createState(), XXH3_freeState), hd(XXH3_createState(), XXH3_freeState);
  if (!hs || !hd) throw std::bad_alloc();
  XXH3_64bits_reset(hs.get());
  XXH3_64bits_reset(hd.get());
  const uint8_t* rows = zc_rows_[c];
  XXH3_64bits_update(hs.get(), st.data(), size_t(rows - st.data()));
  const uint64_t rb = t.row_bytes();
  // A row_groups chunk: its decoded checksum is of the plain rows, so each 16-row group (itself a
  // valid row_groups stream of 16 rows; the remainder rows are plain) is put back into plain order.
  const uint64_t unit = grouped(c) ? kRowGroupRows * rb : rb * std::max<uint64_t>(1, (1u << 20) / rb);
  std::vector<uint8_t> plain(grouped(c) ? size_t(unit) : 0);
  uint64_t done = 0, dropped = 0;
  while (done < ch.decoded_size) {
    const uint64_t n = std::min(unit, ch.decoded_size - done);
    const std::span<const uint8_t> piece(rows + done, size_t(n));
    XXH3_64bits_update(hs.get(), piece.data(), piece.size());
    if (grouped(c) && n == unit) {
      transform_join(TransformId::row_groups, t.type, {piece}, plain, t.ne[0]);
      XXH3_64bits_update(hd.get(), plain.data(), plain.size());
    } else {
      XXH3_64bits_update(hd.get(), piece.data(), piece.size());
    }
    done += n;
    if (done - dropped >= (4u << 20)) {
      drop_pages(map_, rows + dropped, done - dropped);
      dropped = done;
    }
  }
  loader_detail::drop_chunk_pages(reader_, c);
  if (XXH3_64bits_digest(hs.get()) != ch.xxh3_stored)
    fail(ExitCode::integrity, describe() + ": " + reader_.chunk_name(c) + ": stored bytes checksum mismatch (corrupt)");
  if (XXH3_64bits_digest(hd.get()) != ch.xxh3_decoded)
    fail(ExitCode::integrity, describe() + ": " + reader_.chunk_name(c) + ": decoded bytes checksum mismatch (corrupt)");
  zc_verified_[c].store(true, std::memory_order_release);
  std::lock_guard<std::mutex> lock(verify_mu_);
  verify_total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}


uint8_t* DcqWeights::take_buffer(uint64_t bytes) {
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second != bytes) continue;
    uint8_t* p = it->first;
    free_.erase(it);
    free_bytes_ -= bytes;
    return p;
  }
  return alloc_buffer(bytes);
}

void DcqWeights::make_arena() {
  // Pinned tensors live in one mapping on 2 MiB pages: most are smaller than 2 MiB (the 110M's
  // attention matrices are 0.3 MiB), so as buffers of their own they would sit on 4 KiB pages and
  // the matrix products would miss the TLB on every page, where streamed views are on 2 MiB pages
  // (measured: the 60 % budget ran faster than all-resident before this). Each tensor has its slot
  // from the start, so the pages are faulted when its decode first writes them.
  // Without a budget the engine keeps its own (interleaved) copies and discards these buffers.
  const auto& ix = reader_.index();
  arena_at_.assign(ix.tensors.size(), UINT64_MAX);
  if (budget_ == kUnlimited) return;
  uint64_t at = 0;
  for (size_t t = 0; t < ix.tensors.size(); ++t) {
    if (!pinned_[t] || ix.tensors[t].n_chunks == 0) continue;
    arena_at_[t] = at;
    at += (ix.tensors[t].n_bytes + 63) / 64 * 64;
  }
  if (at < (2u << 20)) return;  // alloc_buffer advises 2 MiB pages from there on
  arena_ = alloc_buffer(at);
  arena_bytes_ = at;
}

uint8_t* DcqWeights::buffer_for(Entry& e, size_t key, size_t tensor) {
  if (arena_ && key == tensor && arena_at_[tensor] != UINT64_MAX) {
    e.arena = true;
    return arena_ + arena_at_[tensor];
  }
  return take_buffer(e.bytes);
}

void DcqWeights::give_buffer(uint8_t* p, uint64_t bytes) {
  // Heap blocks are cheap to get again; without a budget nothing is evicted twice.
  if (bytes < kMapThreshold || budget_ == kUnlimited) {
    free_buffer(p, bytes);
    return;
  }
  free_.emplace_back(p, bytes);
  free_bytes_ += bytes;
}

bool DcqWeights::has_free(uint64_t bytes) const {
  return std::any_of(free_.begin(), free_.end(), [&](const auto& f) { return f.second == bytes; });
}

bool DcqWeights::drop_same_size(uint64_t bytes) {
  // The most recently released entry of this size (nearly the MRU choice below), whose buffer the
  // new entry then reuses: no fresh mapping to fault in, no other buffer freed for it.
  for (auto it = release_order_.rbegin(); it != release_order_.rend(); ++it) {
    const Entry& e = *entries_.at(*it);
    if (e.data && e.bytes == bytes) {
      drop(*it);
      return true;
    }
  }
  return false;
}

bool DcqWeights::free_one() {
  if (free_.empty()) return false;
  free_buffer(free_.front().first, free_.front().second);
  free_bytes_ -= free_.front().second;
  free_.erase(free_.begin());
  return true;
}

void DcqWeights::note_peak() {
  // Free buffers hold pages too: the cache's accounting includes them.
  stats_.peak_resident_bytes = std::max(stats_.peak_resident_bytes, stats_.resident_bytes + free_bytes_);
}

bool DcqWeights::copy_streamed(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1) const {
  // Whole tensors only: an embedding row's chunk is a view, or read with pread when small
  // (zero_copy_view); one row must not cost a copy of a large chunk. A pinned tensor is read
  // once, into its own buffer: as a view it would keep the page-cache folios around it mapped for
  // the whole run (2 MiB each once the file's cache holds 2 MiB folios: measured 75 MiB mapped for
  // 40 MiB of pinned views on the 110M Q8_0), and plain rows the engine wants interleaved are
  // interleaved in that buffer. Streamed rows with 2 MiB
  // mappings are cheaper as views than any copy (map_huge).
  if (fd_ < 0 || key != tensor || !zero_copy_view(key, tensor, chunk0, chunk1)) return false;
  return pinned_[tensor] || (copy_streamed_ && huge_.empty());
}

void DcqWeights::fill_raw(uint32_t c, uint8_t* dst) {
  if (!zc_verified_[c].load(std::memory_order_acquire)) {
    // First use: the same checks as a zero-copy view, through the mapping; its pages are then
    // given back (the rows are read with pread from now on).
    verify_once(c);
  }
  // pread: the kernel copies from the page cache into our (already faulted) buffer; the process's
  // page tables do not change, unlike mapping the rows in and dropping them again every token.
  const auto& ch = reader_.index().chunks[c];
  read_at(uint64_t(zc_rows_[c] - map_.data()), dst, ch.decoded_size, c, "rows");
}

void DcqWeights::read_at(uint64_t off, uint8_t* dst, uint64_t left, uint32_t c, const char* what) const {
  while (left > 0) {
    const ssize_t r = ::pread(fd_, dst, size_t(std::min<uint64_t>(left, 1u << 30)), off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      fail_input(describe() + ": " + reader_.chunk_name(c) + ": cannot read the " + what + " (" +
                 (r < 0 ? std::string(std::strerror(errno)) : std::string("file shorter than its index")) + ")");
    dst += r;
    off += uint64_t(r);
    left -= uint64_t(r);
  }
}

void DcqWeights::note_read(size_t tensor, uint32_t chunk0, uint32_t chunk1) {
  const auto& ix = reader_.index();
  if (chunk0 == chunk1) {  // the whole tensor
    chunk0 = ix.tensors[tensor].first_chunk;
    chunk1 = chunk0 + ix.tensors[tensor].n_chunks;
  }
  for (uint32_t c = chunk0; c < chunk1; ++c) stats_.bytes_read += ix.chunks[c].stored_size;
  {
    std::lock_guard<std::mutex> lock(verify_mu_);
    stats_.verify_seconds = verify_total_;
  }
  std::lock_guard<std::mutex> lock(io_mu_);
  stats_.read_wait_seconds = io_wait_total_;
}

std::vector<std::chrono::steady_clock::time_point> DcqWeights::issue_reads(uint32_t chunk0, uint32_t chunk1) const {
  // One simulated device with a queue: all reads of a decode request are issued at once, each
  // starts when the device is free and takes stored/rate seconds. The decoder waits for chunk k's
  // read to finish before decoding it, so decoding chunk k overlaps the read of chunk k+1 (as
  // with asynchronous I/O or the kernel's readahead); the device itself never goes faster.
  std::vector<std::chrono::steady_clock::time_point> done;
  if (read_throttle_ <= 0) return done;
  const auto& ix = reader_.index();
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(io_mu_);
  auto t = std::max(now, io_free_at_);
  for (uint32_t c = chunk0; c < chunk1; ++c) {
    t += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(double(ix.chunks[c].stored_size) / read_throttle_));
    done.push_back(t);
  }
  io_free_at_ = t;
  return done;
}

void DcqWeights::wait_read(std::chrono::steady_clock::time_point done) const {
  const auto now = std::chrono::steady_clock::now();
  if (done <= now) return;
  // sleep_until wakes 50-100 us late here (timer slack, a VM's wake-up), longer than a small
  // chunk's read takes: a file read in many small requests (a GGUF's F32 norms) paid that per
  // request, the device model did not. Sleep to shortly before, then yield until the time.
  constexpr auto kEarly = std::chrono::microseconds(200);
  if (done - now > kEarly) std::this_thread::sleep_until(done - kEarly);
  while (std::chrono::steady_clock::now() < done) std::this_thread::yield();
  std::lock_guard<std::mutex> lock(io_mu_);
  io_wait_total_ += std::chrono::duration<double>(done - now).count();
}

DcqWeights::~DcqWeights() {
  cancel_prefetch();  // waits for each job: the worker writes into their entries until done
  if (pf_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(pf_mu_);
      pf_stop_ = true;
    }
    pf_cv_.notify_one();
    pf_thread_.join();
  }
  for (auto& [p, n] : free_) free_buffer(p, n);
  if (!huge_.empty()) ::munmap(const_cast<uint8_t*>(huge_.data()), huge_.size());
  free_buffer(arena_, arena_bytes_);  // its entries do not own their slots
  if (fd_ >= 0) ::close(fd_);
}

size_t DcqWeights::tensor_index(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) fail_input(describe() + ": tensor " + std::string(name) + " is missing");
  return it->second;
}

size_t DcqWeights::resolve_duplicate(size_t t) const {
  const auto& ix = reader_.index();
  return ix.tensors[t].duplicate_of == kDcqNoDuplicate ? t : ix.tensors[t].duplicate_of;
}

std::optional<TensorInfo> DcqWeights::info(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  const auto& t = reader_.index().tensors[it->second];
  return TensorInfo{t.type, t.ne};
}

const uint8_t* DcqWeights::view_for(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1, bool& huge) const {
  const uint8_t* v = zero_copy_view(key, tensor, chunk0, chunk1);
  // Only whole streamed tensors go through the huge mapping: a pinned view stays mapped for the
  // run and an embedding row's chunk is small, so 2 MiB blocks would only cost them memory.
  huge = v && !huge_.empty() && key == tensor && !pinned_[tensor];
  return huge ? huge_.data() + (v - map_.data()) : v;
}

std::pair<size_t, size_t> DcqWeights::blocks_of(const uint8_t* view, uint64_t n) const {
  const uint64_t o = uint64_t(view - huge_.data());
  return {size_t(o / block_), size_t((o + n + block_ - 1) / block_)};
}

uint64_t DcqWeights::cost(const uint8_t* view, uint64_t bytes, bool huge) const {
  if (!huge) return bytes;
  // Blocks a held view maps already cost nothing (make_room never gives them back); any other
  // block may be flushed while room is made, so it is counted. Counting every block (session 6)
  // asked for up to two blocks more than the plan's window, which holds a layer's views by the
  // blocks of its file range: a file repacked for 60 % failed at 40 % (exit 5).
  const auto [b0, b1] = blocks_of(view, bytes);
  uint64_t n = 0;
  for (size_t b = b0; b < b1; ++b) {
    const bool held = std::any_of(entries_.begin(), entries_.end(), [&](const auto& kv) {
      const Entry& e = *kv.second;
      if (!e.huge || e.holds == 0) return false;
      const auto [h0, h1] = blocks_of(e.view, e.bytes);
      return b >= h0 && b < h1;
    });
    n += held ? 0 : 1;
  }
  return n * block_;
}

void DcqWeights::charge(const Entry& e) {
  if (!e.huge) {
    // A view whose range is still mapped and charged (released, not yet flushed) is used as it is.
    const auto p = e.view ? std::find(pending_views_.begin(), pending_views_.end(), std::make_pair(e.view, e.bytes))
                          : pending_views_.end();
    if (p != pending_views_.end()) {
      const auto [a, b] = loader_detail::folio_range(map_, e.view, e.bytes);
      pending_view_extent_ -= b - a;
      pending_views_.erase(p);
      return;
    }
    stats_.resident_bytes += e.bytes;
    return;
  }
  // A huge view maps whole 2 MiB blocks: the budget counts each mapped block once, whichever
  // views share it, and a block is given back when the last view in it leaves.
  const auto [b0, b1] = blocks_of(e.view, e.bytes);
  for (size_t b = b0; b < b1; ++b) {
    if (block_refs_[b]++ != 0) continue;
    if (block_pending_[b]) {  // still mapped and charged: used again as it is
      block_pending_[b] = 0;
      pending_.erase(std::find(pending_.begin(), pending_.end(), b));
    } else {
      stats_.resident_bytes += block_;
      ++stats_.view_blocks_mapped;
    }
  }
}

void DcqWeights::uncharge(const Entry& e) {
  if (!e.huge) {
    if (e.view && !keep_mapped()) {  // stays mapped and charged until the next flush (flush_blocks)
      pending_views_.push_back({e.view, e.bytes});
      // Charged by bytes, but a fault maps the whole page-cache folio (up to 2 MiB) around them:
      // a 60 % repack run at 20 % kept 10 MiB more mapped than charged with unbounded batches.
      // Flush once the pending views' folios could exceed 8 MiB.
      const auto [a, b] = loader_detail::folio_range(map_, e.view, e.bytes);
      pending_view_extent_ += b - a;
      if (pending_view_extent_ > 4 * loader_detail::kFolioBytes) flush_views();
      return;
    }
    stats_.resident_bytes -= e.bytes;
    return;
  }
  // A block no view uses any more stays mapped and charged until room is needed (flush_blocks):
  // then all such blocks go in one madvise per run of neighbours. Each madvise costs a TLB
  // shootdown interrupt on the other compute thread's core, so one per block (~20 per token on the
  // 110M Q4_0 at 60 %) was a measurable share of a token.
  const auto [b0, b1] = blocks_of(e.view, e.bytes);
  for (size_t b = b0; b < b1; ++b)
    if (--block_refs_[b] == 0) {
      block_pending_[b] = 1;
      pending_.push_back(b);
    }
}

bool DcqWeights::flush_released_views() {
  std::vector<size_t> views;
  for (const size_t key : release_order_)
    if (entries_.at(key)->view) views.push_back(key);
  for (const size_t key : views) drop(key);
  return flush_blocks() || !views.empty();
}

bool DcqWeights::flush_views() {
  if (pending_views_.empty()) return false;
  // Views charged by their bytes: their ranges widened to folios (drop_pages), neighbours merged
  // into one madvise unless a view still in use lies between them.
  std::vector<std::pair<uintptr_t, uintptr_t>> live, ranges;
  for (const auto& [key, e] : entries_)
    if (e->view && !e->huge) live.push_back(loader_detail::folio_range(map_, e->view, e->bytes));
  uint64_t bytes = 0;
  for (const auto& [v, n] : pending_views_) {
    ranges.push_back(loader_detail::folio_range(map_, v, n));
    bytes += n;
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 0; i < ranges.size();) {
    const uintptr_t a = ranges[i].first;
    uintptr_t b = ranges[i].second;  // not a structured binding: clang 14 cannot capture one
    size_t j = i + 1;
    for (; j < ranges.size(); ++j) {
      const bool blocked = std::any_of(live.begin(), live.end(), [&](const auto& l) {
        return l.first < ranges[j].first && l.second > b;  // in use between the two
      });
      if (blocked && ranges[j].first > b) break;
      b = std::max(b, ranges[j].second);
    }
    (void)::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
    unmap_calls_.fetch_add(1, std::memory_order_relaxed);
    i = j;
  }
  stats_.resident_bytes -= bytes;
  pending_views_.clear();
  pending_view_extent_ = 0;
  return true;
}

bool DcqWeights::flush_blocks() {
  const bool views = flush_views();
  if (pending_.empty()) return views;
  std::sort(pending_.begin(), pending_.end());
  for (size_t i = 0; i < pending_.size();) {
    size_t j = i + 1;
    // One madvise also spans blocks between two pending ones that no view maps (pinned tensors'
    // range, blocks given back before): each call is one TLB shootdown, whatever its length.
    auto unmapped_between = [&](size_t a, size_t b) {
      for (size_t k = a + 1; k < b; ++k)
        if (block_refs_[k] != 0) return false;
      return true;
    };
    while (j < pending_.size() && unmapped_between(pending_[j - 1], pending_[j])) ++j;
    const size_t at = pending_[i] * block_, len = std::min<size_t>((pending_[j - 1] + 1 - pending_[i]) * block_, huge_.size() - at);
    i = j;
    if (keep_mapped()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    (void)::madvise(const_cast<uint8_t*>(huge_.data()) + at, len, MADV_DONTNEED);
    unmap_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    unmap_calls_.fetch_add(1, std::memory_order_relaxed);
  }
  for (const size_t b : pending_) block_pending_[b] = 0;
  stats_.resident_bytes -= pending_.size() * block_;
  pending_.clear();
  return true;
}

void DcqWeights::drop(size_t key) {
  const auto it = entries_.find(key);
  Entry& e = *it->second;
  uncharge(e);
  if (e.data) {  // kept for the next entry of its size
    if (!e.arena) give_buffer(e.data, e.bytes);
    e.data = nullptr;
  }
  entries_.erase(it);
  release_order_.erase(std::remove(release_order_.begin(), release_order_.end(), key), release_order_.end());
}

bool DcqWeights::try_make_room(uint64_t bytes, bool buffer) {
  while (budget_ != kUnlimited && stats_.resident_bytes + free_bytes_ + bytes > budget_) {
    // As make_room, but released entries go before free buffers of other sizes: a prefetch
    // runs ahead of the window, and freeing those buffers here would have the entries queued
    // next map and fault fresh ones (measured: 4x the page faults of the engine's order).
    if (buffer && has_free(bytes)) return true;  // taking it adds nothing
    if (buffer && drop_same_size(bytes)) continue;
    if (flush_blocks()) continue;
    if (!release_order_.empty()) {
      drop(release_order_.back());
      continue;
    }
    if (!free_one()) return false;
  }
  return true;
}

void DcqWeights::decode_into(Entry& e, uint32_t chunk0, uint32_t chunk1, kernels::ThreadPool* pool,
                             const std::atomic<bool>* cancel) const {
  // Each chunk's stored and decoded checksums are checked by decode_chunk; on a mismatch it
  // throws before the entry is registered, so bad weights are never handed out.
  const auto t0 = std::chrono::steady_clock::now();
  const auto& ix = reader_.index();
  std::vector<uint64_t> at(chunk1 - chunk0 + 1, 0);
  for (uint32_t c = chunk0; c < chunk1; ++c) at[c - chunk0 + 1] = at[c - chunk0] + ix.chunks[c].decoded_size;
  const auto reads = issue_reads(chunk0, chunk1);
  auto decode = [&](int64_t b, int64_t end) {
    for (int64_t k = b; k < end; ++k) {
      if (cancel && cancel->load(std::memory_order_relaxed)) return;  // discarded anyway
      if (!reads.empty()) wait_read(reads[size_t(k)]);
      const uint32_t c = chunk0 + uint32_t(k);
      const std::span<uint8_t> out(e.data + at[size_t(k)], at[size_t(k) + 1] - at[size_t(k)]);
      const auto st = reader_.stored(ix.chunks[c]);
      if (fd_ >= 0 && st.size() <= kPreadPayloadBytes) {
        // Small chunks (an embedding row's, every token) are read with pread into this thread's
        // scratch: mapping their pages and dropping them again cost a madvise, and so a TLB
        // shootdown on the other compute thread's core, per chunk.
        thread_local std::vector<uint8_t> scratch;
        if (scratch.size() < st.size()) scratch.resize(kPreadPayloadBytes);
        read_at(uint64_t(st.data() - map_.data()), scratch.data(), st.size(), c, "stored bytes");
        reader_.decode_chunk(c, std::span<const uint8_t>(scratch.data(), st.size()), out);
        continue;
      }
      reader_.decode_chunk(c, out);
      drop_pages(map_, st.data(), st.size(), &unmap_calls_);  // decoded: its stored pages are not needed again
    }
  };
  if (!pool || chunk1 - chunk0 < 2) {
    decode(0, chunk1 - chunk0);
  } else {
    // A worker thread must not throw: the first error is kept and rethrown here.
    std::mutex mu;
    std::exception_ptr err;
    pool->parallel_for(chunk1 - chunk0, [&](int64_t b, int64_t end) {
      try {
        decode(b, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!err) err = std::current_exception();
      }
    });
    if (err) std::rethrow_exception(err);
  }
  e.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct DcqWeights::PrefetchJob {
  size_t tensor = SIZE_MAX;
  uint32_t c0 = 0, c1 = 0;
  bool copy_raw = false;  // a streamed raw tensor: pread into entry->data (fill_raw)
  std::unique_ptr<Entry> entry;
  std::atomic<bool> cancelled{false};
  std::promise<void> done;  // set by the worker (value or the decode's exception)
  std::future<void> result = done.get_future();
};

void DcqWeights::prefetch_worker() {
  for (;;) {
    PrefetchJob* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(pf_mu_);
      pf_cv_.wait(lock, [&] { return pf_stop_ || !pf_todo_.empty(); });
      if (pf_todo_.empty()) return;  // stopping and nothing left (the destructor cancels all first)
      job = pf_todo_.front();
      pf_todo_.pop_front();
    }
    try {
      if (!job->cancelled.load(std::memory_order_acquire)) {
        Entry& e = *job->entry;
        if (job->copy_raw) {
          copy_rows(e, job->tensor, job->c0);
        } else if (e.view) {  // nothing to decode: check once and fault the pages in ahead of the engine
          verify_once(job->c0);
          if (e.huge) {
            // One read per 2 MiB block maps it (a PMD fault, ~2 us here); MADV_POPULATE_READ took
            // 13-18 us per block on this VM (session 8).
            const auto [b0, b1] = blocks_of(e.view, e.bytes);
            volatile uint8_t sink = 0;
            for (size_t b = b0; b < b1; ++b) sink = sink + *std::max(e.view, huge_.data() + b * block_);
          } else {
            populate_pages({e.view, size_t(e.bytes)});
          }
        } else {
          decode_into(e, job->c0, job->c1, pf_pool_.get(), &job->cancelled);
          if (!job->cancelled.load(std::memory_order_acquire)) interleave_if_wanted(e, job->tensor);
        }
      }
      job->done.set_value();
    } catch (...) {
      job->done.set_exception(std::current_exception());
    }
  }
}

void DcqWeights::finish_job(PrefetchJob& job) {
  job.cancelled.store(true, std::memory_order_release);
  job.result.wait();  // the worker writes into the entry until then
  uncharge(*job.entry);
  if (job.entry->data) {  // its buffer serves the next entry of that size
    if (!job.entry->arena) give_buffer(job.entry->data, job.entry->bytes);
    job.entry->data = nullptr;
  }
}

void DcqWeights::cancel_prefetch() {
  while (cancel_last_prefetch()) {
  }
}

bool DcqWeights::cancel_last_prefetch() {
  if (pf_queue_.empty()) return false;
  finish_job(*pf_queue_.back());
  pf_queue_.pop_back();
  return true;
}

DcqWeights::Entry* DcqWeights::take_prefetch(size_t tensor) {
  if (pf_queue_.empty()) return nullptr;
  if (pf_queue_.front()->tensor != tensor) {  // mispredicted: give the memory of all of them back
    cancel_prefetch();
    return nullptr;
  }
  std::unique_ptr<PrefetchJob> job = std::move(pf_queue_.front());
  pf_queue_.pop_front();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    job->result.get();  // rethrows a checksum error from the worker, here, on the engine's thread
  } catch (...) {
    uncharge(*job->entry);
    cancel_prefetch();  // the ones behind it are not needed now
    throw;
  }
  stats_.prefetch_wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto e = std::move(job->entry);
  ++stats_.misses;
  ++stats_.prefetched;
  if (job->copy_raw) stats_.stream_copy_bytes += e->bytes;
  if (e->view || job->copy_raw) {
    ++stats_.zero_copy_acquires;
    stats_.zero_copy_bytes += e->bytes;
  } else {
    stats_.bytes_decoded += e->bytes;
  }
  note_read(tensor, 0, 0);
  stats_.decode_seconds += e->decode_seconds;
  e->holds = 1;
  Entry* ref = e.get();
  entries_.emplace(tensor, std::move(e));
  return ref;
}

void DcqWeights::schedule_prefetch(size_t tensor) {
  if (!prefetch_) return;
  // Walk the predicted order from `tensor` on and queue what is neither resident nor queued, until
  // pf_depth_ tensors are queued. Pinned tensors decoded once are resident and simply skipped. The
  // walk looks at most 16 tensors per queue slot ahead (nearly two layers per slot; the order is a
  // cycle): when (nearly) everything is resident, a walk over the whole model on every acquire
  // would cost more than the lookahead is worth.
  const auto& ix = reader_.index();
  const size_t max_steps = std::min(ix.tensors.size(), size_t(pf_depth_) * 16);
  size_t t = tensor;
  for (size_t steps = 0; t != SIZE_MAX && steps < max_steps && pf_queue_.size() < size_t(pf_depth_);
       ++steps, t = next_[t]) {
    if (entries_.count(t)) continue;
    if (std::any_of(pf_queue_.begin(), pf_queue_.end(), [&](const auto& j) { return j->tensor == t; })) continue;
    const auto& ti = ix.tensors[t];
    if (ti.n_chunks == 0) continue;
    const bool copy = copy_streamed(t, t, ti.first_chunk, ti.first_chunk + ti.n_chunks);
    bool huge = false;
    const uint8_t* view = copy ? nullptr : view_for(t, t, ti.first_chunk, ti.first_chunk + ti.n_chunks, huge);
    if (!try_make_room(cost(view, ti.n_bytes, huge), !view)) return;  // no room beside what is held and queued: stop here
    auto job = std::make_unique<PrefetchJob>();
    job->tensor = t;
    job->c0 = ti.first_chunk;
    job->c1 = ti.first_chunk + ti.n_chunks;
    job->entry = std::make_unique<Entry>();
    Entry& e = *job->entry;
    e.bytes = ti.n_bytes;
    e.pinned = pinned_[t];
    job->copy_raw = copy;
    e.view = view;
    e.huge = huge;
    e.interleaved = view && grouped(job->c0);
    if (!e.view) e.data = buffer_for(e, t, t);
    charge(e);
    note_peak();
    if (!pf_thread_.joinable()) pf_thread_ = std::thread([this] { prefetch_worker(); });
    {
      std::lock_guard<std::mutex> lock(pf_mu_);
      pf_todo_.push_back(job.get());
    }
    pf_cv_.notify_one();
    pf_queue_.push_back(std::move(job));
  }
}

std::vector<size_t>& DcqWeights::held_list(std::string_view name) {
  // Looked up by the view: acquire and release run ~90 times per token, a string each was measurable.
  const auto it = held_.find(name);
  return it != held_.end() ? it->second : held_[std::string(name)];
}

void DcqWeights::make_room(uint64_t bytes, size_t tensor, uint64_t tensor_bytes, bool buffer) {
  while (budget_ != kUnlimited && stats_.resident_bytes + free_bytes_ + bytes > budget_) {
    // A free buffer of this size is reused (no change); for a buffer, other free buffers go
    // first, then released entries (in a cyclic pass they are needed last), then the prefetch
    // that is furthest ahead.
    if (buffer && has_free(bytes)) return;
    if (buffer && drop_same_size(bytes)) continue;
    if (buffer && free_one()) continue;
    // Unused view blocks are given back in as few madvise calls as the budget allows: when room is
    // needed, every released view goes (in a cyclic pass they are needed last, and mapping a block
    // again is one cheap PMD fault), then all their blocks are flushed at once. Each flush costs a
    // TLB shootdown interrupt on the other compute thread's core (~25-40 us in this VM, measured
    // with perf trace), where evicting only what one request needs flushed ~17 times per token on
    // the 110M Q4_0 at 60 % (docs/loader.md, "Measurements, session 7").
    if (flush_released_views()) continue;
    if (flush_blocks()) continue;
    if (!release_order_.empty()) {
      drop(release_order_.back());
      continue;
    }
    // A view frees pool buffers last: they are the next decode's (an embedding row's chunk every
    // token), and freeing one cost a fresh buffer's page faults on every token.
    if (free_one()) continue;
    if (cancel_last_prefetch()) continue;
    fail(ExitCode::resource, describe() + ": memory budget of " + human(budget_) + " cannot hold tensor '" +
                                 reader_.index().tensors[tensor].name + "' (" + human(tensor_bytes) + ")" +
                                 " beside the " + human(stats_.resident_bytes) + " in use");
  }
}

DcqWeights::Entry& DcqWeights::get(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1) {
  if (const auto it = entries_.find(key); it != entries_.end()) {
    ++stats_.hits;
    Entry& e = *it->second;
    if (e.holds++ == 0 && !e.pinned)
      release_order_.erase(std::remove(release_order_.begin(), release_order_.end(), key), release_order_.end());
    return e;
  }
  if (key == tensor)
    if (Entry* p = take_prefetch(tensor)) return *p;
  ++stats_.misses;
  const auto& ix = reader_.index();
  uint64_t bytes = 0;
  for (uint32_t c = chunk0; c < chunk1; ++c) bytes += ix.chunks[c].decoded_size;
  const bool copy = copy_streamed(key, tensor, chunk0, chunk1);
  bool huge = false;
  const uint8_t* view = copy ? nullptr : view_for(key, tensor, chunk0, chunk1, huge);
  make_room(cost(view, bytes, huge), tensor, bytes, !view);
  auto e = std::make_unique<Entry>();
  e->bytes = bytes;
  e->pinned = key == tensor && pinned_[tensor];
  if (copy) {
    e->data = buffer_for(*e, key, tensor);
    const auto t0 = std::chrono::steady_clock::now();
    copy_rows(*e, tensor, chunk0);  // checks first (throws before the entry exists)
    e->decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_.decode_seconds += e->decode_seconds;
    ++stats_.zero_copy_acquires;  // served from the raw rows, without decoding
    stats_.zero_copy_bytes += bytes;
    if (!e->pinned) stats_.stream_copy_bytes += bytes;  // a pinned one is copied once (to interleave it)
  } else if (view) {
    verify_once(chunk0);  // throws before the entry exists: bad rows are never handed out
    e->view = view;
    e->huge = huge;
    e->interleaved = grouped(chunk0);
    ++stats_.zero_copy_acquires;
    stats_.zero_copy_bytes += bytes;
  } else {
    e->data = buffer_for(*e, key, tensor);
    decode_into(*e, chunk0, chunk1, pool_.get());
    if (key == tensor) interleave_if_wanted(*e, tensor);
    stats_.decode_seconds += e->decode_seconds;
    stats_.bytes_decoded += bytes;
  }
  note_read(tensor, chunk0, chunk1);
  charge(*e);
  note_peak();
  e->holds = 1;
  Entry& ref = *e;
  entries_.emplace(key, std::move(e));
  return ref;
}

WeightBlocks DcqWeights::acquire(std::string_view name) {
  const size_t named = tensor_index(name);
  const size_t ti = resolve_duplicate(named);
  const auto& t = reader_.index().tensors[ti];
  if (last_acquired_ != SIZE_MAX) next_[last_acquired_] = ti;
  last_acquired_ = ti;
  Entry& e = get(ti, ti, t.first_chunk, t.first_chunk + t.n_chunks);
  held_list(name).push_back(ti);
  schedule_prefetch(next_[ti]);
  WeightBlocks w;
  w.info = TensorInfo{t.type, t.ne};
  w.row0 = 0;
  w.n_rows = int64_t(t.n_rows());
  w.data = std::span<const uint8_t>(e.ptr(), e.bytes);
  w.interleaved = e.interleaved;
  return w;
}

void DcqWeights::want_interleaved(std::string_view name) {
  const auto& ix = reader_.index();
  const size_t named = tensor_index(name), ti = resolve_duplicate(named);
  // Byte-identical tensors share one entry (a tied output matrix stored once with the embedding
  // table): the other name may be read by rows, which need the plain layout.
  const bool shared = named != ti || std::any_of(ix.tensors.begin(), ix.tensors.end(),
                                                 [&](const DcqTensor& t) { return t.duplicate_of == ti; });
  const auto& t = ix.tensors[ti];
  if (!shared && kernels::interleave_pays(t.type, int64_t(t.n_rows()), t.ne[0])) want_il_[ti] = true;
}

void DcqWeights::copy_rows(Entry& e, size_t tensor, uint32_t c) {
  fill_raw(c, e.data);
  e.interleaved = grouped(c);  // a row_groups chunk is copied as stored: interleaved already
  interleave_if_wanted(e, tensor);
}

void DcqWeights::interleave_if_wanted(Entry& e, size_t tensor) const {
  // In place, group by group, right after the decode (the rows are still in the caches): the
  // kernels then read the fast layout, and the budget sees one copy, as before.
  if (!want_il_[tensor] || e.interleaved || !e.data) return;
  const auto& t = reader_.index().tensors[tensor];
  kernels::interleave_rows_in_place(t.type, int64_t(t.n_rows()), t.ne[0], e.data);
  e.interleaved = true;
}

WeightBlocks DcqWeights::acquire_rows(std::string_view name, int64_t row0, int64_t row1) {
  const size_t named = tensor_index(name);
  const size_t ti = resolve_duplicate(named);
  const auto& ix = reader_.index();
  const auto& t = ix.tensors[ti];
  if (row0 < 0 || row1 <= row0 || uint64_t(row1) > t.n_rows())
    fail_input(describe() + ": rows " + std::to_string(row0) + ".." + std::to_string(row1) + " outside tensor " +
               std::string(name));
  // A pinned or resident tensor serves the rows from its whole copy; otherwise decode only the
  // chunk that holds them (one embedding row must not cost the whole table).
  if (!pinned_[ti] && !entries_.count(ti)) {
    for (uint32_t c = t.first_chunk; c < t.first_chunk + t.n_chunks; ++c) {
      const auto& ch = ix.chunks[c];
      if (uint64_t(row0) < ch.row_begin || uint64_t(row1) > ch.row_begin + ch.row_count) continue;
      Entry& e = get(ix.tensors.size() + c, ti, c, c + 1);
      held_list(name).push_back(ix.tensors.size() + c);
      const uint64_t rb = t.row_bytes();
      WeightBlocks w;
      w.info = TensorInfo{t.type, t.ne};
      w.row0 = row0;
      w.n_rows = row1 - row0;
      w.data = std::span<const uint8_t>(e.ptr() + (uint64_t(row0) - ch.row_begin) * rb,
                                        uint64_t(row1 - row0) * rb);
      return w;
    }
  }
  return WeightSource::acquire_rows(name, row0, row1);
}

bool DcqWeights::all_resident() const { return budget_ == kUnlimited; }

void DcqWeights::discard(std::string_view name) {
  const size_t ti = resolve_duplicate(tensor_index(name));
  const auto e = entries_.find(ti);
  if (e != entries_.end() && e->second->holds == 0) drop(ti);
}

void DcqWeights::release(std::string_view name) {
  const auto it = held_.find(name);
  if (it == held_.end() || it->second.empty()) return;
  const size_t key = it->second.back();
  it->second.pop_back();
  const auto e = entries_.find(key);
  if (e == entries_.end()) return;
  if (--e->second->holds == 0 && !e->second->pinned) release_order_.push_back(key);
}

namespace {

// A folder .dcq (a Hugging Face checkpoint compressed as one unit) runs exactly like the folder:
// its files are rebuilt (every checksum checked) into a private temporary folder, read by the
// same safetensors reader (HF names, q/k permutation, --vocab-from), and the folder is removed
// again; the tensor data stays reachable through the reader's memory maps.
Model load_folder_dcq(const DcqReader& r, const LoadOptions& options) {
  namespace fs = std::filesystem;
  const auto& ix = r.index();
  const auto extras = r.read_blob(ix.extras, "extras");
  const fs::path dir = fs::temp_directory_path() / ("dcq-run-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
  } cleanup{dir};
  fs::create_directory(dir);
  for (const auto& f : ix.files) {
    std::vector<uint8_t> bytes;
    bytes.reserve(f.size);
    for (uint32_t k = 0; k < f.n_segments; ++k) {
      const auto& s = ix.segments[f.first_segment + k];
      if (s.kind == DcqSegment::extras) {
        bytes.insert(bytes.end(), extras.begin() + int64_t(s.a), extras.begin() + int64_t(s.a + s.b));
        continue;
      }
      const size_t ti = ix.tensors[s.a].duplicate_of == kDcqNoDuplicate ? s.a : ix.tensors[s.a].duplicate_of;
      for (uint32_t c = 0; c < ix.tensors[ti].n_chunks; ++c) {
        const size_t ci = ix.tensors[ti].first_chunk + c, at = bytes.size();
        bytes.resize(at + ix.chunks[ci].decoded_size);
        r.decode_chunk(ci, std::span<uint8_t>(bytes).subspan(at));
      }
    }
    if (bytes.size() != f.size || xxh3(bytes) != f.xxh3)
      fail(ExitCode::integrity, r.source() + ": rebuilt file '" + f.name + "' does not match its checksum");
    AtomicFile out(dir / f.name, false);
    out.write(bytes);
    out.commit();
  }
  return load_model(dir, options);
}

}  // namespace

DcqReader open_loader_reader(const std::filesystem::path& path) {
  return detect_format(path) == ModelFormat::gguf ? DcqReader::open_gguf(path, kRowChunkBytes) : DcqReader::open(path);
}

OpenedModel open_weights(const std::filesystem::path& path, const LoadOptions& options, const MemBudget& budget,
                         bool prefetch, int threads, double read_throttle) {
  OpenedModel m;
  const ModelFormat format = detect_format(path);
  if (format == ModelFormat::dcq) {
    if (auto r = DcqReader::open(path); r.index().source_format == DcqSourceFormat::folder) {
      if (!budget.unlimited) fail_usage("--mem-budget applies to containers made from a GGUF (this one holds a folder)");
      m.owned = std::make_unique<Model>(load_folder_dcq(r, options));
      m.weights = std::make_unique<ModelWeights>(*m.owned);
      return m;
    }
    const char* zc = std::getenv("DCQ_ZERO_COPY");
    const bool zero_copy = !(zc && std::string_view(zc) == "0");
    auto w = std::make_unique<DcqWeights>(path, budget, prefetch, threads, read_throttle, zero_copy);
    if (const char* sc = std::getenv("DCQ_STREAM_COPY"); sc && *sc) w->set_copy_streamed(std::string_view(sc) != "0");
    m.dcq = w.get();
    m.weights = std::move(w);
    return m;
  }
  if (format == ModelFormat::gguf && (!budget.unlimited || read_throttle > 0)) {
    // A GGUF under a budget or on simulated slow storage goes through the same loader as a .dcq:
    // its tensors are bare raw chunks in place (views of the file, or pread into own buffers
    // under a throttle), its embedding read a row chunk at a time.
    auto w = std::make_unique<DcqWeights>(DcqReader::open_gguf(path, kRowChunkBytes), budget, prefetch, threads,
                                          read_throttle, true);
    m.dcq = w.get();
    m.weights = std::move(w);
    return m;
  }
  if (!budget.unlimited) fail_usage(path.string() + ": --mem-budget applies to .dcq containers and GGUF files only");
  if (read_throttle > 0) fail_usage(path.string() + ": --read-throttle applies to .dcq containers and GGUF files only");
  m.owned = std::make_unique<Model>(load_model(path, options));
  // All-resident: fault the weights in at load (as llama.cpp does), not during the first prompt.
  for (const Tensor& t : m.owned->tensors) populate_pages(t.data);
  m.weights = std::make_unique<ModelWeights>(*m.owned);
  return m;
}

}  // namespace dcq
