// What the peer benchmark measures with, apart from the systems themselves:
// sample statistics, the machine's kernel memory counters, TCP probes from a
// client namespace (connect latency, request rate, waiting for a change to
// reach traffic), and the tables and PNG plots it prints.
//
//   Samples s;
//   for (...) s.Add(absl::ToDoubleMicroseconds(*ConnectOnce(client, vip, 80)));
//   std::printf("p50 %.1f us\n", s.Percentile(50));
#ifndef DPV2_TESTS_BENCH_PEERS_MEASURE_H_
#define DPV2_TESTS_BENCH_PEERS_MEASURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dpv2/net.h"
#include "netlab/netlab.h"

namespace dpv2::bench {

class Samples {
 public:
  void Add(double v) { values_.push_back(v); }
  size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  // Nearest-rank percentile (0-100); 0 when empty.
  double Percentile(double p) const;
  double Median() const { return Percentile(50); }

 private:
  mutable std::vector<double> values_;
  mutable bool sorted_ = false;
};

// SUnreclaim + Percpu + VmallocUsed from /proc/meminfo, in bytes: where
// netfilter rules, nf_tables objects and BPF maps live.
absl::StatusOr<int64_t> KernelMemoryBytes();
// Resident set size of this process, in bytes.
absl::StatusOr<int64_t> ResidentBytes();
// The BPF maps of one name: how many, their memlock bytes (the kernel's
// account in fdinfo; for maps without preallocation it follows the entries
// held), entries allowed and whether their memory is taken at creation.
struct BpfMapMemory {
  std::string name;
  int maps = 0;
  int64_t memlock_bytes = 0;
  uint64_t max_entries = 0;
  bool preallocated = false;
};
// Every BPF map this process holds a descriptor of whose id is above
// `min_id` and whose name starts with `name_prefix`, summed by name. (Map ids
// are system-wide: other processes' maps are left out.)
absl::StatusOr<std::vector<BpfMapMemory>> BpfMapMemlock(uint32_t min_id,
                                                        const std::string& name_prefix);
// The highest BPF map id in use now (0 when none).
uint32_t HighestBpfMapId();

// "AMD EPYC, 2 CPUs, Linux 6.1.0 x86_64"
std::string MachineDescription();

// One TCP connection from `client` to addr:port: the time connect() takes
// (SYN out to SYN-ACK in, through the node), then one request line whose
// reply must arrive; closed with RST so that no TIME_WAIT piles up.
absl::StatusOr<absl::Duration> ConnectOnce(const netlab::Netns& client, const IpAddr& addr,
                                           uint16_t port);

// Request/response exchanges on `connections` established connections for
// `duration`; returns requests per second (all connections together).
absl::StatusOr<double> RequestRate(const netlab::Netns& client, const IpAddr& addr,
                                   uint16_t port, int connections, absl::Duration duration);

// Established-flow packet rate through the node on one CPU, the node's own
// forwarding cost with as little else as possible: `client` sends one
// flow's TCP ACK frames (its address, a fixed source port -> addr:port,
// marked with DSCP kFloodDscp) from AF_PACKET on its eth0 for `duration`,
// and a 7-instruction BPF program on `server`'s eth0 tc ingress drops them
// before its IP stack. The first frame makes the flow's state (conntrack's
// loose pickup, dpv2's conntrack map); every later one takes the
// established path. On veth the sender's CPU carries each frame through
// the node and into the server pod, so the rate is 1 / (send + node +
// drop). Returns frames per second that reached the server's eth0.
inline constexpr uint8_t kFloodDscp = 0x2e;
absl::StatusOr<double> PacketRate(const netlab::Pod& client, const netlab::Pod& server,
                                  const IpAddr& addr, uint16_t port, uint16_t source_port,
                                  absl::Duration duration);

// Polls addr:port with new connections until a reply comes from the server
// named `server` (netlab EchoServer); returns the time from `since`. Gives
// up `timeout` after the call.
absl::StatusOr<absl::Duration> WaitServedBy(const netlab::Netns& client, const IpAddr& addr,
                                            uint16_t port, const std::string& server,
                                            absl::Time since, absl::Duration timeout);

// A table printed with aligned columns.
class Table {
 public:
  Table(std::string title, std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  std::string ToString() const;

 private:
  std::string title_;
  std::vector<std::vector<std::string>> rows_;
};

// One line of a plot: y values at the x positions of the plot.
struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

// Writes <dir>/<file>.png with gnuplot (log x axis); returns a message
// saying what was written, or why not (gnuplot absent).
std::string WritePlot(const std::string& dir, const std::string& file, const std::string& title,
                      const std::string& y_label, const std::vector<PlotSeries>& series,
                      bool log_y = false);

std::string FormatDouble(double v, int decimals);
// "3.1x" (dpv2 better when > 1 for costs), "-" when either side is missing.
std::string Ratio(double peer, double dpv2);

}  // namespace dpv2::bench

#endif  // DPV2_TESTS_BENCH_PEERS_MEASURE_H_
