// Tests for connect/pending_objects.h: records come and go with their
// negotiation; a dead process's recorded queues and FIFO directory are
// removed by the sweep — also when it died right after PrepareFifo /
// PrepareMsgq made them — a live one's are not, nor a line cut short; an
// unsafe directory is not used; a FIFO directory is recorded before it is
// made; records are made while others come and go.

#include "connect/pending_objects.h"

#include <stdlib.h>
#include <dirent.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "transports/fifo/fifo.h"
#include "transports/msgq/msgq.h"

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

  // A FIFO directory as PrepareFifo makes one.
  std::string MakeFifoDir() {
    std::string dir = root_.File("ipcrpc-fifo-XXXXXX");
    EXPECT_NE(::mkdtemp(dir.data()), nullptr);
    EXPECT_EQ(::mkfifo((dir + "/c2s").c_str(), 0600), 0);
    EXPECT_EQ(::mkfifo((dir + "/s2c").c_str(), 0600), 0);
    return dir;
  }

  // The lines of every record in the directory.
  std::vector<std::string> RecordedLines() {
    std::vector<std::string> lines;
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) return lines;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(dir_ + "/" + e->d_name);
      std::string line;
      while (std::getline(in, line)) lines.push_back(line);
    }
    ::closedir(d);
    return lines;
  }

  testing::ScopedTempDir root_;
  std::string dir_;
};

TEST_F(PendingObjectsTest, ARecordLastsAsLongAsItsNegotiation) {
  std::string path;
  {
    PendingObjectRecord record;
    record.MessageQueue(1);
    record.MessageQueue(2);
    record.FifoDirectory("/tmp/ipcrpc-fifo-abcdef");
    path = record.path();
    ASSERT_FALSE(path.empty());
    EXPECT_TRUE(Exists(path));
    struct stat st;
    ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(RecordedLines(), (std::vector<std::string>{"msgq 1", "msgq 2",
                                                         "fifo /tmp/ipcrpc-fifo-abcdef"}));
    EXPECT_EQ(SweepStalePendingObjects(), 0) << "this process is alive";
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(dir_)) << "the directory goes when empty";
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
  std::string fifo_dir = MakeFifoDir();
  pid_t pid = ::fork();
  if (pid == 0) {
    auto* queues = new PendingObjectRecord;  // never destroyed: the process "dies"
    queues->MessageQueue(c2s);
    queues->MessageQueue(s2c);
    (new PendingObjectRecord)->FifoDirectory(fifo_dir);
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

// The window the records close: a server killed after PrepareFifo and
// PrepareMsgq made their objects, before it could even send the offer.
// (Before, the record was written from the offer, after both returned.)
TEST_F(PendingObjectsTest, AServerKilledRightAfterPrepareLeavesNothingForTheSweep) {
  FifoOptions fifo;
  fifo.parent_dir = root_.path();
  pid_t pid = ::fork();
  if (pid == 0) {
    auto* record = new PendingObjectRecord;
    auto fifo_pending = PrepareFifo(fifo, record);
    auto msgq_pending = PrepareMsgq({}, record);
    // No destructor runs: the objects stay, as after SIGKILL.
    ::_exit(fifo_pending.ok() && msgq_pending.ok() ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(status, 0);
  std::vector<std::string> lines = RecordedLines();
  ASSERT_EQ(lines.size(), 3u);
  std::vector<int> queues;
  std::string fifo_dir;
  for (const std::string& line : lines) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    ASSERT_EQ(words.size(), 2u) << line;
    int id = 0;
    if (words[0] == "msgq" && absl::SimpleAtoi(words[1], &id)) queues.push_back(id);
    if (words[0] == "fifo") fifo_dir = words[1];
  }
  ASSERT_EQ(queues.size(), 2u);
  ASSERT_TRUE(Exists(fifo_dir)) << fifo_dir;
  for (int id : queues) EXPECT_TRUE(QueueExists(id));
  EXPECT_EQ(SweepStalePendingObjects(), 1);
  for (int id : queues) EXPECT_FALSE(QueueExists(id)) << id;
  EXPECT_FALSE(Exists(fifo_dir));
  EXPECT_FALSE(Exists(dir_));
}

// The directory is on record before it exists: a server killed right after
// its mkdir (before anything else could run) still has it recorded.
TEST_F(PendingObjectsTest, AFifoDirectoryIsRecordedBeforeItIsMade) {
  class WatchingRecord final : public CreatedObjects {
   public:
    void FifoDirectory(const std::string& dir) override {
      existed_when_recorded_ = Exists(dir);
      record_.FifoDirectory(dir);
      dir_ = dir;
    }
    void MessageQueue(int id) override { record_.MessageQueue(id); }
    PendingObjectRecord record_;
    std::string dir_;
    bool existed_when_recorded_ = true;
  };
  FifoOptions fifo;
  fifo.parent_dir = root_.path();
  WatchingRecord watching;
  auto pending = PrepareFifo(fifo, &watching);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_FALSE(watching.existed_when_recorded_) << watching.dir_ << " was made before it was recorded";
  EXPECT_TRUE(Exists(watching.dir_));
  EXPECT_EQ(RecordedLines(), std::vector<std::string>{"fifo " + watching.dir_});
  pending->reset();
  EXPECT_FALSE(Exists(watching.dir_));
}

// Records come and go concurrently; each destructor removes the directory
// whenever it is empty for a moment, also between another record's mkdir and
// open. Every record must still be made (before, a record gave up after its
// second try, leaving that negotiation's objects unrecorded).
TEST_F(PendingObjectsTest, EveryRecordIsMadeWhileOthersComeAndGo) {
  constexpr int kThreads = 4;
  constexpr int kRecordsPerThread = 5000;
  std::atomic<int> unrecorded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRecordsPerThread; ++i) {
        PendingObjectRecord record;
        if (record.path().empty()) unrecorded.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unrecorded.load(), 0) << "of " << kThreads * kRecordsPerThread << " records";
  EXPECT_FALSE(Exists(dir_));
}

// A line cut short (no newline: the process died in the middle of writing
// it) names nothing for certain, so it is not acted on.
TEST_F(PendingObjectsTest, ALineCutShortIsNotActedOn) {
  int queue = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  ASSERT_GE(queue, 0);
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ASSERT_GT(pid, 0);
  ::waitpid(pid, nullptr, 0);  // a pid that no longer exists
  struct stat ns;
  ASSERT_EQ(::stat("/proc/self/ns/pid", &ns), 0);
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  const std::string record = absl::StrCat(dir_, "/", ns.st_ino, "-", pid, "-0");
  FILE* f = std::fopen(record.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f, "msgq %d", queue);
  std::fclose(f);
  EXPECT_EQ(SweepStalePendingObjects(), 1);
  EXPECT_TRUE(QueueExists(queue));
  EXPECT_FALSE(Exists(record));
  ::msgctl(queue, IPC_RMID, nullptr);
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
  EXPECT_TRUE(PendingObjectRecord().path().empty());
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
