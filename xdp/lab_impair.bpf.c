// SPDX-License-Identifier: GPL-2.0
/* lab_impair.bpf.c — tc egress half of the lab's link impairment.
 *
 * This kernel has no sch_netem, so the lab emulates it: every frame leaving the
 * impaired veth is copied into a ring buffer and dropped here; the relay
 * (dpdk/lab/lab_impair.c) decides its fate and transmits it again with
 * skb->mark = TW_IMPAIR_MARK, which this program lets through.
 * Nothing is lost to the emulation itself: frames that do not fit are passed.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lab_impair.h"

/* Frames on their way to the relay. */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20);
} impair_rb SEC(".maps");

/* Per-CPU counters indexed by enum tw_impair_counter. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TW_IMPAIR_NCOUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} impair_counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
    __u64 *c = bpf_map_lookup_elem(&impair_counters, &slot);

    if (c)
        *c += 1;
}

SEC("tc")
int tw_impair(struct __sk_buff *skb)
{
    struct tw_impair_frame *f;
    __u32 len = skb->len;

    if (skb->mark == TW_IMPAIR_MARK) {
        skb->mark = 0;
        count(TW_IMPAIR_RELAYED);
        return TC_ACT_OK;
    }
    if (len == 0 || len > TW_IMPAIR_SNAP) {
        count(TW_IMPAIR_OVERSIZE);
        return TC_ACT_OK;
    }
    f = bpf_ringbuf_reserve(&impair_rb, sizeof(*f), 0);
    if (!f) {
        count(TW_IMPAIR_RING_FULL);
        return TC_ACT_OK;
    }
    if (bpf_skb_load_bytes(skb, 0, f->data, len) < 0) {
        bpf_ringbuf_discard(f, 0);
        count(TW_IMPAIR_OVERSIZE);
        return TC_ACT_OK;
    }
    f->len = len;
    bpf_ringbuf_submit(f, 0);
    count(TW_IMPAIR_HANDED);
    return TC_ACT_SHOT;
}

char _license[] SEC("license") = "GPL";
