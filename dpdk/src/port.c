/* port.c — EAL start-up and ports: what Python calls to set DPDK up before the
 * worker runs. One rx and one tx queue per port (a feed interface, or a pcap
 * replay). See port.h. */
#include <errno.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "port.h"

int tw_eal_init(int argc, char **argv)
{
    int rc = rte_eal_init(argc, argv);
    return rc < 0 ? -rte_errno : rc;
}

int tw_eal_cleanup(void)
{
    return rte_eal_cleanup();
}

uint32_t tw_eal_worker_lcores(uint32_t *out, uint32_t max)
{
    uint32_t n = 0;
    unsigned int lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (n < max)
            out[n] = lcore;
        n++;
    }
    return n;
}

uint32_t tw_eal_main_lcore(void)
{
    return rte_get_main_lcore();
}

const char *tw_eal_strerror(int err)
{
    return rte_strerror(err < 0 ? -err : err);
}

struct rte_mempool *tw_pool_create(const char *name, uint32_t mbufs)
{
    return rte_pktmbuf_pool_create(name, mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
}

int tw_port_find(const char *name, uint16_t *port)
{
    return rte_eth_dev_get_port_by_name(name, port);
}

int tw_port_start(uint16_t port, struct rte_mempool *pool, uint16_t rx_desc, uint16_t tx_desc)
{
    struct rte_eth_conf conf;
    struct rte_eth_dev_info info;
    memset(&conf, 0, sizeof(conf));
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc < 0)
        return rc;
    rc = rte_eth_dev_configure(port, 1, 1, &conf);
    if (rc < 0)
        return rc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc);
    if (rc < 0)
        return rc;
    int node = rte_eth_dev_socket_id(port);
    unsigned int socket = node < 0 ? (unsigned int)SOCKET_ID_ANY : (unsigned int)node;
    rc = rte_eth_rx_queue_setup(port, 0, rx_desc, socket, NULL, pool);
    if (rc < 0)
        return rc;
    rc = rte_eth_tx_queue_setup(port, 0, tx_desc, socket, NULL);
    if (rc < 0)
        return rc;
    rc = rte_eth_dev_start(port);
    if (rc < 0)
        return rc;
    rte_eth_promiscuous_enable(port); /* not every driver can: multicast reaches af_xdp anyway */
    return 0;
}

int tw_port_stop(uint16_t port)
{
    int rc = rte_eth_dev_stop(port);
    int rc2 = rte_eth_dev_close(port);
    return rc < 0 ? rc : rc2;
}

int tw_port_stats(uint16_t port, struct tw_port_stats *out)
{
    struct rte_eth_stats st;
    int rc = rte_eth_stats_get(port, &st);
    if (rc < 0)
        return rc;
    out->ipackets = st.ipackets;
    out->ibytes = st.ibytes;
    out->imissed = st.imissed;
    out->ierrors = st.ierrors;
    out->rx_nombuf = st.rx_nombuf;
    out->opackets = st.opackets;
    return 0;
}
