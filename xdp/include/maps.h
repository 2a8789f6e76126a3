/* maps.h — the feed filter's maps. Pinned by name under /sys/fs/bpf/tickwire/<iface>/
 * so rules and counters outlive the loader and are shared with the copy of this
 * object that DPDK's af_xdp driver loads (xdp_prog=). */
#ifndef TW_MAPS_H
#define TW_MAPS_H

#include <bpf/bpf_helpers.h>
#include "tw_rules.h"

/* (destination address, port) -> what to do with the feed's packets. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TW_MAX_RULES);
    __type(key, struct tw_rule_key);
    __type(value, struct tw_rule);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} feed_rules SEC(".maps");

/* rx queue -> AF_XDP socket; the name is the one DPDK's af_xdp driver looks for. */
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, TW_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

/* Per CPU, per rule id: matched packets and their verdicts. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TW_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tw_rule_stats);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_stats SEC(".maps");

/* Per CPU: packets that matched no rule, by reason. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tw_filter_stats);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} filter_stats SEC(".maps");

#endif
