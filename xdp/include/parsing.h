/* parsing.h — bounds-checked header parsing for XDP.
 *
 * One rule for every helper: check the header fits between the cursor and
 * data_end, then advance the cursor past it and return what the next header is
 * (an ethertype, an IP protocol, a length), or return -1 and leave the cursor
 * alone. Callers never touch a byte a helper has not checked.
 *
 * The helpers work on any pointer pair: the XDP program includes them, and so does
 * the DPDK worker's receive stage (dpdk/src/rx.c) for AF_XDP and pcap frames.
 */
#ifndef TW_PARSING_H
#define TW_PARSING_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline /* user space without glibc's sys/cdefs.h */
#define __always_inline inline __attribute__((always_inline))
#endif
#ifdef __clang__
#define TW_UNROLL _Pragma("unroll")
#else
#define TW_UNROLL _Pragma("GCC unroll 2")
#endif

struct cursor {
    void *pos;
};

struct vlan_hdr {
    __be16 tci;
    __be16 encapsulated_proto;
};

static __always_inline int is_vlan(__u16 h_proto)
{
    return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet and up to two VLAN tags: returns the inner ethertype (network order). */
static __always_inline int parse_ethhdr(struct cursor *c, void *data_end)
{
    struct ethhdr *eth = c->pos;
    if ((void *)(eth + 1) > data_end)
        return -1;
    void *pos = eth + 1;
    __u16 proto = eth->h_proto;
    TW_UNROLL
    for (int i = 0; i < 2; i++) {
        if (!is_vlan(proto))
            break;
        struct vlan_hdr *vh = pos;
        if ((void *)(vh + 1) > data_end)
            return -1;
        proto = vh->encapsulated_proto;
        pos = vh + 1;
    }
    if (is_vlan(proto))
        return -1; /* a third tag: more than we parse */
    c->pos = pos;
    return proto;
}

/* IPv4 with options: returns the IP protocol; *frag says whether it is a fragment. */
static __always_inline int parse_iphdr(struct cursor *c, void *data_end, struct iphdr **out, int *frag)
{
    struct iphdr *ip = c->pos;
    if ((void *)(ip + 1) > data_end)
        return -1;
    int hdrsize = ip->ihl * 4;
    if (ip->version != 4 || hdrsize < (int)sizeof(*ip))
        return -1;
    if (c->pos + hdrsize > data_end)
        return -1;
    if (bpf_ntohs(ip->tot_len) < hdrsize)
        return -1;
    *frag = (ip->frag_off & bpf_htons(0x3fff)) != 0; /* MF set or a fragment offset */
    c->pos += hdrsize;
    *out = ip;
    return ip->protocol;
}

/* UDP: returns the payload length the header claims. */
static __always_inline int parse_udphdr(struct cursor *c, void *data_end, struct udphdr **out)
{
    struct udphdr *udp = c->pos;
    if ((void *)(udp + 1) > data_end)
        return -1;
    int len = bpf_ntohs(udp->len);
    if (len < (int)sizeof(*udp))
        return -1;
    c->pos = udp + 1;
    *out = udp;
    return len - (int)sizeof(*udp);
}

#endif
