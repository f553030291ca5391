#include "bench/harness.h"

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bench {
namespace {

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Nearest-rank percentile of sorted `v`, p in (0, 1].
int64_t Percentile(const std::vector<int64_t>& v, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

double Micros(int64_t nanos) { return static_cast<double>(nanos) / 1e3; }

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

absl::Status PinToCpu(int cpu) {
  if (cpu < 0) return absl::OkStatus();
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return ErrnoStatus(absl::StrCat("sched_setaffinity(cpu ", cpu, ")"));
  }
  return absl::OkStatus();
}

namespace {

// The number after `key` ("VmRSS:", "Threads:") in /proc/PID/status (0:
// this process), a unit after it ignored.
absl::StatusOr<int64_t> ProcStatusNumber(pid_t pid, absl::string_view key) {
  std::string path = pid == 0 ? "/proc/self/status" : absl::StrCat("/proc/", pid, "/status");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, key)) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, "kB");
    int64_t value = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &value)) return value;
  }
  return absl::InternalError(absl::StrCat("no ", key, " in ", path));
}

}  // namespace

absl::StatusOr<int64_t> ResidentKib(pid_t pid) { return ProcStatusNumber(pid, "VmRSS:"); }

absl::StatusOr<int> ThreadCount(pid_t pid) {
  absl::StatusOr<int64_t> threads = ProcStatusNumber(pid, "Threads:");
  if (!threads.ok()) return threads.status();
  return static_cast<int>(*threads);
}

absl::StatusOr<int> FdCount(pid_t pid) {
  std::string path = pid == 0 ? "/proc/self/fd" : absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  int n = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return pid == 0 ? n - 1 : n;  // not the directory this reads
}

std::string MakePayload(size_t size) {
  std::string payload(size, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& c : payload) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return payload;
}

absl::StatusOr<std::vector<size_t>> ParseSizes(absl::string_view list) {
  std::vector<size_t> sizes;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    size_t size = 0;
    if (!absl::SimpleAtoi(item, &size) || size == 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad size \"", item, "\" in \"", list, "\""));
    }
    sizes.push_back(size);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("no sizes given");
  return sizes;
}

absl::StatusOr<LatencySummary> MeasureLatency(const LatencyOptions& options,
                                              const std::function<absl::Status()>& round_trip,
                                              const std::function<absl::Status(int)>& prepare) {
  std::vector<int64_t> samples;
  samples.reserve(options.iterations);
  int64_t deadline = 0;
  int done = 0;
  const int total = options.warmup + options.iterations;
  while (done < total) {
    if (done >= options.warmup && deadline == 0) {
      deadline = NowNanos() + absl::ToInt64Nanoseconds(options.max_time);
    }
    if (deadline != 0 && NowNanos() >= deadline && !samples.empty()) break;
    // Warm-up and recording never share a batch.
    int limit = done < options.warmup ? options.warmup : total;
    int n = std::min(std::max(options.batch, 1), limit - done);
    if (prepare) {
      absl::Status status = prepare(n);
      if (!status.ok()) return status;
    }
    for (int i = 0; i < n; ++i, ++done) {
      int64_t start = NowNanos();
      absl::Status status = round_trip();
      int64_t end = NowNanos();
      if (!status.ok()) return status;
      if (done >= options.warmup) samples.push_back(end - start);
    }
  }
  if (samples.empty()) return absl::InternalError("no round trips recorded");
  std::sort(samples.begin(), samples.end());
  LatencySummary summary;
  summary.samples = static_cast<int64_t>(samples.size());
  summary.p50_us = Micros(Percentile(samples, 0.50));
  summary.p99_us = Micros(Percentile(samples, 0.99));
  summary.p999_us = Micros(Percentile(samples, 0.999));
  summary.min_us = Micros(samples.front());
  summary.max_us = Micros(samples.back());
  summary.mean_us =
      Micros(std::accumulate(samples.begin(), samples.end(), int64_t{0})) / samples.size();
  return summary;
}

absl::StatusOr<StreamSummary> MeasureStream(const StreamOptions& options, size_t message_bytes,
                                            const std::function<absl::Status(int)>& stream) {
  // Untimed warm-up.
  int count = std::max(options.min_messages, 1);
  absl::Status status = stream(count);
  if (!status.ok()) return status;
  // Grow the stream until one lasts at least half the target; that one counts.
  const int64_t target = absl::ToInt64Nanoseconds(options.target_time);
  for (;;) {
    int64_t start = NowNanos();
    status = stream(count);
    int64_t elapsed = std::max<int64_t>(NowNanos() - start, 1);
    if (!status.ok()) return status;
    if (elapsed * 2 >= target || count >= options.max_messages) {
      StreamSummary summary;
      summary.messages = count;
      summary.message_bytes = static_cast<int64_t>(message_bytes);
      summary.seconds = static_cast<double>(elapsed) / 1e9;
      summary.messages_per_s = count / summary.seconds;
      summary.mb_per_s = summary.messages_per_s * static_cast<double>(message_bytes) / 1e6;
      return summary;
    }
    double factor = std::clamp(static_cast<double>(target) / elapsed, 2.0, 16.0);
    count = static_cast<int>(
        std::min(static_cast<double>(options.max_messages), count * factor));
  }
}

JsonLine& JsonLine::Add(absl::string_view key, absl::string_view value) {
  absl::StrAppend(&body_, body_.empty() ? "" : ",", JsonString(key), ":", JsonString(value));
  return *this;
}

JsonLine& JsonLine::Add(absl::string_view key, int64_t value) {
  absl::StrAppend(&body_, body_.empty() ? "" : ",", JsonString(key), ":", value);
  return *this;
}

JsonLine& JsonLine::Add(absl::string_view key, double value) {
  char number[64];
  std::snprintf(number, sizeof(number), "%.6g", std::isfinite(value) ? value : 0.0);
  absl::StrAppend(&body_, body_.empty() ? "" : ",", JsonString(key), ":", number);
  return *this;
}

JsonLine& JsonLine::Add(const LatencySummary& s) {
  return Add("samples", s.samples)
      .Add("p50_us", s.p50_us)
      .Add("p99_us", s.p99_us)
      .Add("p999_us", s.p999_us)
      .Add("min_us", s.min_us)
      .Add("max_us", s.max_us)
      .Add("mean_us", s.mean_us);
}

JsonLine& JsonLine::Add(const StreamSummary& s) {
  return Add("messages", s.messages)
      .Add("seconds", s.seconds)
      .Add("msgs_per_s", s.messages_per_s)
      .Add("mb_per_s", s.mb_per_s);
}

std::string JsonLine::ToString() const { return absl::StrCat("{", body_, "}"); }

void JsonLine::Print() const {
  std::string line = ToString() + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

int ReportFailure(absl::string_view program, const absl::Status& status) {
  JsonLine().Add("bench", "error").Add("program", program).Add("message", status.ToString()).Print();
  std::fprintf(stderr, "%s: %s\n", std::string(program).c_str(), status.ToString().c_str());
  return 1;
}

namespace {
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void WaitForStop(bool watch_stdin) {
  sigset_t set = StopSignals();
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  pollfd fds[2] = {{sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  char buffer[256];
  for (;;) {
    int n = poll(fds, watch_stdin ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[0].revents & POLLIN)) break;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      ssize_t got = read(STDIN_FILENO, buffer, sizeof(buffer));
      if (got <= 0 && !(got < 0 && errno == EINTR)) break;  // end of file: stop
    }
  }
  if (sfd >= 0) close(sfd);
}

}  // namespace bench
