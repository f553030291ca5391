// ipcrpc test support: a short-lived private directory for socket files.
//
// Bazel's TEST_TMPDIR is too long for a unix socket path (108 bytes), so
// tests make their sockets in a fresh /tmp/ipcrpc-test-<pid>-XXXXXX directory
// that this object removes, with everything in it, when destroyed.

#ifndef IPCRPC_TESTS_TESTING_TEMP_DIR_H_
#define IPCRPC_TESTS_TESTING_TEMP_DIR_H_

#include <string>

#include "absl/strings/string_view.h"

namespace ipcrpc::testing {

inline constexpr char kTempDirPrefix[] = "/tmp/ipcrpc-test-";

class ScopedTempDir {
 public:
  ScopedTempDir();  // aborts the test binary if /tmp is unusable
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(absl::string_view name) const;

 private:
  std::string path_;
};

}  // namespace ipcrpc::testing

#endif  // IPCRPC_TESTS_TESTING_TEMP_DIR_H_
