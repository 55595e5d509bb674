// ProgramMap: a descriptor of one of the maps a loaded BPF program uses (by
// the program's map ids), for tests that read or change what the loader
// does not expose: the .rodata tunables, an entry deleted behind the
// datapath's back.
//
//   const int fd = testing::ProgramMap(prog_fd, [](const bpf_map_info& m) {
//     return std::string_view(m.name) == "dpv2_snat"; });
//   ...; close(fd);
#ifndef DPV2_TESTS_UNIT_EBPF_PROGRAM_MAP_H_
#define DPV2_TESTS_UNIT_EBPF_PROGRAM_MAP_H_

#include <unistd.h>

#include <bpf/bpf.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace dpv2::testing {

// The first map of the program that `match` accepts, or -1 (also when the
// program's maps cannot be read); the caller closes the descriptor.
inline int ProgramMap(int prog_fd, const std::function<bool(const bpf_map_info&)>& match) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return -1;
  }
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info with_ids{};
  with_ids.nr_map_ids = static_cast<uint32_t>(ids.size());
  with_ids.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(with_ids);
  if (bpf_obj_get_info_by_fd(prog_fd, &with_ids, &len) != 0) {
    return -1;
  }
  for (uint32_t id : ids) {
    const int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) {
      continue;
    }
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    if (bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0 && match(m)) {
      return fd;
    }
    close(fd);
  }
  return -1;
}

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_UNIT_EBPF_PROGRAM_MAP_H_
