/* tw_rules.h — the feed rules and counters the filter shares with its loader
 * (xdp/ in Python reads and writes them through the pinned maps). */
#ifndef TW_RULES_H
#define TW_RULES_H

#define TW_MAX_RULES 256  /* rule ids 0..255: the per-rule counter array's size */
#define TW_MAX_QUEUES 64  /* AF_XDP sockets: one per rx queue */

/* What to do with a packet whose (destination address, port) matches a rule. */
enum tw_action {
    TW_ACT_REDIRECT = 1, /* stamp the metadata, send to the queue's AF_XDP socket */
    TW_ACT_PASS = 2,     /* to the kernel, counted */
    TW_ACT_DROP = 3,     /* dropped, counted */
};

/* feed_rules key: where a feed's packets go (network byte order, as on the wire). */
struct tw_rule_key {
    __u32 daddr;
    __u16 dport;
    __u16 pad; /* zero */
};

/* feed_rules value. */
struct tw_rule {
    __u32 rule_id; /* index into rule_stats, < TW_MAX_RULES */
    __u16 feed_id;
    __u8 action;   /* enum tw_action */
    __u8 line;     /* TW_LINE_A or TW_LINE_B */
    __u32 saddr;   /* the exchange's publisher (network order): a packet from elsewhere is dropped
                      (wrong_source); 0: any source */
    __u16 sport;   /* and its UDP port (network order); 0: any port */
    __u16 pad;     /* zero */
};

/* rule_stats value, per CPU and per rule: every matched packet is counted once in
 * matched and once in exactly one of the verdicts. */
struct tw_rule_stats {
    __u64 matched;
    __u64 redirected;
    __u64 passed;
    __u64 dropped;
    __u64 redirect_failed; /* no AF_XDP socket on the queue (or no room for metadata): passed */
    __u64 wrong_source;    /* not from the rule's source (saddr, sport): dropped, whatever the action */
};

/* filter_stats value, per CPU: packets that matched no rule. */
struct tw_filter_stats {
    __u64 seen;       /* every packet */
    __u64 not_feed;   /* not IPv4 UDP, or no rule: passed untouched */
    __u64 fragments;  /* IPv4 fragments: passed untouched */
    __u64 malformed;  /* truncated or inconsistent headers: passed untouched */
};

#endif
