/* ouch.h — OUCH 5.0 message layouts, shared by ouch.c (encode, parse) and session.c
 * (which carries them). C only: Python's face is order_entry.h. */
#ifndef TW_OUCH_H
#define TW_OUCH_H
#include <stdint.h>

#include "order_entry.h"

#define TW_OUCH_ENTER_LEN 47
#define TW_OUCH_CANCEL_LEN 9

/* An Enter Order into m (TW_OUCH_ENTER_LEN bytes); tif '0' day, '3' IOC. */
void tw_ouch_encode_enter(uint8_t *m, uint32_t user_ref, uint8_t side, uint32_t qty, const char *symbol,
                          uint64_t price, uint8_t tif);
/* A Cancel Order into m (TW_OUCH_CANCEL_LEN bytes); qty: the new size, 0 cancels the rest. */
void tw_ouch_encode_cancel(uint8_t *m, uint32_t user_ref, uint32_t qty);
/* One sequenced message (its type byte first, len bytes) into *m. */
void tw_ouch_parse(struct tw_ouch_msg *m, const uint8_t *p, uint32_t len);
/* The digits of an n-byte space-padded ASCII number (the login's sequence number). */
uint64_t tw_ouch_ascii_number(const uint8_t *p, int n);

#endif
