#pragma once
#include <string>
namespace dcq {
// The dcq release, "MAJOR.MINOR.PATCH" (from CMake's project version).
std::string version();
}  // namespace dcq
