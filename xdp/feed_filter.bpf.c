// SPDX-License-Identifier: GPL-2.0
/* feed_filter.bpf.c — tickwire's front door.
 *
 * For each received frame: parse Ethernet (two VLAN tags at most), IPv4 (with
 * options) and UDP; look the (destination address, port) up in feed_rules; a rule
 * that names its source (the exchange's publisher address and port) drops a packet
 * from anyone else (counted as wrong_source); on a redirect rule, stamp the arrival time, feed and line into the metadata area
 * (tw_meta.h, read by the DPDK worker) and redirect to the AF_XDP socket of the
 * frame's rx queue, or fall back to the kernel when that queue has none. Every
 * other frame (ARP, PTP, the order-entry TCP session, IPv6, fragments, anything
 * malformed) goes to the kernel untouched. Everything is counted.
 *
 * Built twice: feed_filter.bpf.o stamps bpf_ktime_get_ns(); with -DTW_HW_RX_TS,
 * feed_filter_hwts.bpf.o asks the NIC for its hardware receive time
 * (bpf_xdp_metadata_rx_timestamp, so it must be loaded bound to its device).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parsing.h"
#include "tw_meta.h"

#ifdef TW_HW_RX_TS
extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
#endif

static __always_inline struct tw_filter_stats *filter_counters(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&filter_stats, &zero);
}

static __always_inline __u64 arrival_ns(struct xdp_md *ctx, __u8 *flags)
{
#ifdef TW_HW_RX_TS
    __u64 ts = 0;
    if (bpf_xdp_metadata_rx_timestamp(ctx, &ts) == 0 && ts) {
        *flags |= TW_META_HW_TS;
        return ts;
    }
#endif
    return bpf_ktime_get_ns();
}

/* Stamp the metadata and redirect; XDP_PASS (counted) when that cannot be done. */
static __always_inline int redirect(struct xdp_md *ctx, const struct tw_rule *rule, struct tw_rule_stats *rs)
{
    __u8 flags = 0;
    __u64 now = arrival_ns(ctx, &flags);
    if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct tw_xdp_meta)) < 0) {
        rs->redirect_failed++;
        return XDP_PASS;
    }
    void *data = (void *)(long)ctx->data;
    struct tw_xdp_meta *meta = (void *)(long)ctx->data_meta;
    if ((void *)(meta + 1) > data) {
        rs->redirect_failed++;
        return XDP_PASS;
    }
    meta->rx_ns = now;
    meta->magic = TW_META_MAGIC;
    meta->feed_id = rule->feed_id;
    meta->line = rule->line;
    meta->flags = flags;
    /* no socket on this queue: the low bits of the flags are the action instead */
    int verdict = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
    if (verdict == XDP_REDIRECT)
        rs->redirected++;
    else
        rs->redirect_failed++;
    return verdict;
}

SEC("xdp")
int tw_feed_filter(struct xdp_md *ctx)
{
    void *data_end = (void *)(long)ctx->data_end;
    struct cursor c = { .pos = (void *)(long)ctx->data };
    struct tw_filter_stats *fs = filter_counters();
    struct iphdr *ip;
    struct udphdr *udp;
    int frag = 0;

    if (!fs)
        return XDP_PASS;
    fs->seen++;

    int proto = parse_ethhdr(&c, data_end);
    if (proto < 0)
        goto malformed;
    if (proto != bpf_htons(ETH_P_IP))
        goto not_feed;
    int l4 = parse_iphdr(&c, data_end, &ip, &frag);
    if (l4 < 0)
        goto malformed;
    if (frag) {
        fs->fragments++;
        return XDP_PASS;
    }
    if (l4 != IPPROTO_UDP)
        goto not_feed;
    if (parse_udphdr(&c, data_end, &udp) < 0)
        goto malformed;

    struct tw_rule_key key = { .daddr = ip->daddr, .dport = udp->dest, .pad = 0 };
    struct tw_rule *rule = bpf_map_lookup_elem(&feed_rules, &key);
    if (!rule)
        goto not_feed;
    __u32 id = rule->rule_id;
    struct tw_rule_stats *rs = bpf_map_lookup_elem(&rule_stats, &id);
    if (!rs)
        goto not_feed; /* a rule id past TW_MAX_RULES: the loader refuses these */
    rs->matched++;
    if (rule->saddr && (ip->saddr != rule->saddr || (rule->sport && udp->source != rule->sport))) {
        rs->wrong_source++; /* to the feed's group, not from its publisher: a spoof, or a stray */
        return XDP_DROP;
    }
    switch (rule->action) {
    case TW_ACT_REDIRECT:
        return redirect(ctx, rule, rs);
    case TW_ACT_DROP:
        rs->dropped++;
        return XDP_DROP;
    default:
        rs->passed++;
        return XDP_PASS;
    }

not_feed:
    fs->not_feed++;
    return XDP_PASS;
malformed:
    fs->malformed++;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
