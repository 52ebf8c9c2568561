// The one error type of dcq. Every failure a user can meet is thrown as dcq::Error with a stable
// exit code (docs/cli.md) and a one-line message naming the file and the problem; `main` catches
// it once and exits with that code.
#pragma once

#include <stdexcept>
#include <string>

namespace dcq {

enum class ExitCode : int {
  ok = 0,
  internal = 1,   // a bug in dcq: an invariant did not hold
  usage = 2,      // bad flag or flag value
  bad_input = 3,  // missing, unreadable, malformed or unsupported input
  integrity = 4,  // checksum mismatch or corruption detected
  resource = 5,   // memory budget impossible, disk full, allocation refused
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

[[noreturn]] inline void fail(ExitCode code, const std::string& message) { throw Error(code, message); }
[[noreturn]] inline void fail_input(const std::string& message) { throw Error(ExitCode::bad_input, message); }
[[noreturn]] inline void fail_usage(const std::string& message) { throw Error(ExitCode::usage, message); }

// Internal invariant: a failure is a dcq bug, reported with exit code 1.
#define DCQ_ASSERT(cond)                                                                       \
  do {                                                                                         \
    if (!(cond))                                                                               \
      ::dcq::fail(::dcq::ExitCode::internal,                                                   \
                  std::string("internal error: ") + #cond + " at " + __FILE__ + ":" +          \
                      std::to_string(__LINE__));                                               \
  } while (0)

}  // namespace dcq
