// Temporary: readers that are being written. Replaced by safetensors.cpp and llama2c.cpp.
#include "dcq/error.hpp"
#include "io/readers.hpp"

namespace dcq::io {
Model read_safetensors_model(const std::filesystem::path& path, const LoadOptions&) {
  fail_input(path.string() + ": safetensors input is not supported yet");
}
Model read_llama2c_model(const std::filesystem::path& path, const LoadOptions&) {
  fail_input(path.string() + ": llama2.c input is not supported yet");
}
}  // namespace dcq::io
