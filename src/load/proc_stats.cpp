// What the load generator reads about processes: its own descriptor limit and
// another process's CPU time (the server's, for per-CPU-second figures).
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "conduit_load/load.hpp"

namespace conduit::load {
namespace {

// Sum of the CPU time of every thread of pid, from /proc/PID/task/*/schedstat
// (nanoseconds, field 1). Preferred over /proc/PID/stat, whose clock ticks
// (10 ms) are too coarse for the sub-second windows a fast server needs.
std::optional<double> schedstat_cpu_seconds(int pid) {
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::uint64_t total_ns = 0;
  bool any = false;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(entry.path() / "schedstat");
    std::uint64_t ns = 0;
    if (in >> ns) {
      total_ns += ns;
      any = true;
    }
  }
  if (!any || ec) return std::nullopt;
  return static_cast<double>(total_ns) / 1e9;
}

std::optional<double> stat_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may contain spaces; fields after it are plain.
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3..13 come before utime (14) and stime (15).
  for (int i = 3; i <= 13; ++i) rest >> field;
  rest >> utime >> stime;
  if (!rest) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

std::uint64_t raise_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur;
}

std::optional<double> process_cpu_seconds(int pid) {
  if (auto precise = schedstat_cpu_seconds(pid)) return precise;
  return stat_cpu_seconds(pid);
}

std::optional<double> server_cpu_seconds(const ConnectOptions& options) {
  if (options.server_pid <= 0) return std::nullopt;
  std::optional<double> total = process_cpu_seconds(options.server_pid);
  for (const int pid : options.more_server_pids) {
    const std::optional<double> more = process_cpu_seconds(pid);
    if (!total || !more) return std::nullopt;
    *total += *more;
  }
  return total;
}

}  // namespace conduit::load
