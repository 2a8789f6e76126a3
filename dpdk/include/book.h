/* book.h — the face of the order books built from ITCH (L3, L2, BBO,
 * micro-price) and of each instrument's state.
 * Implemented by dpdk/src/book.c (the L3/L2 data structure); dpdk/src/itch.c decodes ITCH into it.
 * cffi reads it (joined with the other faces by dpdk/build_ext.py, preprocessor
 * lines stripped): plain declarations only. */
#ifndef TW_BOOK_H
#define TW_BOOK_H
#include <stdint.h>
#include "events.h"

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

/* ---- order books (dpdk/src/book.c), built by the ITCH decoder (itch.c) -----------
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
/* Up to max levels of one side (0 buy, 1 sell), best first; returns how many. */
uint32_t tw_books_depth(const struct tw_books *b, uint16_t locate, uint8_t side, struct tw_book_level *out,
                        uint32_t max);
/* Size-weighted mid of the best bid and ask (4 decimals), or -1 when a side is empty. */
int64_t tw_books_micro_price(const struct tw_books *b, uint16_t locate);
uint64_t tw_books_live_orders(const struct tw_books *b);
void tw_books_stats(const struct tw_books *b, struct tw_book_stats *out);
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

#endif
