// ipcrpc internal: finding the fields of one well-known message type
// (ipcrpc.SharedBuffer) anywhere inside a message, by reflection.
//
// CanContainType answers once per (type, target) and thread whether a
// message type can contain the target at any depth (through singular,
// repeated and map-value message fields, cycles included), so messages that
// cannot pay a hash lookup. ForEachOfType visits every present instance, in
// field order. (fd_fields.cc has the same walk for ipcrpc.FileDescriptor.)
//
// Thread-safety: functions of their arguments; the cache is per thread.

#ifndef IPCRPC_RUNTIME_INTERNAL_MESSAGE_WALK_H_
#define IPCRPC_RUNTIME_INTERNAL_MESSAGE_WALK_H_

#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace ipcrpc::internal {

// `target` must be a string constant (its address is part of the cache key).
inline bool CanContainType(const google::protobuf::Descriptor* type, absl::string_view target) {
  using google::protobuf::Descriptor;
  using google::protobuf::FieldDescriptor;
  thread_local absl::flat_hash_map<std::pair<const Descriptor*, const char*>, bool> known;
  const auto key = std::make_pair(type, target.data());
  if (auto it = known.find(key); it != known.end()) return it->second;
  // A plain reachability walk: only whole answers are cached.
  absl::flat_hash_set<const Descriptor*> seen;
  std::vector<const Descriptor*> todo = {type};
  bool found = false;
  while (!todo.empty() && !found) {
    const Descriptor* t = todo.back();
    todo.pop_back();
    if (!seen.insert(t).second) continue;
    if (t->full_name() == target) {
      found = true;
      break;
    }
    for (int i = 0; i < t->field_count(); ++i) {
      const FieldDescriptor* f = t->field(i);
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) todo.push_back(f->message_type());
    }
  }
  known[key] = found;
  return found;
}

// Calls visit(M* instance) for every `target` message within `message`.
// M is Message (may modify) or const Message (only reads).
template <class M, class Visit>
void ForEachOfType(M* message, absl::string_view target, const Visit& visit) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const google::protobuf::Descriptor* type = field->message_type();
    if (!CanContainType(type, target)) continue;
    const bool direct = type->full_name() == target;
    const int n = field->is_repeated() ? reflection->FieldSize(*message, field) : 1;
    for (int i = 0; i < n; ++i) {
      M* sub;
      if constexpr (std::is_const_v<M>) {
        sub = field->is_repeated() ? &reflection->GetRepeatedMessage(*message, field, i)
                                   : &reflection->GetMessage(*message, field);
      } else {
        sub = field->is_repeated() ? reflection->MutableRepeatedMessage(message, field, i)
                                   : reflection->MutableMessage(message, field);
      }
      if (direct) {
        visit(sub);
      } else {
        ForEachOfType(sub, target, visit);
      }
    }
  }
}

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_MESSAGE_WALK_H_
