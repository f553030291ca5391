// Tests of what a fifo client is offered: only FIFOs of the server's user,
// in a directory nobody else can write to, no symbolic links, no
// malformed offers (fifo_files.h has the checks).

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/fifo/fifo.h"
#include "transports/fifo/fifo_test_util.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::fifo_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// fifo_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

// ---------------------------------------------------------------------------
// Checks of what the client is offered.

class FifoAttachChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pending = PrepareFifo(TestOptions());
    ASSERT_TRUE(pending.ok()) << pending.status();
    pending_ = std::move(*pending);
    std::vector<int> fds;
    pending_->FillOffer(&offer_, &fds);
  }

  // Attaches to offer_ with a fresh control socket; returns the status.
  absl::Status Attach(const wire::TransportOffer& offer, std::vector<ScopedFd> fds = {}) {
    auto [server_control, client_control] = ControlPair();
    return AttachFifo(offer, std::move(fds), std::move(client_control), TestOptions()).status();
  }

  // offer_ with client_to_server_path replaced by `path`.
  wire::TransportOffer OfferWithC2s(const std::string& path) {
    wire::TransportOffer offer = offer_;
    offer.mutable_fifo()->set_client_to_server_path(path);
    return offer;
  }

  std::string Aside(absl::string_view name) { return absl::StrCat(ParentDir(), "/", name); }

  std::unique_ptr<PendingTransport> pending_;
  wire::TransportOffer offer_;
};

TEST_F(FifoAttachChecks, TheRealOfferAttaches) { EXPECT_TRUE(Attach(offer_).ok()); }

TEST_F(FifoAttachChecks, ARegularFileIsRefused) {
  const std::string file = Aside("regular");
  ScopedFd fd(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  absl::Status s = Attach(OfferWithC2s(file));
  ::unlink(file.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "is a regular file, not a FIFO")) << s;
}

TEST_F(FifoAttachChecks, ASymlinkToTheRealFifoIsRefused) {
  const std::string link = Aside("link");
  ASSERT_EQ(::symlink(offer_.fifo().client_to_server_path().c_str(), link.c_str()), 0);
  absl::Status s = Attach(OfferWithC2s(link));
  ::unlink(link.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "symbolic link")) << s;
}

TEST_F(FifoAttachChecks, AMissingPathIsNotFound) {
  absl::Status s = Attach(OfferWithC2s(Aside("missing")));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "missing")) << s;
}

TEST_F(FifoAttachChecks, AFifoOfAnotherUserIsRefused) {
  const std::string fifo = Aside("foreign");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Needs real root (not, e.g., root of Bazel's sandbox user namespace).
  if (::chown(fifo.c_str(), 65534, 65534) < 0) {
    int err = errno;
    ::unlink(fifo.c_str());
    GTEST_SKIP() << "cannot give a FIFO to uid 65534 here: " << ErrnoStatus(err, "chown");
  }
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "owned by uid 65534")) << s;
}

TEST_F(FifoAttachChecks, ADirectoryOthersCanWriteIsRefused) {
  const std::string dir = Aside("open");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  const std::string fifo = dir + "/c2s";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "writable by other users")) << s;
}

TEST_F(FifoAttachChecks, AFifoWithoutTheServersReaderIsRefused) {
  const std::string fifo = Aside("unread");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no reader")) << s;
}

TEST_F(FifoAttachChecks, MalformedOffersAreInvalidArgument) {
  EXPECT_EQ(Attach(OfferWithC2s("relative/c2s")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(OfferWithC2s("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(OfferWithC2s(offer_.fifo().server_to_client_path())).code(),
            absl::StatusCode::kInvalidArgument);
  wire::TransportOffer shm = offer_;
  shm.set_transport("shm");
  EXPECT_EQ(Attach(shm).code(), absl::StatusCode::kInvalidArgument);
  std::vector<ScopedFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  absl::Status s = Attach(offer_, std::move(fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(FifoAttachChecks, AControlSocketThatIsNotASocketIsRefused) {
  ScopedFd not_a_socket(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto t = AttachFifo(offer_, {}, std::move(not_a_socket), TestOptions());
  EXPECT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), "control socket")) << t.status();
}

}  // namespace
}  // namespace ipcrpc::fifo_test
