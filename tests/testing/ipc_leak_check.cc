#include "tests/testing/ipc_leak_check.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ipcrpc::testing {
namespace {

void AddDirectory(const std::string& dir, absl::string_view prefix, std::set<std::string>* out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (absl::StartsWith(name, prefix)) out->insert(absl::StrCat(dir, "/", name));
  }
  ::closedir(d);
}

// /proc/sysvipc/{msg,sem,shm}: one line per object after a header; the
// second column is the id.
void AddSysv(const std::string& kind, std::set<std::string>* out) {
  std::ifstream in("/proc/sysvipc/" + kind);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key, id;
    fields >> key >> id;
    if (!id.empty()) out->insert(absl::StrCat("sysv-", kind, " id ", id));
  }
}

}  // namespace

std::set<std::string> SnapshotIpcObjects() {
  std::set<std::string> objects;
  AddDirectory("/dev/shm", "", &objects);
  // This process's test directories (socket files; see temp_dir.h) and the
  // FIFO transport's directories.
  AddDirectory("/tmp", absl::StrCat("ipcrpc-test-", ::getpid(), "-"), &objects);
  AddDirectory("/tmp", "ipcrpc-fifo-", &objects);
  AddSysv("msg", &objects);
  AddSysv("sem", &objects);
  AddSysv("shm", &objects);
  return objects;
}

void IpcLeakCheck::TearDown() {
  std::set<std::string> after = SnapshotIpcObjects();
  std::vector<std::string> leaked;
  for (const std::string& o : after) {
    if (before_.count(o) == 0) leaked.push_back(o);
  }
  EXPECT_TRUE(leaked.empty()) << "IPC objects left behind: " << absl::StrJoin(leaked, ", ");
}

}  // namespace ipcrpc::testing
