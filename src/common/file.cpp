#include "dcq/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dcq/error.hpp"

namespace dcq {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_input(path.string() + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail_input(path.string() + ": cannot stat: " + errno_text());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail_input(path.string() + ": is a directory, expected a file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail_input(path.string() + ": cannot map: " + errno_text());
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void populate_pages(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(bytes.data()) & ~(page - 1);
  const auto end = reinterpret_cast<uintptr_t>(bytes.data() + bytes.size());
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14; older kernels answer EINVAL
#endif
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0) return;
  volatile uint8_t sink = 0;  // the fallback: touch one byte per page
  for (uintptr_t p = reinterpret_cast<uintptr_t>(bytes.data()); p < end; p = (p & ~(page - 1)) + page)
    sink = sink + *reinterpret_cast<const uint8_t*>(p);
}

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  auto m = MappedFile::open(path);
  auto b = m->bytes();
  return {b.begin(), b.end()};
}

std::string read_text_file(const std::filesystem::path& path) {
  auto m = MappedFile::open(path);
  auto b = m->bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

void check_can_write(const std::filesystem::path& path, bool force) {
  std::error_code ec;
  if (!force && std::filesystem::exists(path, ec))
    fail_usage(path.string() + ": output exists (use --force to replace it)");
}

AtomicFile::AtomicFile(const std::filesystem::path& final_path, bool force) : final_(final_path) {
  check_can_write(final_path, force);
  temp_ = final_path;
  temp_ += ".tmp." + std::to_string(::getpid());
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_input(final_path.string() + ": cannot create output: " + errno_text());
  buf_.reserve(1 << 20);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const bool full = errno == ENOSPC || errno == EDQUOT;
      fail(full ? ExitCode::resource : ExitCode::bad_input,
           final_.string() + ": write failed: " + errno_text());
    }
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

void AtomicFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  offset_ += n;
  if (buf_.size() + n > buf_.capacity()) flush();
  if (n >= buf_.capacity()) {
    buf_.assign(p, p + n);
    flush();
    return;
  }
  buf_.insert(buf_.end(), p, p + n);
}

void AtomicFile::write_zeros(size_t n) {
  static const uint8_t zeros[4096] = {};
  while (n > 0) {
    const size_t k = n < sizeof zeros ? n : sizeof zeros;
    write(zeros, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail(ExitCode::resource, final_.string() + ": fsync failed: " + errno_text());
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_.c_str(), final_.c_str()) != 0)
    fail_input(final_.string() + ": cannot rename output into place: " + errno_text());
  committed_ = true;
}

}  // namespace dcq
