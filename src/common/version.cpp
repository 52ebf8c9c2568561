#include "dcq/version.hpp"
namespace dcq {
std::string version() { return DCQ_VERSION_STRING; }
}  // namespace dcq
