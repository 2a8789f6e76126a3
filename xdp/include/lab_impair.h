/* lab_impair.h — what the lab's impairment BPF program shares with its relay
 * (dpdk/lab/lab_impair.c). Included by BPF and by user-space C. */
#ifndef TW_LAB_IMPAIR_H
#define TW_LAB_IMPAIR_H

/* Largest frame handed to the relay; larger ones (GSO) pass unimpaired and are
 * counted. The lab turns TSO/GSO off on its veths, so frames stay at MTU size. */
#define TW_IMPAIR_SNAP 2048

/* skb->mark of frames the relay transmits: the program lets them through. */
#define TW_IMPAIR_MARK 0x7477696d /* "twim" */

/* One frame in the ring buffer. */
struct tw_impair_frame {
    __u32 len;
    __u8 data[TW_IMPAIR_SNAP];
};

/* Slots of the program's per-CPU counter array. */
enum tw_impair_counter {
    TW_IMPAIR_HANDED = 0,  /* copied to the relay and dropped here */
    TW_IMPAIR_OVERSIZE,    /* longer than TW_IMPAIR_SNAP: passed unimpaired */
    TW_IMPAIR_RING_FULL,   /* ring buffer full: passed unimpaired */
    TW_IMPAIR_RELAYED,     /* the relay's own frames, passed */
    TW_IMPAIR_NCOUNTERS,
};

#endif
