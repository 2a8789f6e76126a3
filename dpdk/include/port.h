/* port.h — the face of DPDK itself: the build's DPDK release, the EAL,
 * mempools and ports.
 * Implemented by dpdk/src/version.c and dpdk/src/port.c.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_PORT_H
#define TW_PORT_H
#include <stdint.h>

/* ---- build facts ---------------------------------------------------------- */

/* The DPDK release the extension was compiled and linked against (rte_version()). */
const char *tw_dpdk_version(void);


/* ---- DPDK: EAL and ports (dpdk/src/port.c) ----------------------------------------- */

struct rte_mempool;

/* rte_eal_init: the number of arguments it took, or a negative errno. */
int tw_eal_init(int argc, char **argv);
int tw_eal_cleanup(void);
/* Worker lcores (not the main one), in order, into out; returns how many. */
uint32_t tw_eal_worker_lcores(uint32_t *out, uint32_t max);
uint32_t tw_eal_main_lcore(void);
/* The last DPDK error as text. */
const char *tw_eal_strerror(int err);

struct rte_mempool *tw_pool_create(const char *name, uint32_t mbufs);
/* rte_eth_dev_get_port_by_name: 0 and *port, or a negative errno. */
int tw_port_find(const char *name, uint16_t *port);
/* One rx and one tx queue, started, promiscuous: 0 or a negative errno. */
int tw_port_start(uint16_t port, struct rte_mempool *pool, uint16_t rx_desc, uint16_t tx_desc);
int tw_port_stop(uint16_t port);

struct tw_port_stats {
    uint64_t ipackets;
    uint64_t ibytes;
    uint64_t imissed;  /* dropped by the device: the worker did not keep up */
    uint64_t ierrors;
    uint64_t rx_nombuf;
    uint64_t opackets;
};
int tw_port_stats(uint16_t port, struct tw_port_stats *out);

#endif
