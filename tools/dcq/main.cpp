// dcq: one binary, one subcommand per cmd_*.cpp. Errors are dcq::Error, caught here once and
// turned into one line on stderr and the exit code of docs/cli.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <new>

#include "cli.hpp"
#include "dcq/error.hpp"
#include "dcq/version.hpp"

int main(int argc, char** argv) {
  // Logs and progress go to stderr; stdout is reserved for results (text or --json).
  auto logger = spdlog::stderr_color_mt("dcq");
  logger->set_pattern("%v");
  spdlog::set_default_logger(logger);

  CLI::App app{"dcq: double compression for quantized LLMs, and a CPU engine that runs from it"};
  app.set_version_flag("--version", "dcq " + dcq::version());
  app.require_subcommand(1);
  dcq::cli::add_all_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dcq: usage error: %s\n", e.what());
    return static_cast<int>(dcq::ExitCode::usage);
  } catch (const dcq::Error& e) {
    std::fprintf(stderr, "dcq: error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "dcq: error: out of memory\n");
    return static_cast<int>(dcq::ExitCode::resource);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcq: internal error: %s\n", e.what());
    return static_cast<int>(dcq::ExitCode::internal);
  }
  return 0;
}
