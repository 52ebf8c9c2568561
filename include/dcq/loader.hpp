// Running from a .dcq container: a WeightSource that decodes tensors on demand, chunk by chunk,
// checking every chunk's checksums as it is decoded, and keeps decoded tensors in a cache that
// never exceeds a memory budget (docs/loader.md explains the policy). open_weights() is the one
// place where a command turns a path into weights: a .dcq gets the lazy source, anything else
// the in-memory Model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <future>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcq/container.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/model.hpp"
#include "dcq/weights.hpp"

namespace dcq {

// --mem-budget: "" (unlimited), a byte count with an optional K/M/G suffix (powers of 1024), or a
// percentage of the decoded weight size ("50%"). Throws Error(usage) on anything else.
struct MemBudget {
  bool unlimited = true;
  bool percent = false;
  double value = 0;  // bytes, or percent when `percent`
  static MemBudget parse(const std::string& text);
  uint64_t resolve(uint64_t decoded_weight_bytes) const;  // UINT64_MAX when unlimited
};

struct LoaderStats {
  uint64_t hits = 0, misses = 0;
  uint64_t bytes_decoded = 0;
  double decode_seconds = 0;
  uint64_t resident_bytes = 0, peak_resident_bytes = 0;
  uint64_t budget_bytes = 0;       // UINT64_MAX when unlimited
  uint64_t pinned_bytes = 0;       // capacity given to tensors that are never evicted
  uint64_t weight_bytes = 0;       // decoded size of all (distinct) tensors
  uint64_t min_working_set = 0;    // smallest budget that runs
  uint64_t prefetched = 0;         // misses served by the prefetch thread (decoded ahead)
  uint64_t bytes_read = 0;         // stored bytes of the decoded chunks
  double read_wait_seconds = 0;    // time spent waiting for the simulated device (--read-throttle)
  double prefetch_wait_seconds = 0;  // time the forward pass waited for a prefetch to finish
  uint64_t zero_copy_acquires = 0;   // misses served straight from the mmapped file (raw chunks)
  uint64_t zero_copy_bytes = 0;      // their bytes (counted against the budget like decoded ones)
  double verify_seconds = 0;         // checksumming zero-copy chunks (once per chunk, first use)
  uint64_t stream_copy_bytes = 0;    // of those, streamed rows pread into reused buffers (not views)
  uint64_t view_block = 0;           // streamed views mapped and charged in blocks of this size (map_huge), or 0
  bool huge_mapped = false;          // ... with 2 MiB page-table entries (the file's page cache in 2 MiB folios)
  // madvise calls giving mapped file pages back (views leaving, stored bytes after a decode, view
  // blocks flushed): each is a TLB shootdown interrupting the other compute threads.
  uint64_t unmap_calls = 0;
  double unmap_seconds = 0;         // ... and the time they took (on the calling thread)
  uint64_t view_blocks_mapped = 0;  // view blocks charged while not mapped: each costs a fault (one per 2 MiB)
  nlohmann::json to_json() const;
};

// --read-throttle MB/s: simulated slow storage (paper 2's edge-device flash). Reading a chunk's
// stored bytes costs stored / rate seconds on one shared "device" clock (reads queue behind each
// other, as on one flash channel), so a smaller stored chunk is cheaper to fetch. 0: no throttle.
// Throws Error(usage) on a negative, non-numeric or non-finite value.
double parse_read_throttle(const std::string& text);  // bytes per second; 0 = off

// The speed-adaptive plan (paper 1; docs/loader.md "Plan"): which tensors stay decoded in memory
// (pinned) and which are decoded again on every pass (streamed), chosen from a decode-speed model
// measured on this machine so that the pinned bytes save the most decode time per byte of budget.
// The block in which streamed zero-copy views are mapped and charged (DcqWeights::map_huge):
// 2 MiB (one page-table entry maps a block) when the kernel offers transparent huge pages on
// request (THP "always" or "madvise"), else 0 (views charged by their bytes, 4 KiB pages).
// DCQ_HUGE_MAP=0 gives 0 (measurement); DCQ_VIEW_BLOCK_KIB=N gives N KiB blocks without huge
// pages (tests: the same block accounting on a model too small for 2 MiB blocks).
uint64_t view_block_bytes();

struct PlanOptions {
  MemBudget budget;
  int threads = 1;                 // decoder/compute threads (chunks of a tensor decode in parallel)
  double read_throttle = 0;        // bytes/s of simulated storage; 0: none
  bool measure_compute = false;    // also time a matrix-vector product (for the tok/s prediction)
  bool measured_speeds = true;     // false: the codec's modelled speeds (deterministic; tests)
  bool zero_copy = true;           // a tensor stored as one raw chunk costs no decode (served from the map)
  // Streamed zero-copy tensors are mapped and charged in blocks of this many bytes
  // (view_block_bytes(); 0: by their bytes): the window counts their block extent. The plan uses
  // blocks only when the budget holds the smallest working set with them plus two blocks.
  uint64_t view_block = 0;
  // The plan is for `dcq plan --repack`, which stores every streamed tensor raw: the window
  // counts them as the zero-copy views they will be.
  bool for_repack = false;
};

struct TensorPlan {
  std::string name;
  std::string encoding;            // dominant "transform/codec" of its chunks
  uint64_t bytes = 0;              // decoded
  uint64_t stored_bytes = 0;       // in the container
  uint64_t bytes_per_pass = 0;     // decoded bytes the engine touches per token (embedding: one row's chunk)
  double decode_seconds = 0;       // decoding bytes_per_pass, one thread, measured model
  bool pinned = false;
  bool row_access = false;         // read by rows (the embedding table)
  bool zero_copy = false;          // one raw chunk: served from the mapped file, nothing decoded
};

struct LoadPlan {
  std::vector<TensorPlan> tensors;        // distinct tensors, container order
  std::vector<bool> pinned_by_index;      // per container tensor index (duplicates: false)
  uint64_t budget_bytes = 0;              // UINT64_MAX when unlimited
  uint64_t weight_bytes = 0, stored_bytes = 0;
  uint64_t min_working_set = 0;           // smallest budget that runs (nothing pinned)
  uint64_t working_set = 0;               // streaming window this plan needs beside the pinned tensors
  uint64_t view_block = 0;                // PlanOptions::view_block if this plan uses it, else 0
  uint64_t pinned_bytes = 0;
  uint64_t streamed_bytes_per_token = 0;  // decoded again on every token
  uint64_t streamed_stored_per_token = 0; // read again on every token (throttle)
  int threads = 1;
  double decode_gbps_one_thread = 0;      // measured over the streamed tensors' encodings (all when none)
  double decode_seconds_per_token = 0;    // streamed, parallel over `threads` chunks
  double read_seconds_per_token = 0;      // streamed stored bytes / throttle
  double compute_seconds_per_token = 0;   // measured matmul time of all weights (0 if not measured)
  // Streamed views in blocks: modelled flushes (madvise + TLB shootdown) and blocks mapped again
  // per token, and their cost (docs/loader.md, "Plan": the pin prefix).
  double view_flushes_per_token = 0, view_blocks_per_token = 0, view_seconds_per_token = 0;
  double predicted_tok_s = 0;             // 1 / (compute + decode + read + views): no overlap
  double resident_tok_s = 0;              // 1 / compute
  double limit_tok_s = 0;                 // 1 / max(decode, read, compute): perfect overlap, the ceiling
  // Repack recommendation: storing the streamed tensors raw (no entropy coding) leaves a checksum
  // and a copy per token. Predicted speed if they were, and the file growth it costs.
  std::vector<std::string> store_raw;     // streamed whole-tensor reads, most decode time first
  double raw_gbps_one_thread = 0;         // measured checksum + copy speed
  double predicted_tok_s_if_raw = 0;
  uint64_t raw_extra_file_bytes = 0;
  nlohmann::json to_json(bool per_tensor = true) const;
};

// Plans for an open container. Throws Error(resource) when the budget is below the smallest
// working set (the message gives it).
LoadPlan make_plan(const DcqReader& reader, const PlanOptions& options);

// Repack for a plan (paper 1: "keep compressed with a fast codec" at its extreme): writes a copy
// of `input` whose chunks of the tensors named in `store_raw` are stored raw (no entropy coding,
// so streaming them costs a checksum and a copy), every other payload copied byte for byte. The
// decoded bytes, hence the rebuilt source and its checksum, are unchanged. Returns a report
// {"input","output","input_bytes","output_bytes","raw_tensors","raw_chunks"}.
// `one_chunk`: a chosen tensor becomes one raw chunk (served zero-copy from the mmap); false keeps
// its row chunks (the all-raw slow-storage baseline, where an embedding row must stay one chunk).
// `interleave` (with one_chunk): a chosen Q8_0 / Q4_0 tensor of >= 16 rows other than
// token_embd.weight is stored with transform row_groups, its one raw stream being the rows in
// kernels::interleave_rows' layout; the file is then format version 3. The report adds
// "row_group_chunks": the row_groups chunks of the output (re-encoded or copied).
// `row_chunk_bytes` (> 0): token_embd.weight, when it is read by rows (the model has an
// output.weight) and not in `store_raw`, is stored raw in chunks of about this many bytes (whole
// rows): each token reads one small chunk for its row with pread. The report adds "row_chunks":
// the chunks written so.
nlohmann::json repack_raw(const std::filesystem::path& input, const std::filesystem::path& output,
                          const std::vector<std::string>& store_raw, bool force, bool one_chunk = true,
                          bool interleave = false, uint64_t row_chunk_bytes = 0);
// What `dcq plan --repack` passes as row_chunk_bytes when its plan streams the embedding: a token
// then reads one 16 KiB raw chunk (~5 us) instead of decoding a 256 KiB one (~150 us on the 110M
// Q4_0), for the few % the table had saved by compression (docs/loader.md, "Repack").
inline constexpr uint64_t kRowChunkBytes = 16u << 10;

// Lazy weights of a lossless .dcq made from a GGUF.
class DcqWeights final : public WeightSource {
 public:
  // Opens and validates the container, reads the GGUF metadata kept in it. Throws Error(bad_input)
  // if the source was not a GGUF, Error(resource) if the budget is below the smallest working set.
  // With `prefetch`, a worker thread decodes the tensors expected next (following the order seen
  // on the last pass, up to prefetch_depth() ahead) while the current one computes, each one's
  // chunks in parallel on `threads` decoder threads of its own, when the budget has room for them.
  // Off by default (docs/loader.md has the numbers).
  // `threads` decode the chunks of one tensor in parallel (on the forward pass's thread).
  // `read_throttle` (bytes/s, 0: off) charges each decoded chunk's stored bytes to a simulated
  // slow device (see parse_read_throttle). Which tensors are pinned comes from make_plan().
  // `zero_copy`: a tensor (or embedding chunk) stored as one raw chunk (transform none, codec raw,
  // rows aligned for the type) is served straight from the mmapped file after its checksums are
  // checked once (first use); its mapped bytes count against the budget while it is in the cache
  // and its pages are dropped from the process (madvise DONTNEED) when it is evicted. Off under
  // `read_throttle` (there every byte goes through the simulated device into own buffers).
  DcqWeights(const std::filesystem::path& path, const MemBudget& budget = {}, bool prefetch = false,
             int threads = 1, double read_throttle = 0, bool zero_copy = true);
  // The same over an opened reader: a .dcq, or a GGUF seen as bare raw chunks (DcqReader::open_gguf).
  DcqWeights(DcqReader reader, const MemBudget& budget, bool prefetch, int threads, double read_throttle,
             bool zero_copy);
  ~DcqWeights() override;

  const GgufValue* find_kv(std::string_view key) const override { return meta_.find_kv(key); }
  std::optional<TensorInfo> info(std::string_view name) const override;
  WeightBlocks acquire(std::string_view name) override;
  WeightBlocks acquire_rows(std::string_view name, int64_t row0, int64_t row1) override;
  void release(std::string_view name) override;
  // Without a budget every decoded tensor stays: the engine repacks Q8_0 / Q4_0 / Q4_K / Q6_K
  // matrices as it does for a GGUF and discards the decoded copy (resident once, not twice).
  bool all_resident() const override;
  void discard(std::string_view name) override;
  // Decoded (and copied) tensors of these names are interleaved in place once decoded.
  void want_interleaved(std::string_view name) override;
  std::string describe() const override { return reader_.source(); }
  // Metadata only (tensors have empty data): enough for the tokenizer.
  const Model* model() const override { return &meta_; }

  LoaderStats stats() const {
    LoaderStats s = stats_;
    s.unmap_calls = unmap_calls_.load(std::memory_order_relaxed);
    s.unmap_seconds = unmap_seconds_;
    return s;
  }
  const LoadPlan& plan() const { return plan_; }
  // How many tensors the prefetcher decodes ahead (>= 1; default 2; only with `prefetch`).
  void set_prefetch_depth(int depth) { pf_depth_ = depth < 1 ? 1 : depth; }
  int prefetch_depth() const { return pf_depth_; }
  // Streamed (unpinned) tensors stored as one raw chunk: copied into reused buffers with pread()
  // (true) or served as views of the mapping whose pages are dropped on eviction and faulted in
  // again on the next token (false). Default: copied with prefetch (the worker thread does the
  // copy beside the compute), views without (a pread on the engine's thread is serial, while the
  // faults of a view are spread over the compute threads); docs/loader.md has the measurements.
  // DCQ_STREAM_COPY=0|1 in open_weights overrides. Set before the first acquire. Pinned
  // zero-copy tensors are views either way.
  void set_copy_streamed(bool on) { copy_streamed_ = on; }

 private:
  struct Entry;
  size_t tensor_index(std::string_view name) const;  // throws when missing
  size_t resolve_duplicate(size_t t) const;
  Entry& get(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1);
  // `buffer`: the new entry takes a buffer of `bytes` (a free one of that size then counts as the
  // room); false for a view of the mapping, which needs the room itself.
  // `tensor`, `tensor_bytes`: what the room is for (the error message names it).
  void make_room(uint64_t bytes, size_t tensor, uint64_t tensor_bytes, bool buffer = true);
  std::vector<size_t>& held_list(std::string_view name);  // held_[name], created when missing
  void drop(size_t key);
  // pread of n bytes at file offset `off` (chunk c's `what`, for the error message).
  void read_at(uint64_t off, uint8_t* dst, uint64_t n, uint32_t c, const char* what) const;
  bool flush_released_views();  // drops every released 2 MiB view, then flush_blocks(); false if nothing
  bool try_make_room(uint64_t bytes, bool buffer = true);
  // `cancel`: checked between chunks (a cancelled prefetch stops early; its buffer is discarded).
  void decode_into(Entry& e, uint32_t chunk0, uint32_t chunk1, kernels::ThreadPool* pool,
                   const std::atomic<bool>* cancel = nullptr) const;
  Entry* take_prefetch(size_t tensor);  // the prefetched entry of `tensor`, or nullptr
  void schedule_prefetch(size_t tensor);
  void cancel_prefetch();             // every queued prefetch
  bool cancel_last_prefetch();        // the furthest ahead; false when none

  // --read-throttle: reserve device time for the chunks' reads; wait for one of them.
  std::vector<std::chrono::steady_clock::time_point> issue_reads(uint32_t chunk0, uint32_t chunk1) const;
  void wait_read(std::chrono::steady_clock::time_point done) const;
  void note_read(size_t tensor, uint32_t chunk0, uint32_t chunk1);  // chunk0 == chunk1: whole tensor

  // Zero-copy: the rows of chunk c inside the mapping when it can be served without a copy.
  const uint8_t* raw_rows(uint32_t c) const;
  // The rows of one zero-copy chunk for entry `key` of `tensor`, or null.
  const uint8_t* zero_copy_view(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1) const;
  bool grouped(uint32_t c) const;  // chunk c stores row_groups (interleaved rows)
  void verify_once(uint32_t c);  // both checksums of a zero-copy chunk, first use only

  DcqReader reader_;
  Model meta_;
  LoadPlan plan_;
  double read_throttle_ = 0;
  double unmap_seconds_ = 0;  // LoaderStats::unmap_seconds (flush_blocks, on the engine's thread)
  mutable std::atomic<uint64_t> unmap_calls_{0};  // LoaderStats::unmap_calls (decoding threads add too)
  mutable std::mutex io_mu_;             // the simulated device's clock (chunks decode in parallel)
  mutable std::chrono::steady_clock::time_point io_free_at_{};
  mutable double io_wait_total_ = 0;
  // Transparent hashing: looked up by string_view without building a string (every acquire).
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> by_name_;
  std::span<const uint8_t> map_;                        // the whole mapped file
  // The file mapped again, 2 MiB aligned under MADV_HUGEPAGE, for the streamed zero-copy views
  // (map_huge; empty when off). Such a view occupies whole 2 MiB blocks: the budget is charged per
  // mapped block (block_refs_: cached views per block), not per view.
  std::span<const uint8_t> huge_;
  std::vector<uint32_t> block_refs_;
  std::vector<uint8_t> block_pending_;  // per block: unused by views, still mapped and charged
  std::vector<size_t> pending_;         // those blocks
  // Released views charged by their bytes, still mapped and charged until the next flush.
  std::vector<std::pair<const uint8_t*, uint64_t>> pending_views_;
  uint64_t pending_view_extent_ = 0;    // their folio-widened ranges, summed
  bool flush_views();                   // gives them back (part of flush_blocks)
  // Pinned tensors' buffers: slots of one 2 MiB-page mapping (make_arena), else their own.
  void make_arena();
  uint8_t* buffer_for(Entry& e, size_t key, size_t tensor);  // e.bytes set; marks e.arena
  uint8_t* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
  std::vector<uint64_t> arena_at_;      // per tensor: offset of its slot, UINT64_MAX if none
  bool flush_blocks();                  // gives the pending blocks back; false when none
  uint64_t block_ = 0;  // plan_.view_block once huge_ is mapped
  std::pair<size_t, size_t> blocks_of(const uint8_t* view, uint64_t n) const;  // [first, end) blocks
  void map_huge();
  const uint8_t* view_for(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1, bool& huge) const;
  uint64_t cost(const uint8_t* view, uint64_t bytes, bool huge) const;  // budget an entry needs
  void charge(const Entry& e);    // into resident_bytes
  void uncharge(const Entry& e);  // out of it; its mapped pages given back
  std::vector<const uint8_t*> zc_rows_;                 // per chunk: raw_rows() when zero-copy is on
  std::unique_ptr<std::atomic<bool>[]> zc_verified_;    // per chunk: checksums checked (worker or engine)
  std::mutex verify_mu_;                                // verify_total_ (also the prefetch worker's)
  double verify_total_ = 0;
  // Buffers of evicted entries, kept (pages faulted once) for the next entry of the same size:
  // under a budget the streamed tensors cycle through a few sizes, so the window's buffers are
  // reused every token instead of mapped, faulted and unmapped again. Counted in the budget
  // (resident + free_bytes_ <= budget); freed first when room is needed for another size.
  std::vector<std::pair<uint8_t*, uint64_t>> free_;  // owned (alloc_buffer), oldest first
  uint64_t free_bytes_ = 0;
  uint8_t* take_buffer(uint64_t bytes);               // a free buffer of exactly `bytes`, or a new one
  void give_buffer(uint8_t* p, uint64_t bytes);       // keep for reuse (under a budget) or free
  bool has_free(uint64_t bytes) const;
  bool free_one();                                    // frees the oldest free buffer; false when none
  bool drop_same_size(uint64_t bytes);                // evicts a released entry with a buffer of `bytes`
  void note_peak();
  // Streamed zero-copy tensors copied into (reused) own buffers with pread() instead of served as
  // views of the mapping: no page-table work per token (docs/loader.md, "Streaming raw tensors").
  bool copy_streamed_ = false;
  int fd_ = -1;                                       // the container, for pread (copy_streamed_)
  bool copy_streamed(size_t key, size_t tensor, uint32_t chunk0, uint32_t chunk1) const;
  void fill_raw(uint32_t c, uint8_t* dst);            // first use: checksums; then pread of the rows
  std::vector<bool> pinned_;  // per tensor index
  std::vector<bool> want_il_;  // per tensor index: want_interleaved() and the kernels agree
  void interleave_if_wanted(Entry& e, size_t tensor) const;
  void copy_rows(Entry& e, size_t tensor, uint32_t c);  // fill_raw into e.data, interleaved as wanted
  // Keys: tensor index for whole tensors; tensors.size() + chunk index for single chunks.
  std::unordered_map<size_t, std::unique_ptr<Entry>> entries_;
  std::vector<size_t> release_order_;  // unpinned, unheld keys, oldest release first
  std::unordered_map<std::string, std::vector<size_t>, NameHash, std::equal_to<>> held_;  // name -> keys acquired, not released
  uint64_t budget_ = 0;
  LoaderStats stats_;
  std::unique_ptr<kernels::ThreadPool> pool_;  // null with one thread
  // Prefetch pipeline: up to pf_depth_ tensors predicted next are decoded ahead, in order, by one
  // worker thread that spreads each tensor's chunks over its own decoder pool (pf_pool_, idle
  // while nothing is queued). A queued tensor's bytes count as resident from the moment it is
  // scheduled, so the budget holds; only the engine's thread touches the cache and the queue's
  // order, the worker only fills the buffers it was given.
  struct PrefetchJob;
  bool prefetch_ = false;
  int pf_depth_ = 2;
  std::vector<size_t> next_;          // per tensor: the tensor acquired after it last time
  size_t last_acquired_ = SIZE_MAX;
  std::deque<std::unique_ptr<PrefetchJob>> pf_queue_;   // engine thread: scheduled, oldest first
  std::unique_ptr<kernels::ThreadPool> pf_pool_;        // the worker's decoder pool (threads > 1)
  std::mutex pf_mu_;                                    // pf_todo_, pf_stop_
  std::condition_variable pf_cv_;
  std::deque<PrefetchJob*> pf_todo_;                    // handed to the worker, not yet started
  bool pf_stop_ = false;
  std::thread pf_thread_;
  void prefetch_worker();
  void finish_job(PrefetchJob& job);  // waits for a job, gives its memory back (cancel/mispredict)
};

// What the loader reads for `path`: a .dcq as it is, a GGUF as bare raw chunks in place
// (DcqReader::open_gguf, the embedding in kRowChunkBytes row chunks). For `dcq plan`, `bench memory`.
DcqReader open_loader_reader(const std::filesystem::path& path);

// A model opened for inference: weights plus the metadata model the tokenizer reads.
struct OpenedModel {
  std::unique_ptr<Model> owned;            // the in-memory model (not for a .dcq)
  std::unique_ptr<WeightSource> weights;
  DcqWeights* dcq = nullptr;               // set when weights come from a .dcq (for statistics)
  // Whole model, or metadata only for a .dcq: what Tokenizer::from_model needs.
  const Model& model() const { return *weights->model(); }
};
// Zero-copy is on unless the environment sets DCQ_ZERO_COPY=0 (for measuring the copy path);
// DCQ_STREAM_COPY=0|1 overrides how streamed raw tensors are served (DcqWeights::set_copy_streamed).
OpenedModel open_weights(const std::filesystem::path& path, const LoadOptions& options, const MemBudget& budget = {},
                         bool prefetch = false, int threads = 1, double read_throttle = 0);

}  // namespace dcq
