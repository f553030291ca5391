#include "bench/raw/cleanup.h"

#include <signal.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace raw::cleanup {
namespace {

constexpr int kMaxPaths = 8;
constexpr int kMaxQueues = 4;
constexpr size_t kMaxPathLength = 256;

struct PathEntry {
  char path[kMaxPathLength];
  bool used;
  bool is_directory;
};

// Only the signal handler reads these; the one thread writes them.
PathEntry g_paths[kMaxPaths];
int g_queues[kMaxQueues] = {-1, -1, -1, -1};
volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_child_exited = 0;

void RemoveAll() {
  // Files before directories: a FIFO directory is empty only without its FIFOs.
  for (int pass = 0; pass < 2; ++pass) {
    for (PathEntry& entry : g_paths) {
      if (!entry.used || entry.is_directory != (pass == 1)) continue;
      if (entry.is_directory) {
        rmdir(entry.path);
      } else {
        unlink(entry.path);
      }
      entry.used = false;
    }
  }
  for (int& id : g_queues) {
    if (id >= 0) msgctl(id, IPC_RMID, nullptr);
    id = -1;
  }
}

void OnStopSignal(int signal_number) {
  if (g_child > 0) {  // first, so it does not trip over the objects going away
    kill(static_cast<pid_t>(g_child), SIGKILL);
    waitpid(static_cast<pid_t>(g_child), nullptr, 0);
  }
  RemoveAll();
  ::signal(signal_number, SIG_DFL);
  raise(signal_number);
}

void OnChildExit(int) { g_child_exited = 1; }

}  // namespace

void InstallHandlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  sigemptyset(&action.sa_mask);
  action.sa_handler = OnStopSignal;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &action, nullptr);
  // No SA_RESTART: a blocked read, msgrcv or sem_wait returns EINTR.
  action.sa_handler = OnChildExit;
  sigaction(SIGCHLD, &action, nullptr);
}

void AddPath(const std::string& path, bool is_directory) {
  if (path.size() >= kMaxPathLength) return;
  for (PathEntry& entry : g_paths) {
    if (entry.used) continue;
    std::memcpy(entry.path, path.c_str(), path.size() + 1);
    entry.is_directory = is_directory;
    entry.used = true;
    return;
  }
}

void RemovePath(const std::string& path) {
  for (PathEntry& entry : g_paths) {
    if (entry.used && path == entry.path) entry.used = false;
  }
  if (unlink(path.c_str()) != 0) rmdir(path.c_str());
}

void AddMsgq(int id) {
  for (int& slot : g_queues) {
    if (slot < 0) {
      slot = id;
      return;
    }
  }
}

void RemoveMsgq(int id) {
  for (int& slot : g_queues) {
    if (slot == id) slot = -1;
  }
  msgctl(id, IPC_RMID, nullptr);
}

void SetChild(pid_t pid) { g_child = pid; }

bool ChildExited() { return g_child_exited != 0; }

}  // namespace raw::cleanup
