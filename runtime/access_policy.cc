#include "runtime/access_policy.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ipcrpc {
namespace {

template <class T>
bool Contains(const std::vector<T>& v, T x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string Describe(const PeerCredentials& peer) {
  return absl::StrCat("pid ", peer.pid, ", uid ", peer.uid, ", gid ", peer.gid);
}

// The peer's executable, or "" if it cannot be read (the process is gone, or
// this process may not look).
std::string ExecutableOf(pid_t pid) {
  char buf[PATH_MAX];
  std::string link = absl::StrCat("/proc/", pid, "/exe");
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

absl::Status AccessPolicy::Check(const PeerCredentials& peer) const {
  if (allow_any_peer) return absl::OkStatus();
  const bool known = peer.pid != 0 || peer.uid != static_cast<uid_t>(-1);
  bool allowed = known && ((allow_same_uid && peer.uid == ::geteuid()) ||
                           (allow_root && peer.uid == 0) || Contains(allowed_uids, peer.uid) ||
                           Contains(allowed_gids, peer.gid));
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat(
        "this server does not accept connections from ",
        known ? Describe(peer) : "a peer of unknown identity",
        " (its access policy lets in ", allow_same_uid ? "its own user, " : "",
        allow_root ? "root, " : "", "and the uids/gids it lists)"));
  }
  if (!allowed_executables.empty()) {
    std::string exe = ExecutableOf(peer.pid);
    if (exe.empty() || !Contains(allowed_executables, exe)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "this server does not accept connections from ", Describe(peer), " running ",
          exe.empty() ? std::string("an executable it cannot see") : exe));
    }
  }
  if (custom) {
    absl::Status s = custom(peer);
    if (!s.ok()) return absl::PermissionDeniedError(s.message());
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc
