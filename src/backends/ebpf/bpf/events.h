/* dpv2 BPF: event records (abi/event.h) through a BPF ring buffer.
 *
 * A full ring loses the event, never the packet: the loss is counted as
 * DPV2_CNT_EVENTS_LOST so user space can report it.
 *
 *   struct dpv2_event *ev = bpf_ringbuf_reserve(&dpv2_events, sizeof(*ev), 0);
 *   if (ev) { fill(ev); bpf_ringbuf_submit(ev, 0); }
 */
#ifndef DPV2_BPF_EVENTS_H_
#define DPV2_BPF_EVENTS_H_

#include "common.h"
#include "counters.h"

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} dpv2_events SEC(".maps");

#endif /* DPV2_BPF_EVENTS_H_ */
