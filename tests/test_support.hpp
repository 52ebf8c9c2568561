// Helpers shared by the tests: where the real data lives, temp folders, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <cstring>

#include "dcq/error.hpp"
#include "dcq/model.hpp"

#include <sys/wait.h>
#include <unistd.h>

namespace dcq::test {

// The shared real data: $DCQ_TEST_DATA, else the CMake cache variable DCQ_TEST_DATA.
inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("DCQ_TEST_DATA"); env && *env) return env;
  return DCQ_TEST_DATA_DEFAULT;
}
inline bool data_available() { return std::filesystem::exists(data_dir() / "models" / "stories260K"); }
inline std::filesystem::path model_path(const std::string& rel) { return data_dir() / "models" / rel; }
inline std::filesystem::path source_dir() { return DCQ_SOURCE_DIR; }

// A fresh empty folder for one test, removed at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "dcq";
    for (auto& c : name) if (c == '/') c = '_';
    path_ = std::filesystem::temp_directory_path() / ("dcq-test-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
inline void spit(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// The GGUFs in the shared data: llama.cpp's stories260K files and the synth256 files.
inline constexpr const char* kStoriesTypes[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
                                                "Q5_0", "Q5_1", "IQ4_NL", "Q4_K_M", "Q5_K_M", "Q3_K_M"};
inline constexpr const char* kSynthTypes[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                              "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "IQ4_NL",
                                              "IQ4_XS", "Q4_K_M"};
inline std::filesystem::path stories_gguf(const std::string& type) {
  return model_path("stories260K/stories260K-" + type + ".gguf");
}
inline std::filesystem::path synth_gguf(const std::string& type) {
  return model_path("synth256/synth256-" + type + ".gguf");
}
inline std::vector<std::filesystem::path> all_shared_ggufs() {
  std::vector<std::filesystem::path> v;
  for (auto t : kStoriesTypes) v.push_back(stories_gguf(t));
  for (auto t : kSynthTypes) v.push_back(synth_gguf(t));
  return v;
}

// Same tensors in the same order: names, types, shapes and bytes.
inline void expect_same_tensors(const Model& a, const Model& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    SCOPED_TRACE(y.name);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.ne, y.ne);
    ASSERT_EQ(x.data.size(), y.data.size());
    EXPECT_EQ(0, std::memcmp(x.data.data(), y.data.data(), x.data.size()));
  }
}

// Expects f() to throw Error(bad_input) whose message names `file` (and holds `fragment`).
template <class F>
void expect_bad_input(F&& f, const std::string& file, const std::string& fragment = "") {
  try {
    f();
    ADD_FAILURE() << "no error for " << file;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    if (!fragment.empty()) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }
}

struct CliResult {
  int exit_code;
  std::string out;
  std::string err;
};

// Runs the dcq binary with a shell-quoted argument string; captures stdout and stderr.
inline CliResult run_dcq(const std::string& args) {
  const auto tmp = std::filesystem::temp_directory_path();
  const auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::rand());
  const auto out = tmp / ("dcq-out-" + tag), err = tmp / ("dcq-err-" + tag);
  const std::string cmd = std::string(DCQ_BINARY) + " " + args + " >" + out.string() + " 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  auto read = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  CliResult r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read(out), read(err)};
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

}  // namespace dcq::test

#define DCQ_REQUIRE_DATA()                                                                    \
  do {                                                                                        \
    if (!::dcq::test::data_available())                                                       \
      GTEST_SKIP() << "shared test data not found at " << ::dcq::test::data_dir()             \
                   << " (set DCQ_TEST_DATA)";                                                 \
  } while (0)
