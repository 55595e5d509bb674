#include "measure.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bpf/bpf.h"
#include "bpf/libbpf.h"
#include "core/status_macros.h"
#include "dpv2/packet.h"

namespace dpv2::bench {
namespace {

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in ToSockaddr(const IpAddr& addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  std::memcpy(&sa.sin_addr, addr.bytes().data(), 4);
  return sa;
}

// Waits until `fd` is ready for `events` or the deadline passes.
absl::Status WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    const int ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()) + 1);
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int r = poll(&p, 1, ms);
    if (r > 0) {
      return absl::OkStatus();
    }
    if (r == 0 || absl::Now() >= deadline) {
      return absl::DeadlineExceededError("no answer in time");
    }
    if (errno != EINTR) {
      return absl::ErrnoToStatus(errno, "poll");
    }
  }
}

// Connects a non-blocking socket (created in the client namespace) and
// returns when the handshake completed.
absl::Status ConnectFd(int fd, const IpAddr& addr, uint16_t port, absl::Time deadline) {
  const sockaddr_in sa = ToSockaddr(addr, port);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0 &&
      errno != EINPROGRESS) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect to ", addr.ToString(), ":", port));
  }
  DPV2_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline));
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return absl::ErrnoToStatus(err, absl::StrCat("connect to ", addr.ToString(), ":", port));
  }
  return absl::OkStatus();
}

absl::Status SendLine(int fd) {
  static constexpr char kRequest[] = "x\n";
  if (send(fd, kRequest, 2, MSG_NOSIGNAL) != 2) {
    return absl::ErrnoToStatus(errno, "send");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadLine(int fd, absl::Time deadline) {
  std::string reply;
  char buf[256];
  while (reply.empty() || reply.back() != '\n') {
    DPV2_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline));
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      return n == 0 ? absl::UnavailableError("connection closed before the reply")
                    : absl::ErrnoToStatus(errno, "recv");
    }
    reply.append(buf, n);
  }
  reply.pop_back();
  return reply;
}

// Sends one line and reads the reply line.
absl::StatusOr<std::string> ExchangeLine(int fd, absl::Time deadline) {
  DPV2_RETURN_IF_ERROR(SendLine(fd));
  return ReadLine(fd, deadline);
}

void CloseWithReset(int fd) {
  linger l{.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

absl::StatusOr<Fd> ClientSocket(const netlab::Netns& client) {
  DPV2_ASSIGN_OR_RETURN(int fd, client.OpenSocket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return Fd(fd);
}

int64_t MeminfoKb(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, key) && absl::ConsumePrefix(&line, ":")) {
      int64_t kb = 0;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) {
        return kb;
      }
    }
  }
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

long BpfSyscall(int cmd, bpf_attr* attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

}  // namespace

double Samples::Percentile(double p) const {
  if (values_.empty()) {
    return 0;
  }
  if (!sorted_) {
    std::sort(values_.begin(), values_.end());
    sorted_ = true;
  }
  const double rank = std::ceil(p / 100.0 * values_.size());
  const size_t i = std::clamp<size_t>(rank < 1 ? 0 : static_cast<size_t>(rank) - 1, 0,
                                      values_.size() - 1);
  return values_[i];
}

absl::StatusOr<int64_t> KernelMemoryBytes() {
  const std::string text = ReadFile("/proc/meminfo");
  int64_t total = 0;
  for (absl::string_view key : {"SUnreclaim", "Percpu", "VmallocUsed"}) {
    const int64_t kb = MeminfoKb(text, key);
    if (kb < 0) {
      return absl::NotFoundError(absl::StrCat("/proc/meminfo: no field ", key));
    }
    total += kb * 1024;
  }
  return total;
}

absl::StatusOr<int64_t> ResidentBytes() {
  const int64_t kb = MeminfoKb(ReadFile("/proc/self/status"), "VmRSS");
  if (kb < 0) {
    return absl::NotFoundError("/proc/self/status: no field VmRSS");
  }
  return kb * 1024;
}

uint32_t HighestBpfMapId() {
  uint32_t id = 0;
  while (true) {
    bpf_attr attr{};
    attr.start_id = id;
    if (BpfSyscall(BPF_MAP_GET_NEXT_ID, &attr) != 0) {
      return id;
    }
    id = attr.next_id;
  }
}

absl::StatusOr<std::vector<BpfMapMemory>> BpfMapMemlock(uint32_t min_id,
                                                        const std::string& name_prefix) {
  std::map<std::string, BpfMapMemory> by_name;
  std::set<uint32_t> seen;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return absl::InternalError(absl::StrCat("open /proc/self/fd: ", strerror(errno)));
  }
  std::vector<int> fds;
  while (dirent* e = readdir(dir)) {
    int fd = 0;
    if (absl::SimpleAtoi(e->d_name, &fd) && fd != dirfd(dir)) {
      fds.push_back(fd);
    }
  }
  closedir(dir);
  for (int fd : fds) {
    bpf_map_info info{};
    bpf_attr info_attr{};
    info_attr.info.bpf_fd = fd;
    info_attr.info.info_len = sizeof(info);
    info_attr.info.info = reinterpret_cast<uint64_t>(&info);
    // Fails for descriptors that are not BPF maps (programs, files).
    if (BpfSyscall(BPF_OBJ_GET_INFO_BY_FD, &info_attr) != 0 || info.id <= min_id ||
        !absl::StartsWith(info.name, name_prefix) || !seen.insert(info.id).second) {
      continue;
    }
    BpfMapMemory& m = by_name[info.name];
    m.name = info.name;
    ++m.maps;
    m.max_entries += info.max_entries;
    // Hash and LRU maps preallocate unless told not to; arrays always do;
    // LPM tries, rings and maps of maps never do (their inner maps count
    // on their own).
    const bool hash_like = info.type == BPF_MAP_TYPE_HASH || info.type == BPF_MAP_TYPE_PERCPU_HASH ||
                           info.type == BPF_MAP_TYPE_LRU_HASH ||
                           info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
    const bool array_like = info.type == BPF_MAP_TYPE_ARRAY ||
                            info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
    m.preallocated = array_like || (hash_like && (info.map_flags & BPF_F_NO_PREALLOC) == 0);
    const std::string fdinfo = ReadFile(absl::StrCat("/proc/self/fdinfo/", fd));
    for (absl::string_view line : absl::StrSplit(fdinfo, '\n')) {
      int64_t bytes = 0;
      if (absl::ConsumePrefix(&line, "memlock:") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &bytes)) {
        m.memlock_bytes += bytes;
      }
    }
  }
  std::vector<BpfMapMemory> out;
  for (auto& [name, m] : by_name) {
    out.push_back(std::move(m));
  }
  return out;
}

std::string MachineDescription() {
  std::string model = "unknown CPU";
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/cpuinfo"), '\n')) {
    if (absl::ConsumePrefix(&line, "model name")) {
      model = std::string(absl::StripAsciiWhitespace(absl::StripPrefix(
          absl::StripAsciiWhitespace(line), ":")));
      break;
    }
  }
  utsname u{};
  uname(&u);
  return absl::StrFormat("%s, %u CPUs, %s %s %s", model, std::thread::hardware_concurrency(),
                         u.sysname, u.release, u.machine);
}

absl::StatusOr<absl::Duration> ConnectOnce(const netlab::Netns& client, const IpAddr& addr,
                                           uint16_t port) {
  DPV2_ASSIGN_OR_RETURN(Fd fd, ClientSocket(client));
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  const absl::Time start = absl::Now();
  DPV2_RETURN_IF_ERROR(ConnectFd(fd.get(), addr, port, deadline));
  const absl::Duration took = absl::Now() - start;
  absl::StatusOr<std::string> reply = ExchangeLine(fd.get(), deadline);
  CloseWithReset(fd.get());
  if (!reply.ok()) {
    return reply.status();
  }
  return took;
}

absl::StatusOr<double> RequestRate(const netlab::Netns& client, const IpAddr& addr,
                                   uint16_t port, int connections, absl::Duration duration) {
  std::vector<Fd> fds;
  for (int i = 0; i < connections; ++i) {
    DPV2_ASSIGN_OR_RETURN(Fd fd, ClientSocket(client));
    DPV2_RETURN_IF_ERROR(ConnectFd(fd.get(), addr, port, absl::Now() + absl::Seconds(2)));
    DPV2_RETURN_IF_ERROR(ExchangeLine(fd.get(), absl::Now() + absl::Seconds(2)).status());
    fds.push_back(std::move(fd));
  }
  uint64_t done = 0;
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  // Every connection keeps one request in flight: the rate is what the node
  // forwards, not one round trip at a time.
  while (absl::Now() < end) {
    for (const Fd& fd : fds) {
      DPV2_RETURN_IF_ERROR(SendLine(fd.get()));
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    for (const Fd& fd : fds) {
      DPV2_RETURN_IF_ERROR(ReadLine(fd.get(), deadline).status());
      ++done;
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (const Fd& fd : fds) {
    CloseWithReset(fd.get());
  }
  return done / seconds;
}

namespace {

// The flood's frame: Ethernet to the pod's gateway, IPv4 (DSCP kFloodDscp,
// DF), TCP ACK, no data.
absl::StatusOr<std::vector<uint8_t>> FloodFrame(const netlab::Pod& client, const IpAddr& dst,
                                                uint16_t port, uint16_t source_port) {
  return PacketBuilder()
      .Eth(client.eth0().mac.ToString(), client.host().mac.ToString())
      .IPv4(client.ip(), dst)
      .Tos(kFloodDscp << 2)
      .DontFragment()
      .Tcp(source_port, port, kTcpAck)
      .Seq(1)
      .Ack(1)
      .Window(0xff00)
      .TryBuild();
}

// Deletes the clsact qdisc of `ifindex` (in the calling thread's namespace)
// and the flood drop program with it: libbpf deletes the qdisc only when
// both attach points are named (the server pod has no other tc programs).
void DetachFloodDrop(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  bpf_tc_hook_destroy(&hook);
}

// tc ingress on `ifindex` (in the calling thread's namespace): drop frames
// whose IPv4 TOS carries kFloodDscp, pass everything else. Returns the
// program's descriptor; the hook goes with the namespace or Detach.
absl::StatusOr<int> AttachFloodDrop(int ifindex) {
  const bpf_insn insns[] = {
      // r6 = skb (LD_ABS reads through r6); cls_bpf runs ingress programs
      // with the Ethernet header in front, so the TOS byte is at 15.
      {.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_1},
      {.code = BPF_LD | BPF_ABS | BPF_B, .imm = ETH_HLEN + 1},
      {.code = BPF_ALU64 | BPF_AND | BPF_K, .dst_reg = BPF_REG_0, .imm = 0xfc},
      {.code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_0, .off = 2, .imm = kFloodDscp << 2},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_SHOT},
      {.code = BPF_JMP | BPF_EXIT},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_OK},
      {.code = BPF_JMP | BPF_EXIT},
  };
  const int prog = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "flood_drop", "GPL", insns,
                                 sizeof(insns) / sizeof(insns[0]), nullptr);
  if (prog < 0) {
    return absl::ErrnoToStatus(-prog, "flood drop program: load");
  }
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    close(prog);
    return absl::ErrnoToStatus(-err, "flood drop program: clsact");
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog);
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0) {
    close(prog);
    DetachFloodDrop(ifindex);
    return absl::ErrnoToStatus(-err, "flood drop program: attach");
  }
  return prog;
}

// Received packets of `ifname` in the calling thread's namespace.
absl::StatusOr<uint64_t> RxPackets(absl::string_view ifname) {
  std::ifstream dev("/proc/thread-self/net/dev");
  std::string line;
  while (std::getline(dev, line)) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" :"), absl::SkipEmpty());
    uint64_t packets = 0;
    if (f.size() > 2 && f[0] == ifname && absl::SimpleAtoi(f[2], &packets)) {
      return packets;
    }
  }
  return absl::NotFoundError(absl::StrCat("no interface ", ifname, " in /proc/net/dev"));
}

}  // namespace

absl::StatusOr<double> PacketRate(const netlab::Pod& client, const netlab::Pod& server,
                                  const IpAddr& addr, uint16_t port, uint16_t source_port,
                                  absl::Duration duration) {
  if (!addr.is_v4()) {
    return absl::InvalidArgumentError("packet rate: IPv4 only");
  }
  int prog = -1;
  DPV2_RETURN_IF_ERROR(server.netns().Run([&]() -> absl::Status {
    DPV2_ASSIGN_OR_RETURN(prog, AttachFloodDrop(server.eth0().ifindex));
    return absl::OkStatus();
  }));
  Fd prog_fd(prog);
  absl::Cleanup detach = [&server] {  // whichever way this returns
    server.netns()
        .Run([&server] {
          DetachFloodDrop(static_cast<int>(server.eth0().ifindex));
          return absl::OkStatus();
        })
        .IgnoreError();
  };
  auto server_rx = [&server]() -> absl::StatusOr<uint64_t> {
    uint64_t packets = 0;
    DPV2_RETURN_IF_ERROR(server.netns().Run([&]() -> absl::Status {
      DPV2_ASSIGN_OR_RETURN(packets, RxPackets(server.eth0().name));
      return absl::OkStatus();
    }));
    return packets;
  };
  DPV2_ASSIGN_OR_RETURN(const uint64_t rx_before, server_rx());
  DPV2_ASSIGN_OR_RETURN(const int sock, client.netns().OpenSocket(AF_PACKET, SOCK_RAW, 0));
  Fd fd(sock);
  const int one = 1;
  setsockopt(sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_IP);
  ll.sll_ifindex = static_cast<int>(client.eth0().ifindex);
  if (bind(sock, reinterpret_cast<const sockaddr*>(&ll), sizeof(ll)) != 0) {
    return absl::ErrnoToStatus(errno, "packet rate: bind to the client's eth0");
  }
  DPV2_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, FloodFrame(client, addr, port, source_port));
  // One send() first, so that the flow's state exists before the clock.
  if (send(sock, frame.data(), frame.size(), 0) < 0) {
    return absl::ErrnoToStatus(errno, "packet rate: send");
  }
  constexpr int kBatch = 64;
  iovec iov{.iov_base = frame.data(), .iov_len = frame.size()};
  std::vector<mmsghdr> msgs(kBatch);
  for (mmsghdr& m : msgs) {
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  DPV2_ASSIGN_OR_RETURN(const uint64_t rx_start, server_rx());
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  while (absl::Now() < end) {
    if (sendmmsg(sock, msgs.data(), kBatch, 0) < 0 && errno != ENOBUFS && errno != EAGAIN) {
      return absl::ErrnoToStatus(errno, "packet rate: sendmmsg");
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  DPV2_ASSIGN_OR_RETURN(const uint64_t rx_end, server_rx());
  if (rx_end == rx_before) {
    return absl::UnavailableError(
        absl::StrCat("packet rate: the first frame to ", addr.ToString(), ":", port,
                     " did not reach the server"));
  }
  return (rx_end - rx_start) / seconds;
}

absl::StatusOr<absl::Duration> WaitServedBy(const netlab::Netns& client, const IpAddr& addr,
                                            uint16_t port, const std::string& server,
                                            absl::Time since, absl::Duration timeout) {
  // Sockets are made ahead, since making one in a namespace costs a thread.
  std::vector<Fd> spare;
  // The timeout runs from now: a program call that took long already
  // counts in the figure, and must not leave no time to look.
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (spare.empty()) {
      for (int i = 0; i < 32; ++i) {
        DPV2_ASSIGN_OR_RETURN(Fd fd, ClientSocket(client));
        spare.push_back(std::move(fd));
      }
    }
    Fd fd = std::move(spare.back());
    spare.pop_back();
    const absl::Time attempt_deadline = std::min(deadline, absl::Now() + absl::Milliseconds(200));
    if (!ConnectFd(fd.get(), addr, port, attempt_deadline).ok()) {
      continue;
    }
    absl::StatusOr<std::string> reply = ExchangeLine(fd.get(), attempt_deadline);
    const absl::Time seen = absl::Now();
    CloseWithReset(fd.get());
    if (reply.ok() && netlab::ServerName(*reply) == server) {
      return seen - since;
    }
  }
  return absl::DeadlineExceededError(absl::StrCat(addr.ToString(), ":", port,
                                                  " was not served by ", server, " within ",
                                                  absl::FormatDuration(timeout)));
}

Table::Table(std::string title, std::vector<std::string> header) : title_(std::move(title)) {
  rows_.push_back(std::move(header));
}

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Table::ToString() const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out = absl::StrCat("\n## ", title_, "\n");
  for (size_t r = 0; r < rows_.size(); ++r) {
    absl::StrAppend(&out, "|");
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < rows_[r].size() ? rows_[r][i] : "";
      absl::StrAppend(&out, " ", cell, std::string(width[i] - cell.size(), ' '), " |");
    }
    absl::StrAppend(&out, "\n");
    if (r == 0) {
      absl::StrAppend(&out, "|");
      for (size_t w : width) {
        absl::StrAppend(&out, std::string(w + 2, '-'), "|");
      }
      absl::StrAppend(&out, "\n");
    }
  }
  return out;
}

std::string WritePlot(const std::string& dir, const std::string& file, const std::string& title,
                      const std::string& y_label, const std::vector<PlotSeries>& series,
                      bool log_y) {
  if (dir.empty()) {
    return "";
  }
  if (!netlab::RunCommand({"mkdir", "-p", dir}).ok()) {
    return absl::StrCat("plot ", file, ".png skipped: cannot create ", dir);
  }
  if (!netlab::RunCommand({"gnuplot", "--version"}).ok()) {
    return absl::StrCat("plot ", file, ".png skipped: gnuplot is not installed (apt-get install "
                        "gnuplot-nox)");
  }
  const std::string png = absl::StrCat(dir, "/", file, ".png");
  std::string script = absl::StrCat(
      "set terminal png size 900,560\n", "set output '", png, "'\n", "set title '", title, "'\n",
      "set xlabel 'Services'\n", "set ylabel '", y_label, "'\n", "set logscale x\n",
      log_y ? "set logscale y\n" : "", "set key top left\n", "set grid\n", "plot ");
  std::vector<std::string> plots;
  std::string data;
  for (const PlotSeries& s : series) {
    if (s.points.empty()) {
      continue;
    }
    plots.push_back(absl::StrCat("'-' using 1:2 with linespoints lw 2 title '", s.name, "'"));
    for (const auto& [x, y] : s.points) {
      absl::StrAppend(&data, x, " ", y, "\n");
    }
    absl::StrAppend(&data, "e\n");
  }
  if (plots.empty()) {
    return absl::StrCat("plot ", file, ".png skipped: no data");
  }
  absl::StrAppend(&script, absl::StrJoin(plots, ", "), "\n", data);
  absl::Status st = netlab::RunCommand({"gnuplot"}, nullptr, script);
  if (!st.ok()) {
    return absl::StrCat("plot ", png, " failed: ", st.message());
  }
  return absl::StrCat("wrote ", png);
}

std::string FormatDouble(double v, int decimals) { return absl::StrFormat("%.*f", decimals, v); }

std::string Ratio(double peer, double dpv2) {
  if (peer <= 0 || dpv2 <= 0) {
    return "-";
  }
  return absl::StrFormat("%.2fx", peer / dpv2);
}

}  // namespace dpv2::bench
