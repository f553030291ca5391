#include "runtime/internal/fd_fields.h"

#include <errno.h>
#include <fcntl.h>

#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "runtime/codegen/foreign_call.h"

namespace ipcrpc::internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr absl::string_view kFileDescriptorType = "ipcrpc.FileDescriptor";

bool IsFileDescriptor(const Descriptor* type) { return type->full_name() == kFileDescriptorType; }

// Whether messages of `type` can contain a FileDescriptor (at any depth).
// Memoized per thread: a pure function of immutable descriptors, so no lock.
// Whether a FileDescriptor is reachable from `type` through message fields;
// `seen` breaks cycles (a type met again adds nothing new).
bool ReachesFileDescriptor(const Descriptor* type,
                           absl::flat_hash_set<const Descriptor*>* seen) {
  if (!seen->insert(type).second) return false;
  if (IsFileDescriptor(type)) return true;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        ReachesFileDescriptor(field->message_type(), seen)) {
      return true;
    }
  }
  return false;
}

// Cached per type. Only whole answers are cached: caching the types met on
// the way would record "no" for a type whose answer depended on a cycle
// still being explored (B in A{B b; FileDescriptor f}, B{A a}).
bool CanContainFd(const Descriptor* type) {
  thread_local absl::flat_hash_map<const Descriptor*, bool> known;
  auto it = known.find(type);
  if (it != known.end()) return it->second;
  absl::flat_hash_set<const Descriptor*> seen;
  const bool found = ReachesFileDescriptor(type, &seen);
  known[type] = found;
  return found;
}

// Calls `visit` for every FileDescriptor message within `message`, in field
// order (repeated fields in index order). `M` is Message (the receiver
// rewrites handles) or const Message (the sender only reads: a message may be
// sent from several threads at once, so not even a map field's internal
// representation may be touched).
template <class M, class Visit>
void ForEachFd(M* message, const Visit& visit) {
  const Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const Descriptor* type = field->message_type();
    if (!CanContainFd(type)) continue;
    const bool direct = IsFileDescriptor(type);
    auto one = [&](M* sub) {
      if (direct) {
        visit(sub);
      } else {
        ForEachFd(sub, visit);
      }
    };
    const int n = field->is_repeated() ? reflection->FieldSize(*message, field) : 1;
    for (int i = 0; i < n; ++i) {
      if constexpr (std::is_const_v<M>) {
        one(field->is_repeated() ? &reflection->GetRepeatedMessage(*message, field, i)
                                 : &reflection->GetMessage(*message, field));
      } else {
        one(field->is_repeated() ? reflection->MutableRepeatedMessage(message, field, i)
                                 : reflection->MutableMessage(message, field));
      }
    }
  }
}

// The handle field of a FileDescriptor message (field 1).
const FieldDescriptor* HandleField(const Message& fd) {
  return fd.GetDescriptor()->FindFieldByNumber(1);
}

uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
void PutU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

void OutgoingFds::Clear() {
  RollBackBuffers();
  fds.clear();
  table.clear();
  flags = 0;
}

void OutgoingFds::CommitBuffers() {
  buffer_keys.clear();
  buffer_session.reset();
}

void OutgoingFds::RollBackBuffers() {
  if (buffer_session != nullptr) {
    for (uint32_t key : buffer_keys) buffer_session->UndoRemote(key);
  }
  CommitBuffers();
}

absl::Status CollectFds(const google::protobuf::MessageLite& lite, uint32_t peer_max,
                        absl::string_view peer, OutgoingFds* out) {
  const auto* message = dynamic_cast<const Message*>(&lite);
  if (message == nullptr || !CanContainFd(message->GetDescriptor())) return absl::OkStatus();
  std::vector<uint32_t> handles;
  ForEachFd(message, [&](const Message* fd) {
    const uint32_t handle = fd->GetReflection()->GetUInt32(*fd, HandleField(*fd));
    if (handle == 0) return;
    for (uint32_t h : handles) {
      if (h == handle) return;  // one descriptor named twice travels once
    }
    handles.push_back(handle);
  });
  if (handles.empty()) return absl::OkStatus();
  if (handles.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a message names ", handles.size(), " file descriptors; at most ", kMaxFdsPerMessage,
        " (SCM_MAX_FD) can go with one message"));
  }
  if (peer_max == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the peer at ", peer, " does not accept file descriptors (its HELLO announced none: "
        "a peer without fd passing, one that refuses descriptors, or the gRPC bridge)"));
  }
  if (handles.size() > peer_max) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a message names ", handles.size(), " file descriptors; the peer at ", peer, " accepts ",
        peer_max,
        " per message"));
  }
  out->fds.clear();
  out->table.clear();
  for (uint32_t handle : handles) {
    const int fd = static_cast<int>(handle - 1);
    if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a FileDescriptor field names descriptor ", fd,
          ", which is not open in this process"));
    }
    out->fds.push_back(fd);
    PutU32(handle, &out->table);
  }
  return absl::OkStatus();
}

bool SplitFdTable(absl::string_view payload, size_t fd_count, absl::string_view* message,
                  absl::string_view* table) {
  const size_t table_bytes = fd_count * kFdTableEntryBytes;
  if (payload.size() < table_bytes) return false;
  *message = payload.substr(0, payload.size() - table_bytes);
  *table = payload.substr(payload.size() - table_bytes);
  return true;
}

void BindFds(google::protobuf::MessageLite* lite, absl::string_view table,
             std::vector<ScopedFd> fds, CallFds* received) {
  auto* message = dynamic_cast<Message*>(lite);
  if (message != nullptr && CanContainFd(message->GetDescriptor())) {
    ForEachFd(message, [&](Message* fd) {
      const FieldDescriptor* field = HandleField(*fd);
      const uint32_t key = fd->GetReflection()->GetUInt32(*fd, field);
      if (key == 0) return;
      uint32_t local = 0;
      for (size_t i = 0; i < fds.size() && (i + 1) * kFdTableEntryBytes <= table.size(); ++i) {
        if (GetU32(table.data() + i * kFdTableEntryBytes) == key) {
          local = static_cast<uint32_t>(fds[i].get()) + 1;
          break;
        }
      }
      fd->GetReflection()->SetUInt32(fd, field, local);
    });
  }
  if (received != nullptr) {
    received->Replace(std::move(fds));
  }  // else `fds` closes here
}

}  // namespace ipcrpc::internal

namespace ipcrpc {

void internal::ForeignCallAccess::ClearFdHandles(google::protobuf::MessageLite* message) {
  internal::ClearFdHandles(message);
}

absl::Status CheckNoFds(const google::protobuf::MessageLite& message,
                        absl::string_view destination) {
  internal::OutgoingFds fds;
  absl::Status s = internal::CollectFds(message, 0, destination, &fds);
  if (s.ok() && fds.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "a message that names file descriptors cannot go to ", destination,
      ": descriptors cannot cross a gRPC connection (docs/GRPC_BRIDGE.md)"));
}

}  // namespace ipcrpc

namespace ipcrpc::internal {

void ClearFdHandles(google::protobuf::MessageLite* message) {
  BindFds(message, absl::string_view(), {}, nullptr);
}

}  // namespace ipcrpc::internal
