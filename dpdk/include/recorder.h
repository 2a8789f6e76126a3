/* recorder.h — the face of the market data recorder (every feed frame, as pcap).
 * Implemented by dpdk/src/recorder.c.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_RECORDER_H
#define TW_RECORDER_H
#include <stdint.h>

/* ---- market data kept (dpdk/src/recorder.c) ------------------------------------------------
 * Every feed frame the worker receives, copied by the worker into a ring and written by a thread
 * of the recorder's own as pcap (nanosecond timestamps, CLOCK_REALTIME), one capture per line
 * (A, B, and R for retransmission answers) rotated at rotate_bytes, or all of them into one file
 * (single). A line read from a kernel socket is written with a made-up Ethernet/IPv4/UDP header
 * from its addresses. A full ring drops the frame and counts it; the worker never waits. */

struct tw_recorder_config {
    char dir[256];          /* where the per-line files go: [PREFIX-]LINE-YYYYmmddTHHMMSSZ-NNNN.pcap */
    char prefix[64];
    char single[256];       /* or: this one file for every line, never rotated ("" for per-line files) */
    uint64_t rotate_bytes;  /* a line's file is closed and the next one opened past this (0: never) */
    uint64_t ring_bytes;    /* a power of two, >= 4096: what the writer may fall behind by */
    uint32_t snaplen;       /* bytes kept of a frame (0: 65535) */
    uint32_t _pad;
    uint64_t keep_bytes;    /* the folder's captures of this prefix past this total: the oldest closed ones are
                             * deleted when a file is opened, never an open one (0: never deleted) */
};

struct tw_recorder_stats {
    uint64_t frames[3];     /* written, by line: A, B, retransmission */
    uint64_t bytes[3];
    uint64_t dropped;       /* frames the ring had no room for */
    uint64_t files;         /* opened so far */
    uint64_t rotations;
    uint64_t write_errors;  /* a file that could not be opened or written (the frame is lost) */
    uint64_t queued_bytes;  /* in the ring now */
    uint64_t deleted_files; /* closed captures deleted to stay under keep_bytes (each named on stderr) */
    uint64_t deleted_bytes;
};

struct tw_recorder;

/* NULL when the folder does not exist or the sizes are wrong. */
struct tw_recorder *tw_recorder_create(const struct tw_recorder_config *cfg);
/* Start the writer thread: 0 or a negative errno. */
int tw_recorder_start(struct tw_recorder *r);
/* Write what the ring holds, close the files, end the thread. */
void tw_recorder_stop(struct tw_recorder *r);
void tw_recorder_destroy(struct tw_recorder *r);
void tw_recorder_stats(const struct tw_recorder *r, struct tw_recorder_stats *out);
/* The producer's side (the worker's lcore; tests): a whole frame, or a datagram given headers.
 * Addresses in network order. 0, or -1 when the ring is full (counted as dropped). */
int tw_recorder_frame(struct tw_recorder *r, uint8_t line, uint64_t ts_ns, const uint8_t *frame, uint32_t len);
int tw_recorder_datagram(struct tw_recorder *r, uint8_t line, uint64_t ts_ns, uint32_t saddr, uint16_t sport,
                         uint32_t daddr, uint16_t dport, const uint8_t *payload, uint32_t len);
/* The benchmark's loops: n frames into the recorder (how many it took), and the baseline, n plain
 * copies of the frame into dst (a ring of dst_len bytes, as the recorder's) */
uint64_t tw_recorder_frames(struct tw_recorder *r, uint8_t line, const uint8_t *frame, uint32_t len, uint64_t n);
uint64_t tw_copy_frames(uint8_t *dst, uint64_t dst_len, const uint8_t *frame, uint32_t len, uint64_t n);

#endif
