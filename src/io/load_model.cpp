#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "io/readers.hpp"

namespace dcq {
namespace {

std::array<uint8_t, 16> read_head(const std::filesystem::path& path, size_t* got) {
  std::array<uint8_t, 16> head{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_input(path.string() + ": cannot open: " + std::strerror(errno));
  const ssize_t n = ::read(fd, head.data(), head.size());
  ::close(fd);
  *got = n > 0 ? static_cast<size_t>(n) : 0;
  return head;
}

}  // namespace

ModelFormat detect_format(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail_input(path.string() + ": no such file or directory");
  if (std::filesystem::is_directory(path, ec)) {
    if (std::filesystem::exists(path / "model.safetensors.index.json") ||
        std::filesystem::exists(path / "model.safetensors"))
      return ModelFormat::safetensors;
    fail_input(path.string() + ": folder holds neither model.safetensors nor model.safetensors.index.json");
  }
  size_t n = 0;
  const auto head = read_head(path, &n);
  std::span<const uint8_t> h(head.data(), n);
  if (looks_like_gguf(h)) return ModelFormat::gguf;
  if (n >= 4 && h[0] == 'D' && h[1] == 'C' && h[2] == 'Q' && h[3] == '1') return ModelFormat::dcq;
  // safetensors: u64 header length, then a JSON object.
  if (n >= 9 && h[8] == '{') return ModelFormat::safetensors;
  const auto ext = path.extension().string();
  if (ext == ".bin") return ModelFormat::llama2c;
  if (ext == ".safetensors") return ModelFormat::safetensors;
  if (ext == ".gguf") return ModelFormat::gguf;  // the GGUF reader names what is wrong
  fail_input(path.string() + ": unrecognised format (not GGUF, safetensors, llama2.c or .dcq)");
}

Model load_model(const std::filesystem::path& path, const LoadOptions& options) {
  switch (detect_format(path)) {
    case ModelFormat::gguf: return read_gguf(path);
    case ModelFormat::safetensors: return io::read_safetensors_model(path, options);
    case ModelFormat::llama2c: return io::read_llama2c_model(path, options);
    case ModelFormat::dcq:
      fail_input(path.string() + ": is a .dcq container; this command needs a GGUF, safetensors or llama2.c input");
  }
  fail_input(path.string() + ": unrecognised format");
}

}  // namespace dcq
