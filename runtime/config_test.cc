#include "runtime/config.h"

#include "gtest/gtest.h"

namespace ipcrpc {
namespace {

constexpr char kText[] = R"pb(
  channel {
    target: "greeter"
    address: "unix:/run/greeter.sock"
    transport: "shm"
    tuning { shm { ring_bytes: 4194304 max_spin_micros: 20 } }
    max_send_message_bytes: 1000
  }
  channel { target: "/run/other.sock" transport: "fifo" }
  channel { target: "*" transport: "auto" }
  server { allowed_transports: ["unix", "shm"] }
)pb";

TEST(ConfigTest, ParsesAndResolvesNamesPathsAndTheWildcard) {
  auto config = ParseConfig(kText, "test");
  ASSERT_TRUE(config.ok()) << config.status();

  auto named = PlanChannel("greeter", {}, *config, "");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->address, "unix:/run/greeter.sock");
  EXPECT_EQ(named->transport, "shm");
  EXPECT_EQ(named->tuning.shm().ring_bytes(), 4194304u);
  EXPECT_EQ(named->options.max_send_message_size, 1000u);
  EXPECT_EQ(named->options.max_receive_message_size, kDefaultMaxMessageSize);

  auto by_path = PlanChannel("unix:/run/other.sock", {}, *config, "");
  ASSERT_TRUE(by_path.ok());
  EXPECT_EQ(by_path->address, "unix:/run/other.sock");
  EXPECT_EQ(by_path->transport, "fifo");

  auto other = PlanChannel("msgq:/run/third.sock", {}, *config, "");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->transport, "auto");

  EXPECT_EQ(config->server().allowed_transports_size(), 2);
}

TEST(ConfigTest, MetadataLimitsComeFromTheChannelEntry) {
  auto config = ParseConfig(
      R"pb(channel { target: "*" max_metadata_bytes: 1024 max_metadata_entries: 10 })pb", "test");
  ASSERT_TRUE(config.ok()) << config.status();
  auto plan = PlanChannel("unix:/run/x.sock", {}, *config, "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.max_metadata_bytes, 1024u);
  EXPECT_EQ(plan->options.max_metadata_entries, 10u);
  auto defaults = PlanChannel("unix:/run/x.sock", {}, config::Config(), "");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->options.max_metadata_bytes, kDefaultMaxMetadataBytes);
  EXPECT_EQ(defaults->options.max_metadata_entries, kDefaultMaxMetadataEntries);
}

TEST(ConfigTest, CompressionAndDescriptorSettingsComeFromTheChannelEntry) {
  auto config = ParseConfig(R"pb(channel {
                                   target: "*"
                                   compression: "gzip"
                                   accept_compression: false
                                   max_fds_per_message: 0
                                 })pb",
                            "test");
  ASSERT_TRUE(config.ok()) << config.status();
  auto plan = PlanChannel("unix:/run/x.sock", {}, *config, "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.default_compression_algorithm, CompressionAlgorithm::kGzip);
  EXPECT_FALSE(plan->options.accept_compression);
  EXPECT_EQ(plan->options.max_fds_per_message, 0u);
  // Unset: the options as the code gave them.
  ChannelOptions mine;
  mine.max_fds_per_message = 7;
  auto defaults = PlanChannel("unix:/run/x.sock", mine, config::Config(), "");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->options.default_compression_algorithm, CompressionAlgorithm::kNone);
  EXPECT_TRUE(defaults->options.accept_compression);
  EXPECT_EQ(defaults->options.max_fds_per_message, 7u);

  auto bad = ParseConfig(R"pb(channel { target: "*" compression: "zip" })pb", "test");
  ASSERT_TRUE(bad.ok());
  auto refused = PlanChannel("unix:/run/x.sock", {}, *bad, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("unknown compression algorithm \"zip\""),
            std::string::npos)
      << refused.status();
}

TEST(ConfigTest, EnvironmentOverridesEverything) {
  auto config = ParseConfig(kText, "test");
  ASSERT_TRUE(config.ok());
  auto plan = PlanChannel("greeter", {}, *config, "msgq");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->transport, "msgq");
  EXPECT_EQ(plan->address, "unix:/run/greeter.sock");
}

TEST(ConfigTest, UnknownNameWithoutAddressIsAClearError) {
  auto plan = PlanChannel("nowhere", {}, config::Config(), "");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("IPCRPC_CONFIG"), std::string::npos) << plan.status();
}

TEST(ConfigTest, SyntaxErrorsNameTheSourceAndLine) {
  auto config = ParseConfig("channel {\n  target: \"x\"\n  ring_bytes: 5\n}\n", "/etc/app.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("/etc/app.textproto"), std::string::npos)
      << config.status();
  EXPECT_NE(config.status().message().find("line 3"), std::string::npos) << config.status();
}

TEST(ConfigTest, MissingFileIsAnErrorNamingIt) {
  setenv(kConfigEnv, "/nonexistent/ipcrpc.textproto", 1);
  auto config = LoadConfigFromEnvironment();
  unsetenv(kConfigEnv);
  EXPECT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/nonexistent/ipcrpc.textproto"), std::string::npos);
  auto empty = LoadConfigFromEnvironment();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->channel_size(), 0);
}

}  // namespace
}  // namespace ipcrpc
