/* order_entry.h — the face of order entry: OUCH 5.0 messages over the worker's
 * SoupBinTCP 3.00 session.
 * Implemented by dpdk/src/session.c (SoupBinTCP) and ouch.c (OUCH messages).
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_ORDER_ENTRY_H
#define TW_ORDER_ENTRY_H
#include <stdint.h>

struct tw_risk; /* risk.h */

/* ---- order entry: OUCH 5.0 (dpdk/src/ouch.c) over SoupBinTCP 3.00 (dpdk/src/session.c) -------
 * The worker's own session on a kernel TCP socket, driven by tw_ouch_poll from
 * its loop (never blocking): connect, login asking for the next sequenced
 * message it has not seen (the server replays from there), client heartbeats,
 * link timeout, reconnect. The exchange's messages come back parsed. */

enum tw_ouch_state {
    TW_OUCH_DOWN = 0,        /* not connected; reconnects after reconnect_ns */
    TW_OUCH_CONNECTING = 1,
    TW_OUCH_LOGIN_SENT = 2,
    TW_OUCH_UP = 3,          /* logged in: orders may go */
    TW_OUCH_ENDED = 4,       /* the server ended the session (Z): no reconnect */
    TW_OUCH_REJECTED = 5,    /* the login was refused as not authorized (J A): no reconnect; a refusal
                                because the session is not available (J S) is retried after reconnect_ns */
};

struct tw_ouch_config {
    uint32_t addr;           /* the exchange's IPv4 address, network order */
    uint16_t port;
    uint16_t _pad;
    char username[6];
    char password[10];
    char session[10];        /* the session asked for; spaces: the current one */
    uint8_t _pad2[6];
    uint64_t heartbeat_ns;   /* send a heartbeat after this long without sending (1 s) */
    uint64_t timeout_ns;     /* the link is dead after this long without hearing (15 s) */
    uint64_t reconnect_ns;   /* between connection attempts */
    uint64_t next_seq;       /* the first sequenced message to ask for at login (0: 1, the whole day); after a
                                restart, the one after the last the journal kept */
};

enum tw_ouch_msg_consts {
    TW_OUCH_MSG_NOT_SENT = 1, /* a tw_ouch_msg type of our own: the order user_ref was queued, but the link
                                 broke before it was written to the socket; it never reached the exchange */
    TW_OUCH_MSG_BAD = 2,      /* another of our own: the session read something that cannot be (reason: enum
                                 tw_bad_answer, raw: its bytes); nothing of it was applied */
    TW_OUCH_RAW = 96,         /* bytes of a message kept with it (tw_ouch_msg.raw); longer ones are cut */
};

/* What makes an answer from the venue impossible (TW_EV_BAD_ANSWER's code). The session (session.c)
 * finds the first three, the order path (risk_orders.c, tw_risk_answer) the rest, against the order the
 * answer names. Any of them throws the worker's kill switch (orders.c). */
enum tw_bad_answer {
    TW_BAD_LOGIN_MID_SESSION = 1, /* a Login Accepted on a session already up (ignored: no renumbering) */
    TW_BAD_LOGIN_SEQUENCE = 2,    /* a Login Accepted whose next sequence is not the one the login asked for:
                                     messages missed (above) or replayed twice (below) */
    TW_BAD_BEFORE_LOGIN = 3,      /* a sequenced message before the login was accepted (ignored) */
    TW_BAD_UNKNOWN_ORDER = 4,     /* A E C J U about a UserRefNum we hold no open order for */
    TW_BAD_ACCEPTED_TWICE = 5,    /* an Accepted for an order already accepted */
    TW_BAD_ACCEPT_MISMATCH = 6,   /* an Accepted whose side, quantity or price is not what was sent */
    TW_BAD_NOT_ACCEPTED = 7,      /* an Executed or Canceled for an order the venue has not accepted yet */
    TW_BAD_OVERFILL = 8,          /* an Executed for more shares than the order has open (counted in full) */
    TW_BAD_FILL_PRICE = 9,        /* an Executed through the order's limit (a buy above it, a sell below) */
    TW_BAD_CANCEL_SIZE = 10,      /* a Canceled that takes 0 shares, or more than the order has open */
    TW_BAD_REJECT_ACCEPTED = 11,  /* a Rejected for an order the venue had accepted */
    TW_BAD_UNASKED_CHANGE = 12,   /* a Replaced or Modified: the worker never asks for either */
    TW_BAD_UNACCOUNTED = 13,      /* a Broken Trade or Trade Correction: positions are in doubt */
    TW_BAD_NCODES = 14
};

/* The bytes of one bad answer, kept in the worker's stats (bad_answer[n % 4]) for Python to journal
 * when it drains the TW_EV_BAD_ANSWER whose b is n. */
struct tw_bad_answer_bytes {
    uint64_t n;              /* which bad answer (1, 2, ...); 0: none yet */
    uint32_t len;            /* its whole length (bytes holds the first TW_OUCH_RAW) */
    uint16_t code;           /* enum tw_bad_answer */
    uint8_t _pad[2];
    uint8_t bytes[96];       /* the SoupBinTCP packet as it came: length, type, payload */
};

struct tw_ouch_msg {         /* one OUCH message from the exchange (or TW_OUCH_MSG_NOT_SENT) */
    uint64_t seq;            /* its SoupBinTCP sequence number */
    uint64_t timestamp;      /* the exchange's, ns since midnight */
    uint64_t order_ref;      /* A U: the exchange's order reference */
    uint64_t price;          /* A U: the order's price; E: the execution's */
    uint64_t match;          /* E: match number */
    uint32_t user_ref;       /* the order (U: the new UserRefNum) */
    uint32_t orig_user_ref;  /* U: the replaced order */
    uint32_t qty;            /* A U: shares; E: executed; C: canceled */
    uint16_t reason;         /* C: reason character; J: reject code; TW_OUCH_MSG_BAD: enum tw_bad_answer */
    uint8_t type;            /* 'A' 'U' 'C' 'E' 'J' 'S' 'P' 'I' 'M' 'B' ... */
    uint8_t side;            /* A U */
    uint8_t state;           /* A U: 'L' live, 'D' dead; S: the event code */
    uint8_t liquidity;       /* E */
    uint8_t _pad[4];
    uint16_t raw_len;        /* the SoupBinTCP packet it came in (length, type, payload), raw[] its first bytes */
    uint8_t raw[96];
};

struct tw_ouch_stats {
    uint64_t state;          /* enum tw_ouch_state */
    uint64_t next_seq;       /* the next sequenced message expected */
    uint64_t connects;       /* TCP connections made */
    uint64_t logins;
    uint64_t disconnects;    /* connections lost (closed, reset, timed out) */
    uint64_t timeouts;
    uint64_t heartbeats_sent;
    uint64_t heartbeats_heard;
    uint64_t messages;       /* sequenced messages received */
    uint64_t orders_sent;    /* orders queued (a broken link may then take some: orders_lost) */
    uint64_t cancels_sent;
    uint64_t send_errors;    /* an order or cancel that could not be queued (not logged in, buffer full) */
    uint64_t orders_lost;    /* orders queued, then taken from the buffer by a broken link (reported by poll) */
    uint64_t protocol_errors;
    uint64_t reject_reason;  /* the login reject's reason character */
    uint64_t bad_answers;    /* messages the session found impossible (TW_OUCH_MSG_BAD) */
    char session[10];        /* the session the server named */
    uint8_t _pad[6];
};

struct tw_ouch;

struct tw_ouch *tw_ouch_create(const struct tw_ouch_config *cfg);
void tw_ouch_destroy(struct tw_ouch *o);
/* Drive the session; parsed sequenced messages go to out (up to max, the rest
 * wait for the next call). Returns how many. Orders a broken link took from the
 * buffer come first, alone, as TW_OUCH_MSG_NOT_SENT (seq 0). */
uint32_t tw_ouch_poll(struct tw_ouch *o, uint64_t now_ns, struct tw_ouch_msg *out, uint32_t max);
/* Enter Order: 0 when queued (and, unless corked, written to the socket as far as it takes it),
 * or -1 (not logged in, or the send buffer is full). An order queued here that a broken link
 * then takes from the buffer comes back from tw_ouch_poll as TW_OUCH_MSG_NOT_SENT.
 * tif: '0' day, '3' IOC. */
int tw_ouch_enter(struct tw_ouch *o, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol,
                  uint64_t price, uint8_t tif, uint64_t now_ns);
/* Cancel Order (qty: the new size, 0 cancels the rest). */
int tw_ouch_cancel(struct tw_ouch *o, uint32_t user_ref, uint32_t qty, uint64_t now_ns);
/* Hold what is queued from now on until tw_ouch_flush: the orders and cancels of one
 * decision leave in one send(). */
void tw_ouch_cork(struct tw_ouch *o);
/* Write what is queued and stop holding: 0 while the session is up, -1 when the link broke
 * (the orders then come back from the next poll as TW_OUCH_MSG_NOT_SENT). */
int tw_ouch_flush(struct tw_ouch *o, uint64_t now_ns);
/* Close the connection as a broken link would (tests; the session reconnects). */
void tw_ouch_drop(struct tw_ouch *o);
/* Log out and stay down. */
void tw_ouch_logout(struct tw_ouch *o);
/* Parse bytes as if the exchange had sent them on a connected session whose login asked for
 * next_seq (tests and fuzzing: the parser without a socket). Returns the messages written to out. */
uint32_t tw_ouch_inject(struct tw_ouch *o, const uint8_t *data, uint32_t len, struct tw_ouch_msg *out,
                        uint32_t max);
void tw_ouch_stats(const struct tw_ouch *o, struct tw_ouch_stats *out);

/* ---- the venue's answers checked against our open orders (dpdk/src/risk_orders.c) ----------
 * One answer (a parsed sequenced message) checked against the order it names in the risk table,
 * then applied to it and to the position (A marks it accepted, E fills it, counting every share the
 * venue says traded, C takes the decrement, J closes it): 0, or the enum tw_bad_answer that makes
 * it impossible (applied all the same where the venue's word is the truth: a fill counts). */
int tw_risk_answer(struct tw_risk *r, const struct tw_ouch_msg *m);
/* The order's open shares, or -1 when risk holds no such open order. */
int64_t tw_risk_order_open(const struct tw_risk *r, uint64_t user_ref);

/* The worker's handling of the venue's answers without a worker (tests; dpdk/src/orders.c): bytes
 * injected into the session (tw_ouch_inject), each answer then taken as the loop takes it (checked,
 * applied to risk, its order event and any TW_EV_BAD_ANSWER raised into events, the kill switch
 * thrown in st). Returns the answers taken. */
struct tw_worker_stats;
struct tw_event_sink;
uint32_t tw_orders_feed_answers(struct tw_risk *r, struct tw_ouch *session, struct tw_worker_stats *st,
                                const struct tw_event_sink *events, const uint8_t *data, uint32_t len,
                                uint64_t now_ns);

#endif
