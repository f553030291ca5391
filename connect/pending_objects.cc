#include "connect/pending_objects.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ipcrpc {
namespace {

constexpr char kFifoDirPrefix[] = "ipcrpc-fifo-";

enum class DirState { kUsable, kGone, kUnsafe };

// Creates the directory if needed and checks that it is safe to use: a real
// directory, owned by this user, that nobody else can enter. kGone: it was
// removed again before it could be checked.
DirState MakeUsableDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return DirState::kUnsafe;
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) return errno == ENOENT ? DirState::kGone : DirState::kUnsafe;
  return S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0
             ? DirState::kUsable
             : DirState::kUnsafe;
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

void RemoveQueue(int id) {
  msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) < 0) return;  // already gone
  if (ds.msg_perm.cuid != ::geteuid() || (ds.msg_perm.mode & 0777) != 0600) return;
  ::msgctl(id, IPC_RMID, nullptr);
}

void RemoveFifoDir(const std::string& dir) {
  std::string base = dir.substr(dir.rfind('/') + 1);
  struct stat st;
  if (dir.empty() || dir[0] != '/' || !absl::StartsWith(base, kFifoDirPrefix) ||
      ::lstat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return;
  }
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string path = absl::StrCat(dir, "/", e->d_name);
      struct stat entry;
      if (::lstat(path.c_str(), &entry) == 0 && S_ISFIFO(entry.st_mode)) ::unlink(path.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// This process's PID namespace (the inode number of /proc/self/ns/pid), so
// that a record's pid is only ever judged in the namespace it was taken in:
// containers that share /tmp and the IPC namespace but not PIDs must not
// sweep each other's live negotiations. "0" if it cannot be read.
std::string PidNamespace() {
  struct stat st;
  if (::stat("/proc/self/ns/pid", &st) != 0) return "0";
  return absl::StrCat(st.st_ino);
}

}  // namespace

std::string PendingObjectsDir() {
  const char* dir = std::getenv("IPCRPC_PENDING_DIR");
  if (dir != nullptr && dir[0] != '\0') return dir;
  return absl::StrCat("/tmp/ipcrpc-pending-", ::geteuid());
}

PendingObjectRecord::PendingObjectRecord() {
  static std::atomic<uint64_t> serial{0};
  const std::string dir = PendingObjectsDir();
  // Another record's destructor (in this process or another) may remove the
  // directory, empty for a moment, between our mkdir and lstat or open: then
  // they fail with ENOENT and we make the directory again. Each round needs a
  // removal to fall exactly into that window, so a few rounds are plenty;
  // the bound only keeps a pathological race from spinning for ever.
  for (int attempt = 0; attempt < 64; ++attempt) {
    DirState state = MakeUsableDir(dir);
    if (state == DirState::kGone) continue;
    if (state == DirState::kUnsafe) return;
    std::string path =
        absl::StrCat(dir, "/", PidNamespace(), "-", ::getpid(), "-", serial.fetch_add(1));
    file_.reset(::open(path.c_str(),
                       O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (file_.valid()) {
      path_ = std::move(path);
      return;
    }
    if (errno != ENOENT) return;
  }
}

PendingObjectRecord::~PendingObjectRecord() {
  if (path_.empty()) return;
  file_.reset();
  ::unlink(path_.c_str());
  ::rmdir(DirOf(path_).c_str());  // only if empty
}

// One line per object, "msgq ID" or "fifo DIR", each with a single write: a
// process killed at any point leaves whole lines (the sweep skips anything
// else).
void PendingObjectRecord::Append(const std::string& line) {
  if (!file_.valid()) return;
  ssize_t n;
  do {
    n = ::write(file_.get(), line.data(), line.size());
  } while (n < 0 && errno == EINTR);
}

void PendingObjectRecord::FifoDirectory(const std::string& dir) {
  Append(absl::StrCat("fifo ", dir, "\n"));
}

void PendingObjectRecord::MessageQueue(int id) { Append(absl::StrCat("msgq ", id, "\n")); }

int SweepStalePendingObjects() {
  const std::string dir = PendingObjectsDir();
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 077) != 0) {
    return 0;  // nothing there, or not ours to trust
  }
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    ::closedir(d);
  }
  int swept = 0;
  const std::string pid_namespace = PidNamespace();
  for (const std::string& name : names) {
    int pid = 0;
    std::vector<std::string> parts = absl::StrSplit(name, '-');  // PIDNS-PID-SERIAL
    if (parts.size() != 3 || parts[0] != pid_namespace || !absl::SimpleAtoi(parts[1], &pid) ||
        pid <= 0 || ProcessExists(pid)) {
      continue;
    }
    const std::string path = absl::StrCat(dir, "/", name);
    std::ifstream record(path);
    std::stringstream content;
    content << record.rdbuf();
    std::vector<std::string> lines = absl::StrSplit(content.str(), '\n');
    lines.pop_back();  // after the last newline: empty, or a line cut short
    for (const std::string& line : lines) {
      std::vector<std::string> words = absl::StrSplit(line, absl::MaxSplits(' ', 1));
      int id = 0;
      if (words.size() != 2) continue;
      if (words[0] == "msgq" && absl::SimpleAtoi(words[1], &id)) RemoveQueue(id);
      if (words[0] == "fifo") RemoveFifoDir(words[1]);
    }
    ::unlink(path.c_str());
    ++swept;
  }
  ::rmdir(dir.c_str());  // only if empty
  return swept;
}

}  // namespace ipcrpc
