#include "tests/e2e/fd_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ipcrpc::test {

absl::StatusOr<ScopedFd> OpenWithContent(const std::string& kind, const std::string& content) {
  ScopedFd fd;
  if (kind == "pipe") {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
    ScopedFd read_end(p[0]), write_end(p[1]);
    if (content.size() > 65536) return absl::InvalidArgumentError("pipe content over 64 KiB");
    if (::write(write_end.get(), content.data(), content.size()) !=
        static_cast<ssize_t>(content.size())) {
      return ErrnoStatus(errno, "write to pipe");
    }
    return read_end;
  }
  if (kind == "file") {
    fd.reset(::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  } else if (kind == "memfd") {
    fd.reset(::memfd_create("ipcrpc-fd-test", MFD_CLOEXEC));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown kind \"", kind, "\""));
  }
  if (!fd.valid()) return ErrnoStatus(errno, kind);
  if (::pwrite(fd.get(), content.data(), content.size(), 0) !=
      static_cast<ssize_t>(content.size())) {
    return ErrnoStatus(errno, "pwrite");
  }
  return fd;
}

absl::StatusOr<std::string> ReadAll(int fd) {
  std::string out;
  char buf[4096];
  off_t offset = 0;
  bool seekable = ::lseek(fd, 0, SEEK_CUR) >= 0;
  for (;;) {
    ssize_t n = seekable ? ::pread(fd, buf, sizeof(buf), offset) : ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read fd ", fd));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

int CountOpenFds(pid_t pid) {
  std::string dir = pid == 0 ? "/proc/self/fd" : absl::StrCat("/proc/", pid, "/fd");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return pid == 0 ? n - 1 : n;  // not the directory's own descriptor
}

int AwaitFdCountAtMost(pid_t pid, int limit) {
  int now = CountOpenFds(pid);
  for (int i = 0; i < 2000 && now > limit; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    now = CountOpenFds(pid);
  }
  return now;
}

std::string ListOpenFds(pid_t pid) {
  std::string dir = pid == 0 ? "/proc/self/fd" : absl::StrCat("/proc/", pid, "/fd");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return "(cannot list " + dir + ")";
  std::string out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[512];
    std::string path = absl::StrCat(dir, "/", e->d_name);
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    absl::StrAppend(&out, e->d_name, " -> ", n > 0 ? std::string(target, n) : "?", "\n");
  }
  ::closedir(d);
  return out;
}

}  // namespace ipcrpc::test
