// ipcrpc msgq transport tests: shared helpers and the per-test leak check
// (msgq_test_util.h).

#include "transports/msgq/msgq_test_util.h"

#include <dirent.h>
#include <errno.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"

namespace ipcrpc::msgq_test {

std::set<int> QueueIds() {
  std::set<int> ids;
  std::ifstream in("/proc/sysvipc/msg");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    long key;
    int id;
    if (fields >> key >> id) ids.insert(id);
  }
  return ids;
}

int QueueCount() {
  msginfo info{};
  if (::msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&info)) < 0) return -1;
  return info.msgpool;
}

bool QueueExists(int id) {
  msqid_ds ds;
  return ::msgctl(id, IPC_STAT, &ds) == 0;
}

bool QueueGoneWithin(int id, absl::Duration timeout) {
  absl::Time give_up = absl::Now() + timeout;
  while (QueueExists(id)) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

int OpenFdCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

size_t Msgmax() {
  std::ifstream in("/proc/sys/kernel/msgmax");
  size_t value = 0;
  in >> value;
  return value;
}

ControlPair MakeControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    ADD_FAILURE() << "socketpair: " << errno;
    return {};
  }
  return {ScopedFd(sv[0]), ScopedFd(sv[1])};
}

absl::StatusOr<MsgqPair> MakeMsgqPair(const MsgqOptions& server_options,
                                      const MsgqOptions& client_options) {
  ControlPair control = MakeControlPair();
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending,
                          PrepareMsgq(server_options));
  wire::TransportOffer offer;
  std::vector<int> fds;
  pending->FillOffer(&offer, &fds);
  if (!fds.empty()) return absl::InternalError("msgq offered fds");
  MsgqPair pair;
  pair.params = offer.msgq();
  IPCRPC_ASSIGN_OR_RETURN(pair.client, AttachMsgq(offer, {}, std::move(control.client),
                                                  client_options));
  IPCRPC_ASSIGN_OR_RETURN(pair.server, pending->Complete(std::move(control.server),
                                                         absl::Now() + absl::Seconds(5)));
  return pair;
}


std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return s;
}

namespace {

// Checks after every test (the contract suite's too) that it left no message
// queue and no fd behind. Leaks are reported as a failure of the whole run.
std::vector<std::string>* g_leaks = new std::vector<std::string>;

class LeakCheckListener : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override {
    queues_ = QueueIds();
    count_ = QueueCount();
    fds_ = OpenFdCount();
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    std::vector<int> leaked;
    for (int id : QueueIds()) {
      if (queues_.count(id) == 0) leaked.push_back(id);
    }
    std::string name = absl::StrCat(info.test_suite_name(), ".", info.name());
    if (!leaked.empty()) {
      g_leaks->push_back(absl::StrCat(name, " left message queues ",
                                      absl::StrJoin(leaked, ","), " (MSG_INFO count ",
                                      count_, " -> ", QueueCount(), ")"));
    }
    int fds = OpenFdCount();
    if (fds != fds_) {
      g_leaks->push_back(absl::StrCat(name, ": open fds ", fds_, " -> ", fds));
    }
  }
  std::set<int> queues_;
  int count_ = 0;
  int fds_ = 0;
};

class LeakCheckEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const std::string& leak : *g_leaks) ADD_FAILURE() << leak;
  }
};

[[maybe_unused]] const bool g_leak_check_installed = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheckListener);
  ::testing::AddGlobalTestEnvironment(new LeakCheckEnvironment);
  return true;
}();

}  // namespace
}  // namespace ipcrpc::msgq_test
