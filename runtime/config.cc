#include "runtime/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/scoped_fd.h"
#include "connect/address.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace ipcrpc {
namespace {

class CollectErrors final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

const config::ChannelConfig* FindEntry(const config::Config& config, absl::string_view target,
                                       absl::string_view socket_path) {
  const config::ChannelConfig* wildcard = nullptr;
  for (const config::ChannelConfig& entry : config.channel()) {
    if (entry.target() == target || (!socket_path.empty() && entry.target() == socket_path)) {
      return &entry;
    }
    if (entry.target() == "*" && wildcard == nullptr) wildcard = &entry;
  }
  return wildcard;
}

}  // namespace

absl::StatusOr<config::Config> ParseConfig(absl::string_view text, absl::string_view source) {
  config::Config config;
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ipcrpc config ", source, ": ", errors.first()));
  }
  return config;
}

absl::StatusOr<config::Config> LoadConfigFromEnvironment() {
  const char* path = std::getenv(kConfigEnv);
  if (path == nullptr || *path == '\0') return config::Config();
  std::ifstream in(path);
  if (!in) {
    return ErrnoStatus(errno, absl::StrCat("reading ipcrpc config ", path, " (from ", kConfigEnv,
                                           ")"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

absl::StatusOr<ChannelPlan> PlanChannel(absl::string_view target, const ChannelOptions& options,
                                        const config::Config& config,
                                        absl::string_view env_transport) {
  bool has_scheme = target.find(':') != absl::string_view::npos;
  absl::string_view socket_path;
  if (has_scheme) socket_path = target.substr(target.find(':') + 1);
  const config::ChannelConfig* entry = FindEntry(config, target, socket_path);

  ChannelPlan plan;
  plan.options = options;
  if (has_scheme) {
    plan.address = std::string(target);
  } else if (entry != nullptr && !entry->address().empty()) {
    plan.address = entry->address();
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", target, "\" is neither an address (TRANSPORT:SOCKET, e.g. unix:/run/app.sock) "
        "nor a target with an address in the ipcrpc config (", kConfigEnv, ")"));
  }
  if (entry != nullptr) {
    plan.transport = entry->transport();
    plan.tuning = entry->tuning();
    if (entry->max_send_message_bytes() != 0) {
      plan.options.max_send_message_size = entry->max_send_message_bytes();
    }
    if (entry->max_receive_message_bytes() != 0) {
      plan.options.max_receive_message_size = entry->max_receive_message_bytes();
    }
    if (entry->max_metadata_bytes() != 0) plan.options.max_metadata_bytes = entry->max_metadata_bytes();
    if (entry->max_metadata_entries() != 0) {
      plan.options.max_metadata_entries = entry->max_metadata_entries();
    }
    if (!entry->compression().empty()) {
      absl::StatusOr<CompressionAlgorithm> algorithm =
          ParseCompressionAlgorithm(entry->compression());
      if (!algorithm.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("channel entry for \"", entry->target(),
                                                       "\": ", algorithm.status().message()));
      }
      plan.options.default_compression_algorithm = *algorithm;
    }
    if (entry->has_accept_compression()) {
      plan.options.accept_compression = entry->accept_compression();
    }
    if (entry->has_max_fds_per_message()) {
      plan.options.max_fds_per_message = entry->max_fds_per_message();
    }
  }
  if (!env_transport.empty()) plan.transport = std::string(env_transport);
  return plan;
}

}  // namespace ipcrpc
