/* version.c — build facts Python reports (tickwire version). */
#include <rte_version.h>

#include "port.h"

const char *tw_dpdk_version(void)
{
    return rte_version();
}
