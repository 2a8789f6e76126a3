/* tw_meta.h — what the XDP feed filter writes in front of a redirected packet
 * (the XDP metadata area) and the DPDK worker reads at rte_pktmbuf_mtod() - 16.
 * One layout for both sides; it must stay 16 bytes (a multiple of 4, and small
 * enough for every driver's metadata area). */
#ifndef TW_META_H
#define TW_META_H

#define TW_META_MAGIC 0x74776d31u /* "twm1": the area really holds our metadata */

/* Flags in tw_xdp_meta.flags. */
#define TW_META_HW_TS 0x01 /* rx_ns is the NIC's hardware receive time, not bpf_ktime_get_ns() */

struct tw_xdp_meta {
    __u64 rx_ns;   /* arrival time, CLOCK_MONOTONIC ns (or the NIC's clock with TW_META_HW_TS) */
    __u32 magic;   /* TW_META_MAGIC */
    __u16 feed_id; /* the matched rule's feed */
    __u8 line;     /* TW_LINE_A or TW_LINE_B */
    __u8 flags;    /* TW_META_* */
};

#define TW_LINE_A 0
#define TW_LINE_B 1

#endif
