#include "bridge/grpc_mapping.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc {
namespace grpc_bridge {
namespace {

// HTTP/2 and gRPC transport headers an application never sets or sees.
constexpr absl::string_view kHttpHeaders[] = {
    "connection", "content-length", "content-type", "host", "keep-alive",
    "proxy-connection", "te", "transfer-encoding", "upgrade", "user-agent",
};

bool PrintableAscii(absl::string_view value) {
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool ValidGrpcKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

template <typename AddFn>
absl::Status AddEach(const Metadata& metadata, bool skip_details, AddFn add) {
  std::vector<const Metadata::value_type*> entries;
  for (const auto& entry : metadata) {
    if (DroppedKey(entry.first)) continue;
    if (skip_details && entry.first == kStatusDetailsKey) continue;
    absl::Status ok = CheckGrpcMetadataEntry(entry.first, entry.second);
    if (!ok.ok()) return ok;
    entries.push_back(&entry);
  }
  for (const auto* entry : entries) add(entry->first, entry->second);
  return absl::OkStatus();
}

}  // namespace

bool DroppedKey(absl::string_view key) {
  if (key.empty() || key[0] == ':') return true;
  if (absl::StartsWith(key, "grpc-") || absl::StartsWith(key, "ipcrpc-")) return true;
  for (absl::string_view header : kHttpHeaders) {
    if (key == header) return true;
  }
  return false;
}

absl::Status CheckGrpcMetadataEntry(absl::string_view key, absl::string_view value) {
  if (!ValidGrpcKey(key)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata key \"", absl::CEscape(key), "\" cannot go to gRPC (keys are [a-z0-9_.-]+)"));
  }
  if (!absl::EndsWith(key, "-bin") && !PrintableAscii(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata \"", key, "\" has a value gRPC cannot carry: values of keys not ending in "
        "\"-bin\" must be printable ASCII (use a \"-bin\" key for bytes)"));
  }
  return absl::OkStatus();
}

absl::Status AddClientMetadata(const Metadata& metadata, grpc::ClientContext* context) {
  return AddEach(metadata, false, [context](const std::string& k, const std::string& v) {
    context->AddMetadata(k, v);
  });
}

absl::Status AddServerInitialMetadata(const Metadata& metadata,
                                      grpc::ServerContextBase* context) {
  return AddEach(metadata, false, [context](const std::string& k, const std::string& v) {
    context->AddInitialMetadata(k, v);
  });
}

absl::Status AddServerTrailingMetadata(const Metadata& metadata,
                                       grpc::ServerContextBase* context) {
  return AddEach(metadata, true, [context](const std::string& k, const std::string& v) {
    context->AddTrailingMetadata(k, v);
  });
}

void AppendMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                    Metadata* out) {
  for (const auto& entry : metadata) {
    absl::string_view key(entry.first.data(), entry.first.size());
    if (DroppedKey(key)) continue;
    out->emplace(std::string(key), std::string(entry.second.data(), entry.second.size()));
  }
}

grpc::Status ToGrpcStatus(const absl::Status& status, const Metadata& trailing_metadata) {
  if (status.ok()) return grpc::Status::OK;
  int code = static_cast<int>(status.code());
  if (code < 0 || code > 16) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  std::string details;
  auto it = trailing_metadata.find(std::string(kStatusDetailsKey));
  if (it != trailing_metadata.end()) details = it->second;
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::string(status.message()),
                      details);
}

absl::Status FromGrpcStatus(const grpc::Status& status, Metadata* trailing_metadata) {
  if (status.ok()) return absl::OkStatus();
  int code = static_cast<int>(status.error_code());
  if (code < 0 || code > 16) code = static_cast<int>(absl::StatusCode::kUnknown);
  if (!status.error_details().empty() && trailing_metadata != nullptr) {
    trailing_metadata->emplace(std::string(kStatusDetailsKey), status.error_details());
  }
  return absl::Status(static_cast<absl::StatusCode>(code), status.error_message());
}

absl::Time FromGrpcDeadline(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

grpc::ByteBuffer ToGrpcBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

bool FromGrpcBuffer(const grpc::ByteBuffer& buffer, std::string* bytes) {
  bytes->clear();
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  size_t total = 0;
  for (const grpc::Slice& s : slices) total += s.size();
  bytes->reserve(total);
  for (const grpc::Slice& s : slices) {
    bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return true;
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
