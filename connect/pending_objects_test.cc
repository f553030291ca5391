// Tests for connect/pending_objects.h: records come and go with their
// negotiation; a dead process's recorded queues and FIFO directory are
// removed by the sweep, a live one's are not; an unsafe directory is not used.

#include "connect/pending_objects.h"

#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace ipcrpc {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool QueueExists(int id) {
  msqid_ds ds;
  return ::msgctl(id, IPC_STAT, &ds) == 0;
}

class PendingObjectsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = root_.File("pending");
    ::setenv("IPCRPC_PENDING_DIR", dir_.c_str(), 1);
  }
  void TearDown() override { ::unsetenv("IPCRPC_PENDING_DIR"); }

  // A FIFO directory as PrepareFifo makes one, and an offer naming it.
  std::string MakeFifoDir(wire::TransportOffer* offer) {
    std::string dir = root_.File("ipcrpc-fifo-XXXXXX");
    EXPECT_NE(::mkdtemp(dir.data()), nullptr);
    std::string c2s = dir + "/c2s", s2c = dir + "/s2c";
    EXPECT_EQ(::mkfifo(c2s.c_str(), 0600), 0);
    EXPECT_EQ(::mkfifo(s2c.c_str(), 0600), 0);
    offer->mutable_fifo()->set_client_to_server_path(c2s);
    offer->mutable_fifo()->set_server_to_client_path(s2c);
    return dir;
  }

  testing::ScopedTempDir root_;
  std::string dir_;
};

TEST_F(PendingObjectsTest, ARecordLastsAsLongAsItsNegotiation) {
  wire::TransportOffer offer;
  offer.mutable_msgq()->set_client_to_server_id(1);
  offer.mutable_msgq()->set_server_to_client_id(2);
  std::string path;
  {
    PendingObjectRecord record(offer);
    path = record.path();
    ASSERT_FALSE(path.empty());
    EXPECT_TRUE(Exists(path));
    struct stat st;
    ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(SweepStalePendingObjects(), 0) << "this process is alive";
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(dir_)) << "the directory goes when empty";
  wire::TransportOffer shm;
  shm.mutable_shm()->set_ring_bytes(4096);
  EXPECT_TRUE(PendingObjectRecord(shm).path().empty()) << "a memfd needs no record";
}

// A process that dies mid-negotiation (it records, then exits without its
// destructors): the sweep removes its queues and FIFO directory.
TEST_F(PendingObjectsTest, ADeadProcesssObjectsAreSweptAndOnlyTheirs) {
  int c2s = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  int s2c = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  int bystander = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  ASSERT_GE(c2s, 0);
  ASSERT_GE(s2c, 0);
  ASSERT_GE(bystander, 0);
  wire::TransportOffer offer;
  offer.mutable_msgq()->set_client_to_server_id(c2s);
  offer.mutable_msgq()->set_server_to_client_id(s2c);
  wire::TransportOffer fifo_offer;
  std::string fifo_dir = MakeFifoDir(&fifo_offer);
  pid_t pid = ::fork();
  if (pid == 0) {
    new PendingObjectRecord(offer);       // never destroyed: the process "dies"
    new PendingObjectRecord(fifo_offer);
    ::_exit(0);
  }
  ASSERT_GT(pid, 0);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(QueueExists(c2s));
  EXPECT_TRUE(Exists(fifo_dir));
  EXPECT_EQ(SweepStalePendingObjects(), 2);
  EXPECT_FALSE(QueueExists(c2s));
  EXPECT_FALSE(QueueExists(s2c));
  EXPECT_FALSE(Exists(fifo_dir));
  EXPECT_TRUE(QueueExists(bystander)) << "a queue nobody recorded is not touched";
  EXPECT_FALSE(Exists(dir_));
  ::msgctl(bystander, IPC_RMID, nullptr);
}

// A record made in another PID namespace (a container sharing /tmp and the
// IPC namespace) names a pid this process cannot judge: it is left alone.
TEST_F(PendingObjectsTest, RecordsOfAnotherPidNamespaceAreLeftAlone) {
  int queue = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  ASSERT_GE(queue, 0);
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  const std::string record = dir_ + "/1-999999999-0";  // namespace "1": not ours
  FILE* f = std::fopen(record.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f, "msgq %d\n", queue);
  std::fclose(f);
  EXPECT_EQ(SweepStalePendingObjects(), 0);
  EXPECT_TRUE(QueueExists(queue));
  ::unlink(record.c_str());
  ::rmdir(dir_.c_str());
  ::msgctl(queue, IPC_RMID, nullptr);
}

TEST_F(PendingObjectsTest, ADirectoryOthersCanWriteIsNeitherUsedNorSwept) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  wire::TransportOffer offer;
  offer.mutable_msgq()->set_client_to_server_id(1);
  EXPECT_TRUE(PendingObjectRecord(offer).path().empty());
  FILE* f = std::fopen((dir_ + "/0-999999999-0").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("fifo /etc\n", f);
  std::fclose(f);
  EXPECT_EQ(SweepStalePendingObjects(), 0);
  ::unlink((dir_ + "/0-999999999-0").c_str());
  ::rmdir(dir_.c_str());
}

}  // namespace
}  // namespace ipcrpc
