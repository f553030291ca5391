#include "tests/testing/temp_dir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace ipcrpc::testing {

ScopedTempDir::ScopedTempDir() {
  // The pid in the name lets a leak check tell this process's directories
  // from those of tests running at the same time elsewhere.
  std::string tmpl = absl::StrCat(kTempDirPrefix, ::getpid(), "-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ::perror("mkdtemp");
    ::abort();
  }
  path_ = tmpl;
}

ScopedTempDir::~ScopedTempDir() {
  ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
}

std::string ScopedTempDir::File(absl::string_view name) const {
  return absl::StrCat(path_, "/", name);
}

}  // namespace ipcrpc::testing
