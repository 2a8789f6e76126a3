/* tickwire.h — everything Python shares with C, in one header that cffi reads.
 *
 * cffi parses this file after dpdk/build_ext.py strips the preprocessor lines,
 * so keep it to plain declarations: fixed-width types, structs, prototypes.
 * Functions return 0 or a negative errno; Python turns that into a message.
 */
#ifndef TICKWIRE_H
#define TICKWIRE_H
#include <stdint.h>

/* ---- build facts ---------------------------------------------------------- */

/* The DPDK release the extension was compiled and linked against (rte_version()). */
const char *tw_dpdk_version(void);

/* ---- events (dpdk/src/itch.c, mold.c, worker.c) ----------------------------------
 * Fixed-size records of what changed state: gaps and their recovery, stale
 * books, end of session, ITCH system events, trading actions and halts. Whoever
 * raises one calls the books' sink (tw_books_set_events); the worker's sink is
 * an rte_ring drained by Python, tests use a tw_event_log. */

enum tw_event_type {
    TW_EV_GAP = 1,            /* a: first missing sequence number, b: how many (so far) */
    TW_EV_RECOVERED = 2,      /* a: next sequence number, b: messages recovered */
    TW_EV_UNRECOVERABLE = 3,  /* a: first skipped sequence number, b: how many; books stay stale */
    TW_EV_END_OF_SESSION = 4, /* a: the session's next sequence number */
    TW_EV_SYSTEM = 5,         /* code: ITCH system event (O S Q M E C) */
    TW_EV_TRADING_ACTION = 6, /* locate, symbol, code: trading state (H P Q T) */
    TW_EV_OPERATIONAL_HALT = 7, /* locate, symbol, code: H halted or T resumed */
    TW_EV_REG_SHO = 8,        /* locate, symbol, code: 0 none, 1 intraday, 2 continued */
    TW_EV_MWCB = 9,           /* code: market-wide circuit breaker level breached (1 2 3) */
    TW_EV_RETRANS_REQUEST = 10, /* a: first sequence number asked for, b: count */
    TW_EV_RISK_DENIED = 11,   /* locate, code: enum tw_risk_denial, a: user_ref, b: qty */
    TW_EV_ORDER = 12,         /* one of our orders: code 'O' sent (locate, symbol, side, price, and for an
                                 order a packet triggered: ts_ns its arrival stamp, line, seq, stage_ns),
                                 'X' cancel sent, 'N' not sent (a broken link took it from the buffer), or
                                 the exchange's OUCH type (A E C J ...) with seq its SoupBinTCP sequence
                                 number; a user_ref, b qty */
    TW_EV_NTYPES = 13
};

/* Where an order's tick-to-trade went, stage by stage (tw_event.stage_ns); the
 * stages follow each other, so they add up to the whole. */
enum tw_order_stage {
    TW_OS_WIRE = 0,    /* the triggering packet's arrival stamp -> its burst (or datagram) read */
    TW_OS_QUEUE = 1,   /* -> the packet's turn in the burst */
    TW_OS_APPLY = 2,   /* -> its messages applied to the books */
    TW_OS_DECIDE = 3,  /* -> the strategy's answer */
    TW_OS_RISK = 4,    /* -> this order passed the risk chain (after the decision's earlier actions) */
    TW_OS_SEND = 5,    /* -> the decision's one send() returned */
    TW_OS_N = 6
};

struct tw_event {
    uint64_t ts_ns;   /* CLOCK_MONOTONIC when raised (an order a packet triggered: its arrival stamp) */
    uint32_t type;    /* enum tw_event_type */
    uint16_t locate;  /* the instrument, 0 for session-wide events */
    uint8_t code;     /* the ITCH code of the change, when it has one */
    uint8_t line;     /* an order sent: the triggering packet's feed line (0 A, 1 B, 2 retransmission) */
    uint64_t a;
    uint64_t b;
    char symbol[8];   /* space-padded, as ITCH sends it */
    uint64_t seq;     /* an order sent: the MoldUDP64 sequence number of the triggering packet (its
                         first message), 0 when no packet triggered it (a timer, the kill switch) */
    uint32_t stage_ns[6]; /* an order sent: ns in each enum tw_order_stage (0 without an arrival stamp) */
    uint64_t price;   /* order events: the order's price (sent, accepted), the execution's (executed); 4 decimals */
    uint8_t side;     /* order events: 'B' or 'S' when known (sent, accepted) */
    uint8_t strategy; /* order and risk-denied events: the slot of the strategy it belongs to (255: none) */
    uint8_t _pad2[6];
};

typedef void (*tw_event_fn)(void *ctx, const struct tw_event *ev);

/* A sink that keeps the first cap events in memory (tests, replays). */
struct tw_event_log {
    struct tw_event *ev;
    uint32_t cap;
    uint32_t n;
    uint64_t dropped;  /* raised after the log was full */
};
void tw_event_log_emit(void *ctx, const struct tw_event *ev);

/* What the ITCH state messages said about one instrument (dpdk/src/itch.c). */
struct tw_instrument {
    char symbol[8];         /* from R (stock directory); zeros until then */
    uint8_t trading_state;  /* from H: 'H' halted, 'P' paused, 'Q' quotation only, 'T' trading; 0 unknown */
    uint8_t operational_halt; /* from h: 1 while halted */
    uint8_t reg_sho;        /* from Y: '0', '1' or '2'; 0 unknown */
    uint8_t market_category; /* from R */
    uint32_t round_lot;     /* from R */
    uint32_t last_trade;    /* price of the last execution (E at the order's price, C, P), 0 before one */
    uint32_t updates;       /* book changes so far (wraps): a change tells a strategy to look */
    uint8_t watched;        /* tw_books_watch: a change puts the locate on the touched list */
    uint8_t touched;        /* on the touched list now */
    uint8_t _pad[2];
};

/* ---- order books from ITCH (dpdk/src/book.c) ------------------------------------
 * L3 (order reference -> order) and L2 (price levels) per instrument, keyed by
 * stock locate, built from ITCH A F E C X D U. Sized at creation; nothing is
 * allocated per message. A message the book cannot take returns a negative
 * tw_book_error and is counted; the book is left as it was. */

struct tw_books;

enum tw_book_error {
    TW_BOOK_OK = 0,
    TW_BOOK_EBADLENGTH = -1,  /* the length does not match the type */
    TW_BOOK_EBADLOCATE = -2,  /* stock locate above max_locate */
    TW_BOOK_EBADFIELD = -3,   /* e.g. a side that is neither B nor S */
    TW_BOOK_EDUPLICATE = -4,  /* an add for a reference already open */
    TW_BOOK_EUNKNOWN = -5,    /* an execute, cancel, delete or replace of an unknown order */
    TW_BOOK_EOVERFILL = -6,   /* more shares executed or canceled than the order has */
    TW_BOOK_EFULL = -7,       /* max_orders reached */
    TW_BOOK_ELEVELS = -8,     /* levels_per_side reached on that side */
    TW_BOOK_NERRORS = 9
};

struct tw_book_level {
    uint32_t price;    /* 4 implied decimals */
    uint32_t orders;
    uint64_t shares;
};

struct tw_book_stats {
    uint64_t applied;     /* book messages applied */
    uint64_t ignored;     /* other ITCH types (no book effect; state messages among them) */
    uint64_t state;       /* state messages taken: S R H Y W h P */
    uint64_t errors[9];   /* by -tw_book_error (index 0 unused) */
};

enum tw_books_flags {
    TW_BOOKS_PREFAULT = 1,  /* touch every page now (the worker: no page fault on the hot path) */
};
/* Books for locates 1..max_locate; flags: TW_BOOKS_*. Without PREFAULT the
 * tables are mapped but filled in by the kernel as they are first touched
 * (replays and tests: untouched instruments cost nothing). */
struct tw_books *tw_books_create(uint32_t max_locate, uint64_t max_orders, uint32_t levels_per_side,
                                 uint32_t flags);
void tw_books_destroy(struct tw_books *b);
/* One ITCH message (type byte first): 0, or a negative tw_book_error. */
int tw_books_apply(struct tw_books *b, const uint8_t *msg, uint32_t len);
/* Every message of a BinaryFILE image; returns how many were read. */
uint64_t tw_books_apply_binaryfile(struct tw_books *b, const uint8_t *buf, uint64_t len);
/* Up to max levels of one side (0 buy, 1 sell), best first; returns how many. */
uint32_t tw_books_depth(const struct tw_books *b, uint16_t locate, uint8_t side, struct tw_book_level *out,
                        uint32_t max);
/* Size-weighted mid of the best bid and ask (4 decimals), or -1 when a side is empty. */
int64_t tw_books_micro_price(const struct tw_books *b, uint16_t locate);
uint64_t tw_books_live_orders(const struct tw_books *b);
void tw_books_stats(const struct tw_books *b, struct tw_book_stats *out);
/* Where events go (fn NULL: nowhere). The feed on these books raises its events here too. */
void tw_books_set_events(struct tw_books *b, tw_event_fn fn, void *ctx);
/* The state messages' view of one instrument: 0, or -1 for a locate out of range. */
int tw_books_instrument(const struct tw_books *b, uint16_t locate, struct tw_instrument *out);
/* How many times the instrument's book changed (wraps). */
uint32_t tw_books_updates(const struct tw_books *b, uint16_t locate);
enum tw_books_consts { TW_BOOKS_MAX_WATCHED = 64 };
/* Watch (1) or stop watching (0) an instrument: a change of its book puts its locate,
 * once, on the list tw_books_take_touched hands over (the worker: which strategies to
 * ask after a packet). 0, or -1 for a locate out of range or more than
 * TW_BOOKS_MAX_WATCHED instruments watched. */
int tw_books_watch(struct tw_books *b, uint16_t locate, uint8_t on);
/* The watched instruments whose books changed since the last call, in the order they
 * first changed, into out (room for TW_BOOKS_MAX_WATCHED); returns how many. */
uint32_t tw_books_take_touched(struct tw_books *b, uint16_t *out);
/* The last ITCH system event code (O S Q M E C), 0 before the first. */
uint8_t tw_books_system_event(const struct tw_books *b);
/* Instruments that have a name, levels or state: locates in ascending order into
 * out (up to max); returns how many there are in all. */
uint32_t tw_books_active(const struct tw_books *b, uint16_t *out, uint32_t max);

/* ---- MoldUDP64 sequencing and A/B arbitration (dpdk/src/mold.c) -------------------
 * One session's packets from line A (0), line B (1) and retransmission answers
 * (2), applied to the books in sequence order: the first copy of each message
 * wins, later copies are duplicates; messages past a gap are held (up to
 * max_held) until the gap fills, and the books are stale meanwhile. */

struct tw_feed;

struct tw_feed_state {
    uint64_t next_seq;       /* the sequence number expected next */
    uint64_t applied;        /* messages applied to the books, in order */
    uint64_t duplicates;     /* copies of messages already applied or held */
    uint64_t gaps;           /* gaps opened */
    uint64_t recovered;      /* gaps closed by the other line or a retransmission */
    uint64_t unrecoverable;  /* gaps wider than max_held: skipped */
    uint64_t skipped;        /* messages given up by those */
    uint64_t malformed;      /* packets or blocks that do not parse */
    uint64_t other_session;  /* packets of another MoldUDP64 session */
    uint64_t book_errors;    /* messages the books refused (see tw_book_error) */
    uint64_t packets[3];     /* by line: A, B, retransmission */
    uint64_t first_copy[3];  /* messages each line delivered first */
    uint64_t gap_to;         /* while in a gap: the newest sequence number held */
    uint8_t in_gap;
    uint8_t stale;           /* books not to be traded on */
    uint8_t end_of_session;
};

struct tw_feed *tw_feed_create(struct tw_books *books, uint64_t max_held);
void tw_feed_destroy(struct tw_feed *f);
/* One downstream packet from line 0 (A), 1 (B) or 2 (retransmission): 0, or
 * -EINVAL for a malformed or foreign packet (counted; what parsed is kept). */
int tw_feed_packet(struct tw_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len);
void tw_feed_state(const struct tw_feed *f, struct tw_feed_state *out);
/* While in a gap: the first missing sequence number and how many are missing
 * (what to ask the retransmission server for); returns 1, or 0 with no gap. */
int tw_feed_missing(const struct tw_feed *f, uint64_t *first, uint64_t *count);
/* Begin at the first packet's sequence number instead of 1: a capture or a feed
 * joined mid-session (the books then hold only what came after). */
void tw_feed_join_late(struct tw_feed *f);
/* Apply every message in arrival order, whatever its sequence number says: for
 * captures whose sequence numbers were zeroed (no arbitration, no gaps). */
void tw_feed_unsequenced(struct tw_feed *f);
/* Give up the first hole of the open gap: skip it, apply what was held after it;
 * the books stay stale (TW_EV_UNRECOVERABLE). Returns 0 when there is no gap. */
int tw_feed_skip_gap(struct tw_feed *f);

/* ---- inline pre-trade risk (dpdk/src/risk.c) ----------------------------------------
 * Every order the worker would send passes tw_risk_check first: small checks in a
 * fixed order, the first that fails names the denial. Limits live in a table
 * Python writes whole (tw_risk_set_limits); the worker picks the new table up at
 * its next check. Positions and own orders are kept here, inline. */

enum tw_risk_denial {
    TW_RISK_OK = 0,
    TW_RISK_BAD_ORDER = 1,        /* zero quantity or price, a side other than B/S, a locate out of range */
    TW_RISK_KILLED = 2,           /* the global kill flag, or the instrument's */
    TW_RISK_HALTED = 3,           /* trading state halted */
    TW_RISK_REDUCE_ONLY = 4,      /* trading state reduce-only and the order would grow the position */
    TW_RISK_NOT_TRADING = 5,      /* the instrument is halted, paused or not known to be trading, the market has
                                     closed (system event M, E or C), or the books are stale */
    TW_RISK_MAX_QTY = 6,
    TW_RISK_MAX_NOTIONAL = 7,
    TW_RISK_MAX_POSITION = 8,     /* position plus open orders on that side, plus this one */
    TW_RISK_MAX_GROSS = 9,        /* the same, summed over instruments */
    TW_RISK_COLLAR_BBO = 10,      /* price beyond the far touch by more than collar_bps (or no touch to check against) */
    TW_RISK_COLLAR_LAST = 11,     /* price further than collar_bps from the last trade */
    TW_RISK_MAX_OPEN_ORDERS = 12,
    TW_RISK_ORDER_RATE = 13,      /* the new-order token bucket is empty */
    TW_RISK_MESSAGE_RATE = 14,    /* the message (order, cancel, replace) token bucket is empty */
    TW_RISK_SELF_MATCH = 15,      /* it would trade against one of our own resting orders */
    TW_RISK_NCODES = 16
};

enum tw_trading_state {
    TW_TRADING_ACTIVE = 0,
    TW_TRADING_REDUCE_ONLY = 1,
    TW_TRADING_HALTED = 2,
};

struct tw_risk_limits {
    uint32_t state;              /* enum tw_trading_state */
    uint32_t kill;               /* 1: deny every new order */
    uint32_t max_order_qty;      /* shares */
    uint32_t collar_bps;         /* 0: no collar */
    uint64_t max_order_notional; /* price (4 decimals) x shares */
    uint64_t max_position;       /* shares, per instrument, either side */
    uint64_t max_gross;          /* shares, summed over instruments */
    uint32_t max_open_orders;
    uint32_t order_rate;         /* new orders per second (0: no limit) */
    uint32_t order_burst;        /* bucket size */
    uint32_t message_rate;       /* orders + cancels + replaces per second (0: no limit) */
    uint32_t message_burst;
    uint32_t _pad;
};

enum tw_risk_consts {
    TW_RISK_MAX_ROWS = 64,       /* strategies with limits of their own (a worker's strategies) */
    TW_RISK_ANY = 255,           /* tw_risk_open_orders: of every strategy; an intent: of none (global only) */
};

/* The whole table Python publishes: the worker's global limits and a row per strategy.
 * An order of strategy i (< nrows) trades under the stricter of global and rows[i], field by
 * field; its open orders and rates count in its row and in the global totals. An order of no
 * strategy (TW_RISK_ANY, or a slot past nrows) trades under global alone. */
struct tw_risk_table {
    struct tw_risk_limits global;   /* the whole worker: the open orders, gross and rates summed over
                                       every strategy, and the ceiling of each row */
    uint32_t nrows;
    uint32_t _pad;
    struct tw_risk_limits rows[64]; /* by strategy slot */
};

struct tw_order_intent {
    uint64_t user_ref;           /* the OUCH UserRefNum the order will carry */
    uint32_t qty;
    uint32_t price;              /* 4 decimals */
    uint16_t locate;
    uint8_t side;                /* 'B' or 'S' */
    uint8_t strategy;            /* the strategy's slot: its row of the table (TW_RISK_ANY: none) */
};

struct tw_risk_stats {
    uint64_t checked;
    uint64_t passed;
    uint64_t denied[16];         /* by enum tw_risk_denial (index 0 unused) */
    uint64_t open_orders;
    uint64_t gross;              /* sum of |position| */
    uint64_t limits_version;     /* the table the checks use */
};

struct tw_risk;

struct tw_risk *tw_risk_create(uint32_t max_locate, uint32_t max_own_orders);
void tw_risk_destroy(struct tw_risk *r);
/* Publish a whole new table (any thread); the checks take it from their next call. nrows
 * above TW_RISK_MAX_ROWS is taken as TW_RISK_MAX_ROWS. */
void tw_risk_set_table(struct tw_risk *r, const struct tw_risk_table *table);
/* The same with global limits only (no strategy rows). */
void tw_risk_set_limits(struct tw_risk *r, const struct tw_risk_limits *limits);
/* The kill switch over whatever the table says (1 kills, 0 releases). */
void tw_risk_kill_all(struct tw_risk *r, uint8_t kill);
/* Kill (1) or release (0) one instrument. */
int tw_risk_kill_instrument(struct tw_risk *r, uint16_t locate, uint8_t kill);
/* Kill (1) or release (0) one strategy's row: its new orders are refused. */
int tw_risk_kill_strategy(struct tw_risk *r, uint8_t strategy, uint8_t kill);
/* The chain, in the order of enum tw_risk_denial; 0 when the order may go (it is
 * then counted as open and its tokens are spent), else the denial. stale: the
 * feed's books are stale. Denials are counted and raised as TW_EV_RISK_DENIED on
 * the books' event sink. */
int tw_risk_check(struct tw_risk *r, struct tw_books *b, int stale, const struct tw_order_intent *o,
                  uint64_t now_ns);
/* A cancel or replace about to be sent by a strategy (TW_RISK_ANY: by none): 0, or
 * TW_RISK_MESSAGE_RATE when a message bucket (its row's or the global one) is empty. Cancels are
 * never held back by the kill flag or the trading state: they reduce risk. */
int tw_risk_message(struct tw_risk *r, uint8_t strategy, uint64_t now_ns);
/* The exchange's answers: shares executed (the position moves), the order done
 * (canceled, rejected or fully executed: it stops being open). */
int tw_risk_on_execution(struct tw_risk *r, uint64_t user_ref, uint32_t qty);
int tw_risk_on_done(struct tw_risk *r, uint64_t user_ref);
int64_t tw_risk_position(const struct tw_risk *r, uint16_t locate);
/* After a restart, what the journal says was there before: a position, and open orders
 * (added as they are, without the checks: they are already at the venue). */
int tw_risk_seed_position(struct tw_risk *r, uint16_t locate, int64_t position);
int tw_risk_seed_order(struct tw_risk *r, const struct tw_order_intent *o);
/* The UserRefNums of our open orders (of one instrument, or all with locate 0; of one strategy,
 * or all with TW_RISK_ANY), up to max: what a kill switch cancels. */
uint32_t tw_risk_open_orders(const struct tw_risk *r, uint16_t locate, uint8_t strategy, uint64_t *refs,
                             uint32_t max);
/* The strategy slot an open order was checked for (TW_RISK_ANY: none), or -1 when it is not open. */
int tw_risk_order_strategy(const struct tw_risk *r, uint64_t user_ref);
void tw_risk_stats(const struct tw_risk *r, struct tw_risk_stats *out);
/* Run the chain over n intents (each passing one is then closed at once, as if
 * canceled): the benchmark's loop, kept in C so the figure is the chain's. */
uint64_t tw_risk_check_many(struct tw_risk *r, struct tw_books *b, const struct tw_order_intent *o,
                            uint32_t n, uint64_t now_ns);

/* ---- strategies (dpdk/src/strategy.c) -----------------------------------------------------
 * One small interface: on a book update, on an event of one of its own orders,
 * on a timer. A strategy answers with actions (new orders, cancels) that the
 * worker passes through the risk chain. It never sees a stale book or an
 * instrument that is not trading: the dispatcher stops there and cancels its
 * quotes instead. After the market closes (system event M, E or C) it is not
 * asked again and sends nothing: day orders end with the session. Parameters are one table Python publishes whole. */

enum tw_strategy_kind {
    TW_STRATEGY_NONE = 0,
    TW_STRATEGY_MARKET_MAKER = 1, /* quotes both sides around the micro-price, skewed by inventory */
    TW_STRATEGY_TAKER = 2,        /* crosses the spread when the book's imbalance passes a threshold */
};

struct tw_strategy_params {
    uint32_t kind;               /* enum tw_strategy_kind */
    uint32_t enabled;            /* 0: quotes are pulled, nothing new is sent */
    uint32_t locate;             /* the instrument traded */
    uint32_t tick;               /* price increment (4 decimals), e.g. 100 = one cent */
    /* market maker */
    uint32_t half_spread;        /* from the fair price to each quote (4 decimals) */
    uint32_t quote_size;         /* shares a side */
    uint32_t skew;               /* fair price moves against the position: skew / 1000 price units a share */
    uint32_t min_move;           /* requote only when a quote's price would move at least this much */
    uint64_t refresh_ns;         /* at most one requote a side per this interval */
    uint32_t max_position;       /* stop quoting the side that would grow |position| past this */
    /* taker */
    uint32_t imbalance_bps;      /* (bid shares - ask shares) / (bid + ask) over `levels`, in basis points */
    uint32_t levels;             /* levels a side summed for the imbalance */
    uint32_t take_size;          /* shares per take */
    uint64_t cooldown_ns;        /* after a take, none for this long */
    uint32_t quote_levels;       /* market maker: quotes a side, each one tick further out (0 or 1: one; up to 64) */
    uint32_t _pad;
};

enum tw_action_kind { TW_ACTION_NEW = 1, TW_ACTION_CANCEL = 2 };

struct tw_strategy_action {
    uint64_t user_ref;           /* NEW: the reference it will carry; CANCEL: the order to cancel */
    uint32_t qty;
    uint32_t price;
    uint16_t locate;
    uint8_t kind;                /* enum tw_action_kind */
    uint8_t side;                /* 'B' or 'S' */
    uint8_t ioc;                 /* 1: immediate or cancel (a take) */
    uint8_t _pad[7];
};

struct tw_actions {
    uint32_t n;
    uint32_t _pad;
    struct tw_strategy_action a[8];
};

enum tw_order_event {
    TW_ORDER_ACCEPTED = 1,
    TW_ORDER_EXECUTED = 2,       /* qty shares */
    TW_ORDER_DONE = 3,           /* canceled, rejected, or fully executed: no longer open */
    TW_ORDER_DENIED = 4,         /* the risk chain refused it: never sent */
};

struct tw_strategy_stats {
    uint64_t book_updates;       /* updates handed to the strategy */
    uint64_t skipped;            /* updates not handed over: stale books or an instrument not trading */
    uint64_t orders;             /* NEW actions */
    uint64_t cancels;            /* CANCEL actions */
    uint64_t executions;         /* shares */
    int64_t position;
    uint64_t params_version;
};

struct tw_strategy;

/* user_ref_base: the first UserRefNum it hands out (each used once, increasing). */
struct tw_strategy *tw_strategy_create(uint64_t user_ref_base);
void tw_strategy_destroy(struct tw_strategy *s);
void tw_strategy_set_params(struct tw_strategy *s, const struct tw_strategy_params *p);
/* The book of `locate` changed (the worker calls it once per packet for each
 * instrument the packet touched). */
void tw_strategy_on_book(struct tw_strategy *s, struct tw_books *b, int stale, uint16_t locate, uint64_t now_ns,
                         struct tw_actions *out);
void tw_strategy_on_order(struct tw_strategy *s, uint64_t user_ref, uint32_t event, uint32_t qty, uint64_t now_ns,
                          struct tw_actions *out);
void tw_strategy_on_timer(struct tw_strategy *s, struct tw_books *b, int stale, uint64_t now_ns,
                          struct tw_actions *out);
void tw_strategy_stats(const struct tw_strategy *s, struct tw_strategy_stats *out);
/* Stop quoting (1): the next update or timer pulls the quotes and nothing new goes; 0 resumes. */
void tw_strategy_halt(struct tw_strategy *s, uint8_t halt);
/* Its quotes' cancels were sent by someone else (a kill switch): they are no longer its quotes. */
void tw_strategy_forget_quotes(struct tw_strategy *s);
/* After a restart: the position the journal says it holds. */
void tw_strategy_seed_position(struct tw_strategy *s, int64_t position);
/* Take UserRefNums from from's counter from now on: the strategies of one session hand out one
 * increasing series (OUCH wants them increasing per session). from must live as long as s. */
void tw_strategy_share_refs(struct tw_strategy *s, struct tw_strategy *from);

/* ---- order entry: OUCH 5.0 over SoupBinTCP 3.00 (dpdk/src/ouch.c) ---------------------------
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
    uint16_t reason;         /* C: reason character; J: reject code */
    uint8_t type;            /* 'A' 'U' 'C' 'E' 'J' 'S' 'P' 'I' 'M' 'B' ... */
    uint8_t side;            /* A U */
    uint8_t state;           /* A U: 'L' live, 'D' dead; S: the event code */
    uint8_t liquidity;       /* E */
    uint8_t _pad[6];
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
/* Parse bytes as if the exchange had sent them on a logged-in session (tests and
 * fuzzing: the parser without a socket). Returns the messages written to out. */
uint32_t tw_ouch_inject(struct tw_ouch *o, const uint8_t *data, uint32_t len, struct tw_ouch_msg *out,
                        uint32_t max);
void tw_ouch_stats(const struct tw_ouch *o, struct tw_ouch_stats *out);

/* ---- HDR-style histograms (dpdk/src/histogram.c) -----------------------------------
 * Log-linear buckets: values below 32 exactly, then 16 buckets per power of two
 * (about 6 % wide) up to 2^40 ns. One writer (the worker); readers copy the
 * counts while it runs: every field is one aligned 64-bit word. */

struct tw_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[592];
};

void tw_hist_record(struct tw_hist *h, uint64_t value);
/* The smallest value bucket i holds (bucket i holds [low(i), low(i + 1))). */
uint64_t tw_hist_bucket_low(uint32_t i);
uint32_t tw_hist_nbuckets(void);

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
};

struct tw_recorder_stats {
    uint64_t frames[3];     /* written, by line: A, B, retransmission */
    uint64_t bytes[3];
    uint64_t dropped;       /* frames the ring had no room for */
    uint64_t files;         /* opened so far */
    uint64_t rotations;
    uint64_t write_errors;  /* a file that could not be opened or written (the frame is lost) */
    uint64_t queued_bytes;  /* in the ring now */
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

/* ---- jitter: what takes a core away from a busy thread (dpdk/src/jitter.c) ---------------------
 * tickwire tune jitter: on the calling thread, pinned to cpu, read CLOCK_MONOTONIC as fast as it
 * goes for duration_ns and keep each gap between two reads longer than threshold_ns (an interrupt,
 * a softirq, another thread, the hypervisor). */

struct tw_gap {
    uint64_t at_ns;            /* CLOCK_MONOTONIC when it began */
    uint64_t len_ns;
};

struct tw_gap_stats {
    uint32_t cpu;
    uint32_t running_on;       /* where the loop ran at the end (it must be cpu) */
    uint64_t threshold_ns;
    uint64_t elapsed_ns;
    uint64_t samples;          /* clock reads */
    uint64_t gaps;             /* gaps past the threshold */
    uint64_t gap_ns;           /* their sum: the time the core was taken */
    uint64_t max_ns;
    uint64_t by_decade[8];     /* gaps of [1, 10) us, [10, 100) us, ... [10 s, ...) */
    struct tw_gap top[16];     /* the longest, longest first */
};

/* 0, or a negative errno (the CPU is not one this process may run on). */
int tw_gap_run(uint32_t cpu, uint64_t duration_ns, uint64_t threshold_ns, struct tw_gap_stats *out);

/* ---- DPDK: EAL and ports (dpdk/src/port.c) ----------------------------------------- */

struct rte_mempool;

/* rte_eal_init: the number of arguments it took, or a negative errno. */
int tw_eal_init(int argc, char **argv);
int tw_eal_cleanup(void);
/* Worker lcores (not the main one), in order, into out; returns how many. */
uint32_t tw_eal_worker_lcores(uint32_t *out, uint32_t max);
uint32_t tw_eal_main_lcore(void);
/* The last DPDK error as text. */
const char *tw_eal_strerror(int err);

struct rte_mempool *tw_pool_create(const char *name, uint32_t mbufs);
/* rte_eth_dev_get_port_by_name: 0 and *port, or a negative errno. */
int tw_port_find(const char *name, uint16_t *port);
/* One rx and one tx queue, started, promiscuous: 0 or a negative errno. */
int tw_port_start(uint16_t port, struct rte_mempool *pool, uint16_t rx_desc, uint16_t tx_desc);
int tw_port_stop(uint16_t port);

struct tw_port_stats {
    uint64_t ipackets;
    uint64_t ibytes;
    uint64_t imissed;  /* dropped by the device: the worker did not keep up */
    uint64_t ierrors;
    uint64_t rx_nombuf;
    uint64_t opackets;
};
int tw_port_stats(uint16_t port, struct tw_port_stats *out);

/* ---- the worker: rx bursts -> MoldUDP64 -> ITCH -> books (dpdk/src/worker.c) ------------
 * One lcore polls its ports, takes each frame's XDP arrival stamp from the
 * metadata (af_xdp ports), finds the feed line, and hands the UDP payload to
 * tw_feed_packet. While a gap is open and the other line has not filled it for
 * retrans_delay_ns, it asks the retransmission server (retrans_fd, a connected
 * UDP socket) and reads its answers as line 2. Events go to an rte_ring. */

enum tw_worker_consts {
    TW_WORKER_MAX_PORTS = 4,
    TW_WORKER_MAX_STRATEGIES = 64, /* = TW_RISK_MAX_ROWS = TW_BOOKS_MAX_WATCHED: a row and a watch each */
    TW_LINE_BY_DEST = 255,        /* find the line from the destination (replays) */
    TW_STATS_MAGIC = 0x74777332,  /* "tws2": a tw_worker_stats of this layout (per-strategy kill masks) */
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
    uint64_t kill;          /* written by another process (tickwire feed kill): 1 stops new orders and
                               pulls the quotes, 0 releases; the loop reads it once per iteration */
    uint64_t killed;        /* what the loop has acted on */
    uint64_t killed_ns;     /* CLOCK_MONOTONIC when it acted */
    uint64_t live_orders;
    /* commands from another process (tickwire kill --instrument/--strategy, resume): write cmd and
     * cmd_arg, then cmd_seq + 1; the loop carries it out and sets cmd_done = cmd_seq */
    uint64_t cmd_seq;
    uint64_t cmd;           /* enum tw_worker_cmd */
    uint64_t cmd_arg;       /* the instrument's locate */
    uint64_t cmd_done;
    uint64_t cmd_done_ns;   /* CLOCK_MONOTONIC when it was carried out */
    uint64_t cmd_result;    /* 0, or 1 when the command did not apply (a locate out of range) */
    uint64_t kill_cancels;  /* cancels the last kill (any level) sent */
    uint64_t kill_sent_ns;  /* CLOCK_MONOTONIC when their send() returned */
    uint64_t killed_strategy;  /* bit i set while strategy i is killed on its own */
    uint64_t killed_instrument; /* bit i set while strategy i's instrument is killed */
    struct tw_feed_state feed;
    struct tw_book_stats book;
    struct tw_hist hist[8];  /* by tw_stage */
};

enum tw_worker_cmd {
    TW_CMD_KILL_INSTRUMENT = 1,    /* cmd_arg: its locate; risk refuses its new orders, the strategies trading
                                      it stop, its open orders are cancelled */
    TW_CMD_RELEASE_INSTRUMENT = 2,
    TW_CMD_KILL_STRATEGY = 3,      /* cmd_arg: its slot; it stops, risk refuses its orders, its open orders are
                                      cancelled */
    TW_CMD_RELEASE_STRATEGY = 4,
};

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

/* ---- ITCH files: the indexer behind bulk decoding (appliance/protocols/bulk.py) ----
 * A NASDAQ BinaryFILE is a stream of [u16 big-endian length][message]; finding
 * message i needs every length before it, so the scan is C. expected[t] is the
 * length of ITCH type byte t (0: unknown type). A record is malformed when its
 * type is unknown or its length is not the type's. Both functions stop before a
 * record that runs past len and return the bytes they covered. */

/* counts[t] += well-formed messages of type t; *malformed += the rest. */
uint64_t tw_itch_census(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                        uint64_t *counts, uint64_t *malformed);

/* Copy each well-formed message of type t (type byte included) to row cursor[t]
 * of dest[t] (rows of expected[t] bytes), its record's file offset to
 * offsets[t][cursor[t]], then cursor[t]++. dest[t] may be NULL to skip type t.
 * Offsets of malformed records go to bad_offsets (at most bad_cap; *nbad counts
 * all of them). */
uint64_t tw_itch_split(const uint8_t *buf, uint64_t len, const uint16_t *expected,
                       uint8_t **dest, uint64_t **offsets, uint64_t *cursor,
                       uint64_t *bad_offsets, uint64_t bad_cap, uint64_t *nbad);

/* ---- lab traffic: a multicast sender and a sink (appliance/lab) ---------------
 * Not the trading hot path: the lab's load generator and receiver, in C so that
 * the sender, not Python, bounds the rate (sendmmsg/recvmmsg in batches). */

struct tw_send_stats {
    uint64_t packets;      /* datagrams the kernel accepted */
    uint64_t bytes;        /* payload bytes of those */
    uint64_t calls;        /* sendmmsg calls */
    uint64_t errors;       /* sendmmsg calls that failed (errno in last_errno) */
    int32_t  last_errno;
    uint64_t elapsed_ns;   /* CLOCK_MONOTONIC, first call to return */
};

/* Send n datagrams on a connected UDP socket fd: datagram i is lengths[i] bytes
 * at payloads + i * stride. Batches of `batch` (<= 1024) per sendmmsg; when
 * rate_pps > 0, paced to that rate by busy-waiting on the clock. */
int tw_udp_send(int fd, const uint8_t *payloads, uint32_t stride,
                const uint16_t *lengths, uint32_t n, uint32_t batch,
                uint64_t rate_pps, struct tw_send_stats *out);

struct tw_sink_stats {
    uint64_t packets;      /* datagrams received */
    uint64_t bytes;
    uint64_t mold_packets; /* datagrams with a MoldUDP64 header (>= 20 bytes) */
    uint64_t messages;     /* MoldUDP64 message count, summed */
    uint64_t first_seq;    /* sequence number of the first message seen */
    uint64_t next_seq;     /* the sequence number expected next */
    uint64_t gaps;         /* times a packet started past next_seq */
    uint64_t gap_messages; /* messages skipped over by those gaps */
    uint64_t duplicates;   /* packets entirely below next_seq */
    uint64_t first_ns;     /* CLOCK_MONOTONIC of the first and last datagram */
    uint64_t last_ns;
    uint8_t  session[10];  /* MoldUDP64 session of the first packet */
};

/* Receive on a bound UDP socket until max_packets arrived in all, or no datagram
 * came for idle_ns (after the first), or total_ns passed in this call (0: no
 * limit). Counts MoldUDP64 sequence numbers. *stop != 0 ends it early (checked
 * every 10 ms). Counts accumulate in *out: zero it before the first call, then
 * call again to continue (a caller can report progress between calls).
 * Returns 1 when done (max_packets, or idle), 0 when total_ns passed or *stop
 * was set, a negative errno on failure. */
int tw_udp_sink(int fd, uint64_t max_packets, uint64_t idle_ns, uint64_t total_ns,
                const volatile int32_t *stop, struct tw_sink_stats *out);

/* ---- lab link impairment: a netem stand-in (appliance/lab/impair.py) ----------
 * A tc BPF program on the link's egress copies each frame into a ring buffer and
 * drops it; this relay applies loss, duplication, delay, jitter and reordering
 * in user space and transmits on an AF_PACKET socket that bypasses the qdisc
 * layer (so the egress hook does not see the frame again). */

struct tw_impair_params {
    uint32_t loss_ppm;      /* drop probability, parts per million */
    uint32_t duplicate_ppm; /* probability of sending a second copy */
    uint32_t reorder_ppm;   /* probability of sending without the delay */
    uint32_t _pad;
    uint64_t delay_ns;      /* base delay */
    uint64_t jitter_ns;     /* delay is uniform in [delay - jitter, delay + jitter] */
    uint64_t seed;          /* PRNG seed: the same seed gives the same decisions */
};

struct tw_impair_stats {
    uint64_t seen;          /* frames the BPF program handed over */
    uint64_t sent;          /* frames transmitted (duplicates included) */
    uint64_t lost;          /* dropped by the loss probability */
    uint64_t duplicated;    /* extra copies sent */
    uint64_t reordered;     /* sent ahead of the delay */
    uint64_t overflow;      /* dropped: the delay queue was full */
    uint64_t tx_errors;     /* sendto failed */
    uint64_t queued;        /* frames waiting right now */
};

/* Load the BPF object, attach it on ifindex's clsact egress, relay until SIGTERM
 * or SIGINT, then detach and send what is still queued. stats is updated as it
 * goes so another thread may read it. */
int tw_impair_run(const char *bpf_object, int ifindex,
                  const struct tw_impair_params *params, struct tw_impair_stats *stats);

/* Ask a running tw_impair_run in this process to stop (as SIGTERM would). */
void tw_impair_stop(void);

#endif
