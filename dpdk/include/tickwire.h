/* tickwire.h — every face the production extension (dpdk._native) shares with
 * Python, for C that needs all of them (the code cffi generates). A stage
 * includes only the faces it uses.
 *
 * The faces, one header per concern, in the order dpdk/build_ext.py joins them
 * into cffi's cdef (its FACES): events, book, feed, risk, strategy, order_entry,
 * histogram, recorder, port, worker. cffi reads them with the preprocessor lines
 * stripped, so keep them to plain declarations: fixed-width types, structs,
 * prototypes. Functions return 0 or a negative errno; Python turns that into a
 * message. The lab's and diagnostics' face is dpdk/lab/lab.h (dpdk._lab).
 */
#ifndef TICKWIRE_H
#define TICKWIRE_H
#include "events.h"
#include "book.h"
#include "feed.h"
#include "risk.h"
#include "strategy.h"
#include "order_entry.h"
#include "histogram.h"
#include "recorder.h"
#include "port.h"
#include "worker.h"
#endif
