/* worker.h — the face of the worker: its configuration, its shared statistics,
 * its commands, start/stop and the event ring.
 * Implemented by dpdk/src/worker.c (the loop) and worker_setup.c (create, launch, stop, events).
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_WORKER_H
#define TW_WORKER_H
#include <stdint.h>
#include "events.h"
#include "book.h"
#include "feed.h"
#include "risk.h"
#include "strategy.h"
#include "order_entry.h"
#include "histogram.h"
#include "recorder.h"


/* ---- the worker: rx bursts -> MoldUDP64 -> ITCH -> books -> orders (dpdk/src/worker.c) ---
 * One lcore polls its ports; the receive stage (rx.c) takes each frame's XDP
 * arrival stamp from the metadata (af_xdp ports), finds the feed line and the UDP
 * payload; the feed (mold.c) hands back the messages in sequence, the decoder
 * (itch.c) applies them to the books, the order path (orders.c) asks the
 * strategies, the risk chain and the venue. While a gap is open and the other line
 * has not filled it for retrans_delay_ns, it asks the retransmission server
 * (retrans_fd, a connected UDP socket) and reads its answers as line 2. Events go
 * to an rte_ring (events.c). */

enum tw_worker_consts {
    TW_WORKER_MAX_PORTS = 4,
    TW_WORKER_MAX_STRATEGIES = 64, /* = TW_RISK_MAX_ROWS = TW_BOOKS_MAX_WATCHED: a row and a watch each */
    TW_LINE_BY_DEST = 255,        /* find the line from the destination (replays) */
    TW_STATS_MAGIC = 0x74777333,  /* "tws3": a tw_worker_stats of this layout (kill reason, control heartbeat) */
};

enum tw_stage {
    TW_STAGE_WIRE = 0,    /* XDP arrival stamp -> rx burst returned */
    TW_STAGE_QUEUE = 1,   /* rx burst returned -> this packet decoded (waits behind the burst) */
    TW_STAGE_APPLY = 2,   /* decoded -> every message of the packet applied to the books */
    TW_STAGE_TOTAL = 3,   /* XDP arrival stamp -> books applied */
    TW_STAGE_DECIDE = 4,  /* books applied -> the strategy's answer */
    TW_STAGE_RISK = 5,    /* the risk chain, per new order */
    TW_STAGE_SEND = 6,    /* an order passed risk -> its decision's one send() returned */
    TW_STAGE_TICK_TO_TRADE = 7, /* XDP arrival stamp of the triggering packet -> send() returned */
    TW_NSTAGES = 8
};

struct tw_worker_port {
    uint16_t port_id;
    uint8_t line;      /* 0 A, 1 B, or TW_LINE_BY_DEST: the configured groups, the retransmission
                          port, and any other datagram as line A */
    uint8_t has_meta;  /* frames carry tw_xdp_meta in front (af_xdp with our filter) */
};

struct tw_control; /* issue 16 (F): the command socket, below */

struct tw_worker_config {
    struct tw_worker_port ports[4];
    uint32_t nports;
    uint32_t group[2];      /* line A and B destination addresses (network order); 0: any */
    uint16_t udp_port[2];   /* line A and B destination ports; 0: any */
    uint16_t retrans_port;  /* source port of retransmission answers in a replay; 0: none */
    uint16_t burst;         /* rx burst size, <= 64 */
    int32_t retrans_fd;     /* connected UDP socket to the re-request server, or -1 */
    uint32_t retrans_max;   /* messages asked for in one request */
    uint64_t retrans_delay_ns;    /* how long the other line may take to fill a gap first */
    uint64_t retrans_interval_ns; /* ask again after this long without progress */
    uint64_t give_up_ns;    /* a gap open this long is skipped and the books stay stale; 0: never */
    uint64_t idle_stop_ns;  /* stop when nothing came for this long after the last packet, or
                               from the start if none came (replays); 0: never */
    uint32_t idle_sleep_us; /* sleep this long after an empty poll (0: busy-poll, the default) */
    uint32_t event_ring_size; /* a power of two */
    struct tw_recorder *recorder; /* every frame received (and every retransmission answer) is kept
                                     there, NULL: none */
    /* trading (strategies, risk and a session, or none of them): each strategy decides on each
     * change of its instrument's book, the risk chain passes each new order (against the
     * strategy's row: its slot here), the session sends it. The strategies share one series of
     * UserRefNums (tw_strategy_share_refs); one instrument may have several. */
    struct tw_strategy *strategies[64];
    uint32_t nstrategies;
    struct tw_risk *risk;
    struct tw_ouch *ouch;
    uint64_t ouch_poll_ns;  /* read the session's answers at most this often (default 20 us) */
    uint8_t cancel_each;    /* a kill switch sends each cancel in a send() of its own (the benchmark's
                               baseline); 0: all of them in one */
    /* kernel sockets instead of (or beside) ports: bound UDP sockets, one a line (0: none), with
     * SO_TIMESTAMPNS on, read with recvmmsg; their arrival stamp is the kernel's receive
     * timestamp (CLOCK_REALTIME, mapped onto CLOCK_MONOTONIC) */
    int32_t sock_fd[2];
    /* issue 16 (B): who may send a line's datagrams: its publisher's address (network order) and
     * UDP port; 0: any. The receive stage refuses the others (rx.c), the feed counts them. */
    uint32_t src_addr[2];
    uint16_t src_port[2];
    /* issue 16 (F): the worker's command socket (control.c: tw_control_open), read about every
     * millisecond by a trading worker; NULL: none */
    struct tw_control *control;
    /* issue 16: the dead-man switch (A): the loop throws its own kill switch when the control
     * loop's stamp (stats.control_heartbeat_ns) is older than this; 0: off */
    uint64_t deadman_ns;
    /* issue 16 (A): on its way out (tw_worker_stop, a replay run dry) a trading worker whose session is up
     * with orders open throws the kill switch (TW_KILL_STOPPING) and reads the venue's answers until none
     * is open or this long after the kill, before its loop ends; 0: 2 s */
    uint64_t stop_cancel_ns;
};

struct tw_worker_stats {
    uint64_t magic;         /* TW_STATS_MAGIC once initialised */
    uint64_t size;          /* sizeof(struct tw_worker_stats) */
    uint64_t pid;
    uint64_t running;       /* 1 while the lcore loop runs */
    uint64_t started_ns;    /* CLOCK_MONOTONIC */
    uint64_t heartbeat_ns;  /* CLOCK_MONOTONIC, refreshed by the loop about every millisecond */
    uint64_t last_packet_ns;
    uint64_t polls;
    uint64_t busy_polls;    /* polls that found packets */
    uint64_t rx_packets[4]; /* by worker port */
    uint64_t rx_bytes;
    uint64_t not_udp;       /* frames that are not IPv4 UDP (or are fragments or truncated) */
    uint64_t multi_segment; /* frames in more than one mbuf, or datagrams cut short: dropped and counted */
    uint64_t no_meta;       /* af_xdp frames without our metadata, datagrams without a kernel stamp */
    uint64_t sock_errors;   /* recvmmsg failures on the line sockets */
    uint64_t retrans_requests;
    uint64_t retrans_answers;
    uint64_t retrans_errors; /* send or receive failures on retrans_fd */
    uint64_t events;
    uint64_t events_dropped; /* the ring was full */
    uint64_t recorded;      /* frames handed to the recorder */
    uint64_t record_dropped; /* frames the recorder's ring had no room for */
    uint64_t decisions;     /* book changes handed to the strategy */
    uint64_t orders_sent;
    uint64_t cancels_sent;
    uint64_t orders_denied; /* by the risk chain (counted by code in the risk stats) */
    uint64_t send_failed;   /* the session was not up, its buffer full, or a broken link took the order */
    uint64_t order_events;  /* the exchange's answers read */
    uint64_t executed;      /* shares */
    uint64_t unknown_orders; /* answers about an order the risk chain does not hold open */
    uint64_t kill;          /* 1 stops new orders and pulls the quotes (write kill_reason first); the loop reads
                               it once per iteration. One-way: writing 0 releases nothing; a release is a
                               command (TW_CMD_RELEASE on the command socket), journaled with who asked */
    uint64_t killed;        /* what the loop has acted on */
    uint64_t killed_ns;     /* CLOCK_MONOTONIC when it acted */
    uint64_t live_orders;
    /* the last command the loop carried out, from its command socket (control.c; other processes no
     * longer write these): cmd_seq counts them, cmd_done is its number (the TW_EV_COMMAND event's) */
    uint64_t cmd_seq;
    uint64_t cmd;           /* enum tw_worker_cmd */
    uint64_t cmd_arg;       /* the instrument's locate, the strategy's slot */
    uint64_t cmd_done;
    uint64_t cmd_done_ns;   /* CLOCK_MONOTONIC when it was carried out */
    uint64_t cmd_result;    /* enum tw_command_result */
    uint64_t kill_cancels;  /* cancels the last kill (any level) sent */
    uint64_t kill_sent_ns;  /* CLOCK_MONOTONIC when their send() returned */
    uint64_t killed_strategy;  /* bit i set while strategy i is killed on its own */
    uint64_t killed_instrument; /* bit i set while strategy i's instrument is killed */
    /* issue 16 */
    uint64_t control_heartbeat_ns; /* CLOCK_MONOTONIC, stamped by the control loop (Python) each round */
    uint64_t kill_reason;   /* enum tw_kill_reason: why the kill switch was last thrown */
    /* issue 16 (C): answers from the venue that cannot be (orders.c); each throws the kill switch and
     * raises TW_EV_BAD_ANSWER with b = its number n, its bytes in bad_answer[n % 4] */
    uint64_t bad_answers;
    struct tw_bad_answer_bytes bad_answer[4];
    struct tw_feed_state feed;
    struct tw_book_stats book;
    struct tw_hist hist[8];  /* by tw_stage */
};

/* Why the global kill switch was thrown (stats.kill_reason, and the TW_EV_KILL event's code). */
enum tw_kill_reason {
    TW_KILL_OPERATOR = 0,     /* a command (tickwire kill) or the risk manager */
    TW_KILL_DEADMAN = 1,      /* the control loop's heartbeat went stale (A) */
    TW_KILL_EVENTS_DROPPED = 2, /* the event ring was full: the journal would miss orders (A) */
    TW_KILL_JOURNAL = 3,      /* the journal cannot write (A) */
    TW_KILL_STOPPING = 4,     /* the process is on its way out (A) */
    TW_KILL_BAD_ANSWER = 5,   /* the venue answered something impossible (C) */
    TW_KILL_RISK_MANAGER = 6, /* the Python risk manager (F) */
};

enum tw_worker_cmd {
    TW_CMD_KILL_INSTRUMENT = 1,    /* cmd_arg: its locate; risk refuses its new orders, the strategies trading
                                      it stop, its open orders are cancelled */
    TW_CMD_RELEASE_INSTRUMENT = 2,
    TW_CMD_KILL_STRATEGY = 3,      /* cmd_arg: its slot; it stops, risk refuses its orders, its open orders are
                                      cancelled */
    TW_CMD_RELEASE_STRATEGY = 4,
    /* issue 16 (F): the commands of the command socket (struct tw_command) */
    TW_CMD_KILL = 5,               /* the whole worker: kill_reason OPERATOR (RISK_MANAGER from the risk manager) */
    TW_CMD_RELEASE = 6,
    TW_CMD_RELOAD = 7,             /* the control loop reloads its config: the worker signals its own main thread
                                      (SIGHUP, when a handler is installed; none: TW_CMDR_NO_TARGET) */
};

/* ---- issue 16 (F): the command socket (dpdk/src/control.c) ----------------------------------
 * Every operator command (tickwire kill, resume, reload) and every trip of the risk manager is one
 * datagram, a struct tw_command, on the worker's unix datagram socket (STATE_DIR/NAME.control.sock,
 * mode 0600, SO_PASSCRED on). The kernel attaches the sender's uid, gid and pid (SCM_CREDENTIALS);
 * the sender passes one end of a socketpair (SCM_RIGHTS) for the answer, a struct
 * tw_command_answer. The loop reads the socket about every millisecond (when the heartbeat moves),
 * carries out each command in the order they came (nothing overwrites another), raises a
 * TW_EV_COMMAND event for each, and answers. Only root and the worker's own user may command it. */
enum tw_command_consts {
    TW_COMMAND_MAGIC = 0x74776331, /* "twc1" */
    TW_COMMAND_TEXTS = 64,         /* the last commands whose texts tw_control_text still has */
};

enum tw_command_result {
    TW_CMDR_DONE = 0,
    TW_CMDR_NO_TARGET = 1,  /* no such instrument locate or strategy slot; reload: no reloader */
    TW_CMDR_REFUSED = 2,    /* the sender is neither root nor the worker's user */
    TW_CMDR_MALFORMED = 3,  /* not a struct tw_command, an unknown command, or no credentials */
};

enum tw_command_by {
    TW_BY_OPERATOR = 0,
    TW_BY_RISK_MANAGER = 1, /* honoured only from the worker's own process (the control loop) */
};

struct tw_command {
    uint32_t magic;       /* TW_COMMAND_MAGIC */
    uint16_t cmd;         /* enum tw_worker_cmd */
    uint8_t by;           /* enum tw_command_by */
    uint8_t _pad;
    uint64_t arg;         /* the instrument's locate, the strategy's slot */
    uint64_t request_id;  /* the sender's, in the answer and the event */
    char target[24];      /* the target as the sender named it (for the journal; arg is what counts) */
    char claim[32];       /* whom the sender says it acts for (SUDO_USER): a claim, never "who" */
    char reason[192];     /* why (for the journal) */
};

struct tw_command_answer {
    uint32_t magic;       /* TW_COMMAND_MAGIC */
    uint32_t result;      /* enum tw_command_result */
    uint64_t request_id;
    uint64_t number;      /* the worker's number for the command (the event's, tw_control_text's) */
    uint64_t done_ns;     /* CLOCK_MONOTONIC when it was carried out */
    uint64_t cancels;     /* a kill: the cancels it sent */
    uint64_t cancels_sent_ns; /* ... and when their send() returned */
    uint32_t uid, gid;    /* the sender, as the kernel said */
    uint64_t pid;
};

/* The command socket over fd (a bound AF_UNIX SOCK_DGRAM socket, SO_PASSCRED on; it stays the
 * caller's to close); NULL without memory. Give it to tw_worker_config.control. */
struct tw_control *tw_control_open(int fd);
void tw_control_close(struct tw_control *c);
/* The texts command `number` carried: 0, or -1 when it is no longer kept (TW_COMMAND_TEXTS later). */
int tw_control_text(const struct tw_control *c, uint64_t number, struct tw_command *out);

struct tw_worker;

/* The worker over these books and feed; stats may live in shared memory (the
 * caller's, sized sizeof(struct tw_worker_stats)). NULL when the ring could not
 * be created (EAL not initialised, or the name is taken). */
struct tw_worker *tw_worker_create(const struct tw_worker_config *cfg, struct tw_books *books,
                                   struct tw_feed *feed, struct tw_worker_stats *stats, const char *name);
void tw_worker_destroy(struct tw_worker *w);
/* Run the loop on this thread until tw_worker_stop (or idle_stop_ns): 0. */
int tw_worker_run(struct tw_worker *w);
/* Run it on a worker lcore: 0 or a negative errno. */
int tw_worker_launch(struct tw_worker *w, uint32_t lcore);
/* Ask the loop to end; then tw_worker_wait for a launched one. */
void tw_worker_stop(struct tw_worker *w);
int tw_worker_wait(uint32_t lcore);
/* Move up to max events from the ring to out; returns how many. */
uint32_t tw_worker_events(struct tw_worker *w, struct tw_event *out, uint32_t max);
/* Drive the worker from the caller's own reads instead of tw_worker_run (the Python
 * socket baseline of the tick-to-trade benchmark): one datagram of a line, from the
 * books on, exactly as a port or socket would hand it over; kernel_stamp_ns is its
 * SO_TIMESTAMPNS receive stamp (CLOCK_REALTIME), 0 for none. */
void tw_worker_datagram(struct tw_worker *w, uint32_t line, const uint8_t *payload, uint32_t len,
                        uint64_t kernel_stamp_ns);
/* ... and the rest of one loop iteration: the kill switch, retransmission, the session's
 * answers, the strategy's timer, statistics. */
void tw_worker_service(struct tw_worker *w);

/* The worker's clock (dpdk/src/clock.c): the TSC mapped onto CLOCK_MONOTONIC, recalibrated
 * every 100 ms, never going back. Here for tests; the loop reads it inline (src/clock.h). */
struct tw_clock {
    uint64_t tsc0, ns0, mult; /* ns = ns0 + (tsc - tsc0) * mult >> 32 */
    int64_t real_off;         /* CLOCK_REALTIME - CLOCK_MONOTONIC */
    uint64_t tsc_m, ns_m;     /* the last calibration's own reads (the anchor may be later: it never steps back) */
};
void tw_clock_calibrate(struct tw_clock *c);
uint64_t tw_clock_read(const struct tw_clock *c);

#endif
