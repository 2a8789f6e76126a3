/* book.c — the order books as a data structure: L3 (order reference -> order) and
 * L2 (price levels) per instrument, keyed by stock locate; place, execute, reduce,
 * delete, replace, depth, BBO and micro-price. No ITCH bytes here: itch.c decodes
 * the messages into these operations. See book.h.
 *
 * Nothing is allocated per message: the order table and the level arrays are
 * sized at creation (and touched then, so no page faults come later). Orders
 * live in an open-addressing table indexed by the reference itself (linear
 * probing, deletion by backward shift, so no tombstones). Each instrument side
 * keeps its levels in one sorted array with the best price at the END, so the
 * inserts and deletes that crowd the top of the book move few bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "bytes.h"
#include "book.h"

/* 16 bytes, four to a cache line: the reference (below 2^47; 0 marks an empty
 * slot), the side and the stock locate share one word. */
struct order {
    uint64_t key;     /* ref | side << 47 | locate << 48 */
    uint32_t price;
    uint32_t shares;
};

#define REF_BITS 47
#define REF_MASK ((1ull << REF_BITS) - 1)

static inline uint64_t o_ref(const struct order *o) { return o->key & REF_MASK; }
static inline uint8_t o_side(const struct order *o) { return (uint8_t)(o->key >> REF_BITS & 1); }
static inline uint16_t o_locate(const struct order *o) { return (uint16_t)(o->key >> 48); }

struct level {
    uint32_t price;
    uint32_t orders;
    uint64_t shares;
};

struct side_levels {
    struct level *lv; /* sorted, best last: bids ascending, asks descending */
    uint32_t n;
};

struct tw_books {
    struct order *orders;
    size_t orders_bytes, level_bytes; /* mapped sizes */
    uint64_t mask;            /* table size - 1 (a power of two) */
    uint64_t live;
    uint64_t max_orders;
    uint32_t max_locate;
    uint32_t levels_per_side;
    struct side_levels *sides; /* [locate][side] */
    struct level *level_mem;
    struct tw_book_stats stats;
    struct tw_instrument *instruments; /* [locate]: what the state messages said */
    uint8_t system_event;
    uint32_t nwatched;
    uint32_t ntouched;
    uint16_t touched[TW_BOOKS_MAX_WATCHED]; /* watched locates changed since the last take */
};

/* ITCH order references increase through the day: indexing by the reference
 * itself keeps recent (busy) orders close together in memory. */
static inline uint64_t hash64(uint64_t x)
{
    return x;
}

/* Big tables: anonymous (zeroed) memory on transparent hugepages where the
 * kernel allows it (madvise mode is Debian's default); with prefault, touched
 * now so no fault comes later. The order table is read at random: 2 MiB pages
 * spare the TLB. */
static void *big_alloc(size_t bytes, int prefault)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: without THP the table still works */
    if (prefault)
        tw_prefault(p, bytes);
    return p;
}

static void big_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

struct tw_books *tw_books_create(uint32_t max_locate, uint64_t max_orders, uint32_t levels_per_side,
                                 uint32_t flags)
{
    int prefault = (flags & TW_BOOKS_PREFAULT) != 0;
    if (max_locate == 0 || max_orders == 0 || levels_per_side == 0)
        return NULL;
    struct tw_books *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    uint64_t size = 1;
    while (size < max_orders * 2)
        size <<= 1;
    b->orders_bytes = size * sizeof(struct order);
    /* each side's array is padded by 4 levels (one cache line): with a power-of-two
     * stride the best levels of every side would fall in the same cache sets */
    size_t stride = (size_t)levels_per_side + 4;
    b->level_bytes = (size_t)(max_locate + 1) * 2 * stride * sizeof(struct level);
    b->orders = big_alloc(b->orders_bytes, prefault);
    b->level_mem = big_alloc(b->level_bytes, prefault);
    b->sides = calloc((size_t)(max_locate + 1) * 2, sizeof(struct side_levels));
    b->instruments = calloc((size_t)max_locate + 1, sizeof(struct tw_instrument));
    if (!b->orders || !b->sides || !b->level_mem || !b->instruments) {
        tw_books_destroy(b);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)(max_locate + 1) * 2; i++)
        b->sides[i].lv = b->level_mem + i * stride;
    b->mask = size - 1;
    b->max_orders = max_orders;
    b->max_locate = max_locate;
    b->levels_per_side = levels_per_side;
    return b;
}

void tw_books_destroy(struct tw_books *b)
{
    if (!b)
        return;
    big_free(b->orders, b->orders_bytes);
    free(b->sides);
    big_free(b->level_mem, b->level_bytes);
    free(b->instruments);
    free(b);
}

/* ---- L3: the order table -------------------------------------------------------- */

static inline struct order *find(struct tw_books *b, uint64_t ref)
{
    if (ref == 0 || ref > REF_MASK)
        return NULL; /* 0 marks an empty slot: never an order */
    for (uint64_t i = hash64(ref) & b->mask;; i = (i + 1) & b->mask) {
        struct order *o = &b->orders[i];
        if (o_ref(o) == ref)
            return o;
        if (o->key == 0)
            return NULL;
    }
}

static inline struct order *insert(struct tw_books *b, uint64_t ref)
{
    if (b->live >= b->max_orders)
        return NULL;
    for (uint64_t i = hash64(ref) & b->mask;; i = (i + 1) & b->mask) {
        struct order *o = &b->orders[i];
        if (o->key == 0) {
            o->key = ref;
            b->live++;
            return o;
        }
        if (o_ref(o) == ref)
            return NULL; /* already open */
    }
}

/* Remove o and shift later members of its probe run back (no tombstones). */
static inline void erase(struct tw_books *b, struct order *o)
{
    uint64_t i = (uint64_t)(o - b->orders);
    uint64_t j = i;
    b->live--;
    for (;;) {
        j = (j + 1) & b->mask;
        if (b->orders[j].key == 0)
            break;
        uint64_t home = hash64(o_ref(&b->orders[j])) & b->mask;
        /* can j move to i? only if its home is not inside (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            b->orders[i] = b->orders[j];
            i = j;
        }
    }
    b->orders[i].key = 0;
}

/* ---- L2: levels, best last ------------------------------------------------------- */

static inline int better(uint8_t side, uint32_t a, uint32_t b)
{
    return side == 0 ? a > b : a < b; /* a is better than b */
}

/* Index of price in the side's array, or where it would go (with *found = 0). */
static inline uint32_t level_index(const struct side_levels *s, uint8_t side, uint32_t price, int *found)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) { /* array sorted worst -> best */
        uint32_t mid = (lo + hi) / 2;
        if (s->lv[mid].price == price) {
            *found = 1;
            return mid;
        }
        if (better(side, price, s->lv[mid].price))
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int level_add(struct tw_books *b, uint16_t locate, uint8_t side, uint32_t price, uint32_t shares)
{
    struct side_levels *s = &b->sides[(size_t)locate * 2 + side];
    int found;
    uint32_t i = level_index(s, side, price, &found);
    if (!found) {
        if (s->n == b->levels_per_side)
            return -ENOSPC;
        memmove(&s->lv[i + 1], &s->lv[i], (s->n - i) * sizeof(struct level));
        s->lv[i] = (struct level){ .price = price, .orders = 0, .shares = 0 };
        s->n++;
    }
    s->lv[i].orders++;
    s->lv[i].shares += shares;
    return 0;
}

static void level_sub(struct tw_books *b, uint16_t locate, uint8_t side, uint32_t price, uint32_t shares,
                      int order_gone)
{
    struct side_levels *s = &b->sides[(size_t)locate * 2 + side];
    int found;
    uint32_t i = level_index(s, side, price, &found);
    if (!found)
        return; /* cannot happen for an order we hold */
    s->lv[i].shares -= shares;
    if (order_gone && --s->lv[i].orders == 0) {
        memmove(&s->lv[i], &s->lv[i + 1], (s->n - i - 1) * sizeof(struct level));
        s->n--;
    }
}

/* The instrument's book changed: counted, and a watched one goes on the touched list once. */
static inline void changed(struct tw_books *b, uint16_t locate)
{
    struct tw_instrument *in = &b->instruments[locate];
    in->updates++;
    if (__builtin_expect(in->watched && !in->touched, 0)) {
        in->touched = 1;
        b->touched[b->ntouched++] = locate; /* at most one entry per watched locate: it fits */
    }
}

/* ---- the operations itch.c decodes messages into --------------------------------------
 * Each returns 0 or a negative tw_book_error and counts itself (applied, or the error). */

static inline int counted(struct tw_books *b, int rc)
{
    if (__builtin_expect(rc == 0, 1))
        b->stats.applied++;
    else
        b->stats.errors[-rc < TW_BOOK_NERRORS ? -rc : 0]++;
    return rc;
}

/* A new resting order: into the table, then onto its level (undone if the level is full). */
static int place(struct tw_books *b, uint64_t ref, uint16_t locate, uint8_t side, uint32_t shares, uint32_t price)
{
    if (ref == 0 || ref > REF_MASK)
        return TW_BOOK_EBADFIELD; /* 0 marks an empty slot; the key keeps 47 bits of reference */
    struct order *o = insert(b, ref);
    if (!o)
        return b->live >= b->max_orders ? TW_BOOK_EFULL : TW_BOOK_EDUPLICATE;
    o->key |= (uint64_t)side << REF_BITS | (uint64_t)locate << 48;
    o->shares = shares;
    o->price = price;
    if (level_add(b, locate, side, price, shares) < 0) {
        erase(b, o);
        return TW_BOOK_ELEVELS;
    }
    changed(b, locate);
    return 0;
}

/* Take shares off an order (executed or canceled); the order leaves when none remain. */
static int take(struct tw_books *b, struct order *o, uint32_t shares)
{
    if (shares > o->shares)
        return TW_BOOK_EOVERFILL;
    o->shares -= shares;
    int gone = o->shares == 0;
    level_sub(b, o_locate(o), o_side(o), o->price, shares, gone);
    changed(b, o_locate(o));
    if (gone)
        erase(b, o);
    return 0;
}

int tw_books_place(struct tw_books *b, uint64_t ref, uint16_t locate, uint8_t side, uint32_t shares, uint32_t price)
{
    if (locate > b->max_locate)
        return counted(b, TW_BOOK_EBADLOCATE);
    if (side > 1)
        return counted(b, TW_BOOK_EBADFIELD);
    return counted(b, place(b, ref, locate, side, shares, price));
}

int tw_books_execute(struct tw_books *b, uint64_t ref, uint32_t shares, int64_t price)
{
    struct order *o = find(b, ref);
    if (!o)
        return counted(b, TW_BOOK_EUNKNOWN);
    uint16_t locate = o_locate(o);
    uint32_t at = price < 0 ? o->price : (uint32_t)price;
    int rc = take(b, o, shares);
    if (rc == 0)
        b->instruments[locate].last_trade = at;
    return counted(b, rc);
}

int tw_books_reduce(struct tw_books *b, uint64_t ref, uint32_t shares)
{
    struct order *o = find(b, ref);
    return counted(b, o ? take(b, o, shares) : TW_BOOK_EUNKNOWN);
}

int tw_books_delete(struct tw_books *b, uint64_t ref)
{
    struct order *o = find(b, ref);
    return counted(b, o ? take(b, o, o->shares) : TW_BOOK_EUNKNOWN);
}

/* Would a new order at price find a level on this side, once `leaving` (an order
 * about to go) has gone? */
static int level_room(const struct tw_books *b, const struct order *leaving, uint32_t price)
{
    uint8_t side = o_side(leaving);
    const struct side_levels *s = &b->sides[(size_t)o_locate(leaving) * 2 + side];
    int found;
    uint32_t i = level_index(s, side, price, &found);
    if (found || s->n < b->levels_per_side)
        return 1;
    /* full: only the leaving order's own level, emptied, makes room */
    i = level_index(s, side, leaving->price, &found);
    return found && s->lv[i].orders == 1;
}

/* The original order goes, a new one (new reference, price and shares; same
 * instrument and side) comes. Refused before anything changes when the new
 * order could not be placed. */
static int replace(struct tw_books *b, uint64_t old_ref, uint64_t new_ref, uint32_t shares, uint32_t price)
{
    struct order *old = find(b, old_ref);
    if (!old)
        return TW_BOOK_EUNKNOWN;
    if (new_ref == 0 || new_ref > REF_MASK)
        return TW_BOOK_EBADFIELD;
    if (new_ref != o_ref(old) && find(b, new_ref))
        return TW_BOOK_EDUPLICATE;
    if (!level_room(b, old, price))
        return TW_BOOK_ELEVELS;
    uint16_t locate = o_locate(old);
    uint8_t side = o_side(old);
    take(b, old, old->shares);
    return place(b, new_ref, locate, side, shares, price);
}

int tw_books_replace(struct tw_books *b, uint64_t old_ref, uint64_t new_ref, uint32_t shares, uint32_t price)
{
    return counted(b, replace(b, old_ref, new_ref, shares, price));
}

void tw_books_refused(struct tw_books *b, int rc)
{
    counted(b, rc);
}

void tw_books_other(struct tw_books *b, int state)
{
    if (state)
        b->stats.state++;
    else
        b->stats.ignored++;
}

void tw_books_prefetch(const struct tw_books *b, uint64_t ref)
{
    __builtin_prefetch(&b->orders[hash64(ref) & b->mask], 1);
}

uint32_t tw_books_depth(const struct tw_books *b, uint16_t locate, uint8_t side, struct tw_book_level *out,
                        uint32_t max)
{
    if (locate > b->max_locate || side > 1)
        return 0;
    const struct side_levels *s = &b->sides[(size_t)locate * 2 + side];
    uint32_t k = 0;
    for (uint32_t i = s->n; i > 0 && k < max; i--, k++) { /* best first */
        out[k].price = s->lv[i - 1].price;
        out[k].shares = s->lv[i - 1].shares;
        out[k].orders = s->lv[i - 1].orders;
    }
    return k;
}

int64_t tw_books_micro_price(const struct tw_books *b, uint16_t locate)
{
    struct tw_book_level bid, ask;
    if (tw_books_depth(b, locate, 0, &bid, 1) == 0 || tw_books_depth(b, locate, 1, &ask, 1) == 0)
        return -1;
    /* size-weighted mid: the bid's price weighs with the ask's size and back */
    uint64_t w = bid.shares + ask.shares;
    if (w == 0)
        return -1; /* zero-share levels: no weights to mix */
    return (int64_t)(((__uint128_t)bid.price * ask.shares + (__uint128_t)ask.price * bid.shares) / w);
}

uint64_t tw_books_live_orders(const struct tw_books *b)
{
    return b->live;
}

void tw_books_stats(const struct tw_books *b, struct tw_book_stats *out)
{
    *out = b->stats;
}

/* ---- what itch.c, strategies and risk read of the books ------------------------------ */

struct tw_instrument *tw_books_instruments(struct tw_books *b, uint32_t *max_locate)
{
    *max_locate = b->max_locate;
    return b->instruments;
}

void tw_books_set_system_event(struct tw_books *b, uint8_t code)
{
    b->system_event = code;
}

int tw_books_instrument(const struct tw_books *b, uint16_t locate, struct tw_instrument *out)
{
    if (locate > b->max_locate)
        return -1;
    *out = b->instruments[locate];
    return 0;
}

uint8_t tw_books_system_event(const struct tw_books *b)
{
    return b->system_event;
}

int tw_books_market_closed(const struct tw_books *b)
{
    uint8_t sys = b->system_event;
    return sys == 'M' || sys == 'E' || sys == 'C';
}

int tw_books_tradable(const struct tw_books *b, uint16_t locate)
{
    if (locate > b->max_locate)
        return 0;
    const struct tw_instrument *in = &b->instruments[locate];
    return in->trading_state == 'T' && !in->operational_halt && !tw_books_market_closed(b);
}

uint32_t tw_books_active(const struct tw_books *b, uint16_t *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t l = 0; l <= b->max_locate; l++) {
        const struct tw_instrument *in = &b->instruments[l];
        if (in->symbol[0] || in->trading_state || b->sides[(size_t)l * 2].n || b->sides[(size_t)l * 2 + 1].n) {
            if (n < max)
                out[n] = (uint16_t)l;
            n++;
        }
    }
    return n;
}

uint32_t tw_books_updates(const struct tw_books *b, uint16_t locate)
{
    return locate <= b->max_locate ? b->instruments[locate].updates : 0;
}

int tw_books_watch(struct tw_books *b, uint16_t locate, uint8_t on)
{
    if (locate == 0 || locate > b->max_locate)
        return -1;
    struct tw_instrument *in = &b->instruments[locate];
    if (!!on == !!in->watched)
        return 0;
    if (on && b->nwatched == TW_BOOKS_MAX_WATCHED)
        return -1;
    in->watched = on ? 1 : 0;
    b->nwatched += on ? 1 : (uint32_t)-1;
    if (!on && in->touched) { /* off the list too */
        uint32_t j = 0;
        for (uint32_t i = 0; i < b->ntouched; i++)
            if (b->touched[i] != locate)
                b->touched[j++] = b->touched[i];
        b->ntouched = j;
        in->touched = 0;
    }
    return 0;
}

uint32_t tw_books_take_touched(struct tw_books *b, uint16_t *out)
{
    uint32_t n = b->ntouched;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = b->touched[i];
        b->instruments[b->touched[i]].touched = 0;
    }
    b->ntouched = 0;
    return n;
}
