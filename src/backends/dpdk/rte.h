// The DPDK headers the backend uses, included once with the C++20 warnings
// they trigger silenced (DPDK 22.11 increments volatile variables in inline
// functions; that is its business, not a defect of ours).
//
//   #include "backends/dpdk/rte.h"
//   rte_mbuf* m = rte_pktmbuf_alloc(pool);
#ifndef DPV2_BACKENDS_DPDK_RTE_H_
#define DPV2_BACKENDS_DPDK_RTE_H_

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wvolatile"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#pragma GCC diagnostic pop

#endif  // DPV2_BACKENDS_DPDK_RTE_H_
