// Files: read-only memory maps, whole-file reads, and outputs that appear under their final
// name only when complete (written to a temporary sibling, then renamed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dcq {

// A read-only mapping of a whole file. Throws Error(bad_input) naming the file when it cannot
// be opened. An empty file maps to an empty span.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Faults the pages of `bytes` (part of a read-only mapping) in now, so that the first use does not
// pay for page-table set-up: llama.cpp maps models with MAP_POPULATE for the same reason, and the
// engine's first prompt would otherwise spend ~10 % of its time in page faults (F32 110M).
// MADV_POPULATE_READ where the kernel has it (Linux 5.14), else one read per page.
void populate_pages(std::span<const uint8_t> bytes);

std::vector<uint8_t> read_file(const std::filesystem::path& path);
std::string read_text_file(const std::filesystem::path& path);

// Writes to "<final>.tmp.<pid>" and renames onto the final name in commit(); destroying an
// uncommitted file removes the temporary. Refuses to replace an existing file unless `force`.
class AtomicFile {
 public:
  AtomicFile(const std::filesystem::path& final_path, bool force);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::span<const uint8_t> s) { write(s.data(), s.size()); }
  void write_zeros(size_t n);
  uint64_t offset() const { return offset_; }
  void commit();
  const std::filesystem::path& path() const { return final_; }

 private:
  void flush();
  std::filesystem::path final_, temp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::vector<uint8_t> buf_;
  bool committed_ = false;
};

// Refuses (usage error) when `path` exists and `force` is not set.
void check_can_write(const std::filesystem::path& path, bool force);

}  // namespace dcq
