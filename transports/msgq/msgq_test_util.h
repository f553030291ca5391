// ipcrpc msgq transport tests: what the msgq test binaries share.
//
// Every binary that links this library (alwayslink) checks after each test
// that it left no message queue and no fd behind; leaks fail the run (a gtest
// listener and environment registered at start-up). Also: kernel-object
// bookkeeping (queue ids, counts), connected msgq pairs made the way the
// upgrade makes them, a byte pattern.
//
// Thread-safety: for the test's main thread, except QueueGoneWithin.

#ifndef IPCRPC_TRANSPORTS_MSGQ_MSGQ_TEST_UTIL_H_
#define IPCRPC_TRANSPORTS_MSGQ_MSGQ_TEST_UTIL_H_

#include <cstddef>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/msgq/msgq.h"
#include "transports/transport.h"

namespace ipcrpc::msgq_test {

inline constexpr absl::Duration kPatience = absl::Seconds(20);

// Ids of every message queue in this IPC namespace (/proc/sysvipc/msg).
std::set<int> QueueIds();
// The kernel's count of queues in use (msgctl MSG_INFO), as ipcs reports it.
int QueueCount();
bool QueueExists(int id);
// For removals another thread (the watcher) makes while this one returns.
bool QueueGoneWithin(int id, absl::Duration timeout);
int OpenFdCount();
// /proc/sys/kernel/msgmax.
size_t Msgmax();

struct ControlPair {
  ScopedFd client;
  ScopedFd server;
};

// A connected AF_UNIX socket pair (ADD_FAILURE and empty fds on failure).
ControlPair MakeControlPair();

struct MsgqPair {
  std::unique_ptr<Transport> client;
  std::unique_ptr<Transport> server;
  wire::MsgqParams params;  // what the server offered
};

// The whole upgrade in one process.
absl::StatusOr<MsgqPair> MakeMsgqPair(const MsgqOptions& server_options = {},
                                      const MsgqOptions& client_options = {});

// n bytes of a non-repeating-looking pattern.
std::string Pattern(size_t n);

}  // namespace ipcrpc::msgq_test

#endif  // IPCRPC_TRANSPORTS_MSGQ_MSGQ_TEST_UTIL_H_
