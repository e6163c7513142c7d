/* The compiled half of backtesting/binance_scan.py: a block of a Binance recording's bytes
 * (whole lines, '\n'-terminated after the reader's newline translation) read into rows.
 *
 * Only lines in Binance's exact bookTicker/trade layout (what market_feed._BINANCE_LINE matches)
 * whose number texts are plain decimals ([0-9]+ or [0-9]+.[0-9]+, at most 40 characters), and
 * depth or other-stream lines whose timestamp is 1-19 ASCII digits, are read here; every other
 * line is marked for the Python reader, which reads it as before. Plain texts are always valid
 * numbers, so a line's verdict (an event, a crossed or zero price, a zero trade size) needs only
 * exact comparisons of digit strings. Texts are interned in a table of their own (a text id per
 * distinct text); which value index a text has is Python's decision (the ColumnBuilder's table),
 * handed back through bs_resolve before bs_commit writes the rows. Times are the correctly
 * rounded quotient of the nanoseconds by 10**9, bit for bit what Python's int / int gives.
 *
 * No Python API is used: the module is loaded with ctypes, which releases the GIL during calls.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { LINE_BBO = 0, LINE_BOUGHT = 1, LINE_SOLD = 2, LINE_DEPTH = 3, LINE_OTHER = 4, LINE_PYTHON = 5 };
enum { VERDICT_OK = 0, VERDICT_BAD_PRICE = 1, VERDICT_BAD_SIZE = 2 };
enum { MAX_TEXT = 40, MAX_DIGITS = 19, SYMBOL_LINES = 1000 };
enum { UNKNOWN = -1, PENDING = -2 };
/* counts[] written by bs_scan */
enum { C_LINES, C_PYTHON, C_NAMES, C_QUEUE, C_DEPTH, C_OTHER, C_TEXT_BYTES, C_END, C_UNUSUAL, C_SIZE };

typedef struct {
    double time;
    int32_t text[4]; /* BBO: bid, ask, bid size, ask size; trade: price, size */
    int8_t code;
    int8_t verdict;
} Line;

typedef struct {
    int32_t *slots; /* text id + 1, 0 when empty */
    uint32_t slot_mask;
    uint64_t *hashes;
    int64_t *starts;
    uint8_t *lengths;
    int64_t *values; /* value index, UNKNOWN or PENDING */
    int32_t texts, text_cap;
    unsigned char *pool;
    int64_t pool_used, pool_cap;
    Line *lines;
    int64_t line_cap;
    int32_t recent[6]; /* the text ids last read in each field (BBO: 4, trade: 2), or -1 */
    int32_t *queue; /* text ids to resolve, in the order the Python reader would intern them */
    int64_t queue_count, queue_cap;
} Scanner;

void bs_free(Scanner *s) {
    if (!s) return;
    free(s->slots);
    free(s->hashes);
    free(s->starts);
    free(s->lengths);
    free(s->values);
    free(s->pool);
    free(s->lines);
    free(s->queue);
    free(s);
}

static int alloc_texts(Scanner *s, int32_t text_cap, uint32_t slots) {
    s->slots = calloc(slots, sizeof *s->slots);
    s->hashes = malloc((size_t)text_cap * sizeof *s->hashes);
    s->starts = malloc((size_t)text_cap * sizeof *s->starts);
    s->lengths = malloc((size_t)text_cap * sizeof *s->lengths);
    s->values = malloc((size_t)text_cap * sizeof *s->values);
    s->slot_mask = slots - 1;
    s->text_cap = text_cap;
    return s->slots && s->hashes && s->starts && s->lengths && s->values;
}

Scanner *bs_new(void) {
    Scanner *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (!alloc_texts(s, 4096, 8192)) {
        bs_free(s);
        return NULL;
    }
    for (int i = 0; i < 6; i++) s->recent[i] = -1;
    return s;
}

/* Forget every text (a new value table on the Python side, or too many texts). */
void bs_forget(Scanner *s) {
    memset(s->slots, 0, ((size_t)s->slot_mask + 1) * sizeof *s->slots);
    for (int i = 0; i < 6; i++) s->recent[i] = -1;
    s->texts = 0;
    s->pool_used = 0;
}

int32_t bs_texts(const Scanner *s) { return s->texts; }

static int grow_texts(Scanner *s) {
    int32_t cap = s->text_cap * 2;
    uint32_t slots = (uint32_t)cap * 2;
    int32_t *new_slots = calloc(slots, sizeof *new_slots);
    uint64_t *hashes = realloc(s->hashes, (size_t)cap * sizeof *hashes);
    if (hashes) s->hashes = hashes;
    int64_t *starts = realloc(s->starts, (size_t)cap * sizeof *starts);
    if (starts) s->starts = starts;
    uint8_t *lengths = realloc(s->lengths, (size_t)cap * sizeof *lengths);
    if (lengths) s->lengths = lengths;
    int64_t *values = realloc(s->values, (size_t)cap * sizeof *values);
    if (values) s->values = values;
    if (!new_slots || !hashes || !starts || !lengths || !values) {
        free(new_slots);
        return 0;
    }
    for (int32_t id = 0; id < s->texts; id++) {
        uint32_t slot = (uint32_t)s->hashes[id] & (slots - 1);
        while (new_slots[slot]) slot = (slot + 1) & (slots - 1);
        new_slots[slot] = id + 1;
    }
    free(s->slots);
    s->slots = new_slots;
    s->slot_mask = slots - 1;
    s->text_cap = cap;
    return 1;
}

/* a[0:length] == b[0:length]: memcmp, which the compiler turns into a few word compares when
 * the length is a constant (the literals) and the library's vectorised compare otherwise. */
static inline int same(const unsigned char *a, const unsigned char *b, int64_t length) {
    return memcmp(a, b, (size_t)length) == 0;
}

static inline uint64_t eight_bytes(const unsigned char *p);

/* same() for a number text of 1-16 bytes when SHORT_READ bytes may be read at both a and b (the
 * text pool keeps that much room at its end; a line's text needs that much of the line after
 * it): one or two word compares, the bytes past the length shifted out, instead of a library
 * call (a recording's texts are 3-9 bytes, and every field of every line compares one). */
enum { SHORT_READ = 16 };
static inline int same_short(const unsigned char *a, const unsigned char *b, int length) {
    const uint64_t low = eight_bytes(a) ^ eight_bytes(b);
    if (length <= 8) return (low << (64 - 8 * length)) == 0;
    return low == 0 && ((eight_bytes(a + 8) ^ eight_bytes(b + 8)) << (128 - 8 * length)) == 0;
}

/* A pooled text against buf[start:start+length]; ``roomy``: SHORT_READ bytes of the line follow
 * its start. */
static inline int same_text(const Scanner *s, int32_t id, const unsigned char *buf, int64_t start, int length,
                            int roomy) {
    const unsigned char *pooled = s->pool + s->starts[id];
    return roomy && length <= SHORT_READ ? same_short(pooled, buf + start, length)
                                         : same(pooled, buf + start, length);
}

/* The text id of buf[start:start+length], interned if new; -1 when out of memory. */
static int32_t intern(Scanner *s, const unsigned char *buf, int64_t start, int length, int roomy) {
    uint64_t hash = 1469598103934665603ULL;
    for (int i = 0; i < length; i++) hash = (hash ^ buf[start + i]) * 1099511628211ULL;
    hash ^= hash >> 29;
    uint32_t slot = (uint32_t)hash & s->slot_mask;
    for (;;) {
        int32_t found = s->slots[slot];
        if (!found) break;
        found -= 1;
        if (s->hashes[found] == hash && s->lengths[found] == length &&
            same_text(s, found, buf, start, length, roomy))
            return found;
        slot = (slot + 1) & s->slot_mask;
    }
    if (s->texts >= s->text_cap) { /* the slots stay at most half full */
        if (!grow_texts(s)) return -1;
        slot = (uint32_t)hash & s->slot_mask;
        while (s->slots[slot]) slot = (slot + 1) & s->slot_mask;
    }
    if (s->pool_used + length + SHORT_READ > s->pool_cap) { /* SHORT_READ: see same_short() */
        int64_t cap = s->pool_cap ? s->pool_cap * 2 : 65536;
        while (cap < s->pool_used + length + SHORT_READ) cap *= 2;
        unsigned char *pool = realloc(s->pool, (size_t)cap);
        if (!pool) return -1;
        s->pool = pool;
        s->pool_cap = cap;
    }
    int32_t id = s->texts++;
    memcpy(s->pool + s->pool_used, buf + start, (size_t)length);
    s->starts[id] = s->pool_used;
    s->pool_used += length;
    s->lengths[id] = (uint8_t)length;
    s->hashes[id] = hash;
    s->values[id] = UNKNOWN;
    s->slots[slot] = id + 1;
    return id;
}

/* intern(), first trying the text last read in the same field (prices and sizes repeat); the
 * line ends at end. */
static int32_t field_text(Scanner *s, int field, const unsigned char *buf, int64_t start, int length,
                          int64_t end) {
    const int roomy = end - start >= SHORT_READ;
    int32_t id = s->recent[field];
    if (id >= 0 && s->lengths[id] == length && same_text(s, id, buf, start, length, roomy)) return id;
    return s->recent[field] = intern(s, buf, start, length, roomy);
}

/* buf[*at:] starts with the literal: step over it. */
static inline int literal(const unsigned char *buf, int64_t *at, int64_t end, const char *text,
                          int64_t length) {
    if (end - *at < length || !same(buf + *at, (const unsigned char *)text, length)) return 0;
    *at += length;
    return 1;
}
#define LITERAL(text) literal(buf, &at, end, text, (int64_t)sizeof(text) - 1)

/* The eight bytes at p, loaded with p[0] as the low byte (what memcpy gives on the little-endian
 * machines this runs on; a big-endian one reads them byte by byte). */
static inline uint64_t eight_bytes(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
#endif
}

/* Flags (bits of a byte's high nibble) on each byte of v that is not an ASCII digit: a digit's
 * high nibble is 3 (0x30-0x3f), and adding 6 keeps it 3 (at most 0x39). The addition carries
 * into the next byte only from a byte of 0xfa or more, which the first test flags: the lowest
 * flagged byte, the first that is not a digit, is always right (bytes above it may not be). */
static inline uint64_t not_digits(uint64_t v) {
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL) |
           (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL);
}

/* Are all eight bytes ASCII digits? */
static inline int eight_digits(uint64_t v) { return not_digits(v) == 0; }

/* Flags (bit 7 of a byte) on each zero byte of v: the lowest is always right (a borrow may flag
 * bytes above it). */
static inline uint64_t zero_bytes(uint64_t v) {
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
}

/* The byte of the lowest flag of flags (not 0). */
static inline int first_flagged(uint64_t flags) { return __builtin_ctzll(flags) >> 3; }

/* The first byte of p..stop-1 that is not an ASCII digit, or stop: eight bytes at a time while
 * eight are left before stop. */
static inline const unsigned char *past_digits(const unsigned char *p, const unsigned char *stop) {
    for (; stop - p >= 8; p += 8) {
        const uint64_t flags = not_digits(eight_bytes(p));
        if (flags) return p + first_flagged(flags);
    }
    while (p < stop && (unsigned)(*p - '0') < 10) p++;
    return p;
}

/* The number eight digit bytes write (the first byte the most significant), in three steps
 * that each join neighbouring lanes: bytes into 2-digit values in 16-bit lanes, those into
 * 4-digit values in 32-bit lanes, those into the 8-digit value. No lane overflows: 99, 9999
 * and 99999999 fit. */
static inline uint64_t eight_digits_value(uint64_t v) {
    v -= 0x3030303030303030ULL;
    v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFULL;
    v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFULL;
    return (v * 10000 + (v >> 32)) & 0xFFFFFFFFULL;
}

/* [0-9]+ */
static inline int some_digits(const unsigned char *buf, int64_t *at, int64_t end) {
    const unsigned char *p = past_digits(buf + *at, buf + end);
    if (p == buf + *at) return 0;
    *at = p - buf;
    return 1;
}

/* [^"{}]* then '"' (not consumed): eight bytes at a time while eight are left. */
static inline int plain_string(const unsigned char *buf, int64_t *at, int64_t end) {
    const unsigned char *p = buf + *at, *last = buf + end;
    for (; last - p >= 8; p += 8) {
        const uint64_t v = eight_bytes(p);
        const uint64_t flags = zero_bytes(v ^ 0x2222222222222222ULL) | zero_bytes(v ^ 0x7B7B7B7B7B7B7B7BULL) |
                               zero_bytes(v ^ 0x7D7D7D7D7D7D7D7DULL); /* '"', '{', '}' */
        if (flags) {
            p += first_flagged(flags);
            break;
        }
    }
    while (p < last && *p != '"' && *p != '{' && *p != '}') p++;
    *at = p - buf;
    return p < last && *p == '"';
}

/* A number text [^"]{1,40} followed by '"' that is a plain decimal: its start, length and
 * whole digits, the closing quote consumed. 0: not this layout or not plain (the Python reader
 * decides). */
static inline int number_text(const unsigned char *buf, int64_t *at, int64_t end, int64_t *start,
                              int *length, int *whole) {
    const unsigned char *first = buf + *at, *last = buf + end;
    const unsigned char *stop = last - first > MAX_TEXT ? first + MAX_TEXT : last;
    const unsigned char *p = past_digits(first, stop);
    if (p == first) return 0;
    *whole = (int)(p - first);
    if (p < stop && *p == '.') {
        const unsigned char *decimals = ++p;
        p = past_digits(p, stop);
        if (p == decimals) return 0;
    }
    if (p >= last || *p != '"') return 0;
    *start = *at;
    *length = (int)(p - first);
    *at = p - buf + 1;
    return 1;
}

/* Correctly rounded nanoseconds / 10**9, as Python's int / int. */
static double seconds(uint64_t ns) {
    if (ns < (1ULL << 53)) return (double)ns / 1e9; /* both exact: one rounding */
    uint64_t whole = ns / 1000000000ULL, part = ns % 1000000000ULL;
    int exponent = 63 - __builtin_clzll(whole); /* >= 23: whole >= 2**53 / 10**9 */
    int shift = 52 - exponent;                  /* 19..29 */
    uint64_t scaled = part << shift;            /* < 2**59 */
    uint64_t steps = scaled / 1000000000ULL, rest = scaled % 1000000000ULL;
    /* Never a tie: scaled is a multiple of 2**19 and a tie would need it to be 2**8 * 5**9
     * modulo 2**9 * 5**9. */
    if (rest * 2 > 1000000000ULL) steps++;
    /* The integer is at most 2**53, and 2**-shift a power of two: the product is exact. */
    const uint64_t scale_bits = (uint64_t)(1023 - shift) << 52;
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return (double)((whole << shift) + steps) * scale;
}

/* Is the plain decimal a zero? */
static int is_zero(const unsigned char *text, int length) {
    for (int i = 0; i < length; i++)
        if (text[i] != '0' && text[i] != '.') return 0;
    return 1;
}

/* Is the plain decimal surely Python's str() of its Decimal? True when its whole part has no
 * leading zero (or is "0") and it has at most six decimals: str() writes such a value as it is
 * (an exponent of -6 or more). Others (00.5, 0.0000001) may be written otherwise. */
static int usual(const unsigned char *text, int length) {
    int whole = 0;
    while (whole < length && text[whole] != '.') whole++;
    if (whole > 1 && text[0] == '0') return 0;
    return whole == length || length - whole - 1 <= 6;
}

/* Compare two plain decimals by value (with their whole digits: number_text's): <0, 0, >0. */
static int compare(const unsigned char *a, int a_length, int a_int, const unsigned char *b, int b_length,
                   int b_int) {
    int a_lead = 0, b_lead = 0;
    while (a_lead < a_int && a[a_lead] == '0') a_lead++;
    while (b_lead < b_int && b[b_lead] == '0') b_lead++;
    if (a_int - a_lead != b_int - b_lead) return (a_int - a_lead) - (b_int - b_lead);
    int order = memcmp(a + a_lead, b + b_lead, (size_t)(a_int - a_lead));
    if (order) return order;
    const unsigned char *a_frac = a + a_int + (a_int < a_length), *b_frac = b + b_int + (b_int < b_length);
    int a_frac_length = a_length - a_int - (a_int < a_length), b_frac_length = b_length - b_int - (b_int < b_length);
    int longest = a_frac_length > b_frac_length ? a_frac_length : b_frac_length;
    for (int i = 0; i < longest; i++) {
        unsigned char x = i < a_frac_length ? a_frac[i] : '0', y = i < b_frac_length ? b_frac[i] : '0';
        if (x != y) return x - y;
    }
    return 0;
}

/* One line buf[start:end] (end excludes the '\n'): its code, time and texts. */
static int scan_line(Scanner *s, const unsigned char *buf, int64_t start, int64_t end, Line *line,
                     int64_t *name_start, int64_t *name_end) {
    int64_t at = start;
    uint64_t ns = 0;
    line->code = LINE_PYTHON;
    uint64_t high, middle;
    if (end - start > MAX_DIGITS && eight_digits(high = eight_bytes(buf + start)) &&
        eight_digits(middle = eight_bytes(buf + start + 8)) && (unsigned)(buf[start + 16] - '0') < 10 &&
        (unsigned)(buf[start + 17] - '0') < 10 && (unsigned)(buf[start + 18] - '0') < 10) {
        /* The usual nanosecond time: 19 digits (below 10**19, so it fits). */
        ns = eight_digits_value(high) * 100000000000ULL + eight_digits_value(middle) * 1000ULL +
             (uint64_t)(buf[start + 16] - '0') * 100 + (uint64_t)(buf[start + 17] - '0') * 10 +
             (uint64_t)(buf[start + 18] - '0');
        at = start + MAX_DIGITS; /* a 20th digit fails the test for the space after the time */
    } else {
        const int64_t digits_end = end - start > MAX_DIGITS + 1 ? start + MAX_DIGITS + 1 : end;
        for (unsigned digit; at < digits_end && (digit = (unsigned)(buf[at] - '0')) < 10; at++)
            ns = ns * 10 + digit;
        if (at == start || at - start > MAX_DIGITS) return 1;
    }
    if (at >= end || buf[at] != ' ') return 1;
    at++;
    if (!LITERAL("{\"stream\":\"")) return 1;
    const unsigned char *quoted = memchr(buf + at, '"', (size_t)(end - at));
    if (!quoted) return 1; /* no closing quote: the Python reader's NOT_JSON */
    int64_t name = at, quote = quoted - buf;
    const unsigned char *signed_at = memchr(buf + at, '@', (size_t)(quote - at));
    if (!signed_at) {
        line->code = LINE_OTHER;
        return 1;
    }
    int64_t sign = signed_at - buf;
    *name_start = name;
    *name_end = sign;
    at = sign + 1;
    int64_t channel = quote - at;
    int64_t text_start[4];
    int text_length[4], whole[4];
    if (channel == 10 && memcmp(buf + at, "bookTicker", 10) == 0) {
        at = quote;
        if (!LITERAL("\",\"data\":{\"e\":\"bookTicker\",\"u\":") || !some_digits(buf, &at, end) ||
            !LITERAL(",\"s\":\"") || !plain_string(buf, &at, end) || !LITERAL("\",\"b\":\"") ||
            !number_text(buf, &at, end, &text_start[0], &text_length[0], &whole[0]) || !LITERAL(",\"B\":\"") ||
            !number_text(buf, &at, end, &text_start[2], &text_length[2], &whole[2]) || !LITERAL(",\"a\":\"") ||
            !number_text(buf, &at, end, &text_start[1], &text_length[1], &whole[1]) || !LITERAL(",\"A\":\"") ||
            !number_text(buf, &at, end, &text_start[3], &text_length[3], &whole[3]))
            return 1;
        const unsigned char *bid = buf + text_start[0], *ask = buf + text_start[1];
        if (is_zero(bid, text_length[0]) ||
            compare(bid, text_length[0], whole[0], ask, text_length[1], whole[1]) > 0)
            line->verdict = VERDICT_BAD_PRICE;
        else
            line->verdict = VERDICT_OK;
        for (int i = 0; i < 4; i++)
            if ((line->text[i] = field_text(s, i, buf, text_start[i], text_length[i], end)) < 0) return 0;
        line->code = LINE_BBO;
    } else if (channel == 5 && memcmp(buf + at, "trade", 5) == 0) {
        at = quote;
        int sold;
        if (!LITERAL("\",\"data\":{\"e\":\"trade\",\"E\":") || !some_digits(buf, &at, end) ||
            !LITERAL(",\"T\":") || !some_digits(buf, &at, end) || !LITERAL(",\"s\":\"") ||
            !plain_string(buf, &at, end) || !LITERAL("\",\"t\":") || !some_digits(buf, &at, end) ||
            !LITERAL(",\"p\":\"") || !number_text(buf, &at, end, &text_start[0], &text_length[0], &whole[0]) ||
            !LITERAL(",\"q\":\"") || !number_text(buf, &at, end, &text_start[1], &text_length[1], &whole[1]) ||
            !LITERAL(",\"X\":\"") || !plain_string(buf, &at, end) || !LITERAL("\",\"m\":"))
            return 1;
        if (LITERAL("true"))
            sold = 1;
        else if (LITERAL("false"))
            sold = 0;
        else
            return 1;
        if (is_zero(buf + text_start[0], text_length[0]))
            line->verdict = VERDICT_BAD_PRICE;
        else if (is_zero(buf + text_start[1], text_length[1]))
            line->verdict = VERDICT_BAD_SIZE;
        else
            line->verdict = VERDICT_OK;
        for (int i = 0; i < 2; i++)
            if ((line->text[i] = field_text(s, 4 + i, buf, text_start[i], text_length[i], end)) < 0) return 0;
        line->text[2] = line->text[3] = -1;
        line->code = sold ? LINE_SOLD : LINE_BOUGHT;
    } else {
        line->code = channel >= 5 && memcmp(buf + at, "depth", 5) == 0 ? LINE_DEPTH : LINE_OTHER;
        return 1;
    }
    line->time = seconds(ns);
    return 1;
}

/* Scan the lines of buf[from:length] (whole lines, the last one perhaps without its '\n'), at
 * most line_cap of them; counts[C_END] is where the scan stopped (length once every line is
 * read), so a caller scans a long block in steps without counting its lines first. first_line
 * is the number of lines before buf[from]. Out: per Python-read line its index and byte span in
 * buf (the '\n' included); per line within the first SYMBOL_LINES that names a stream, its
 * index and the name's span; the queue of texts to resolve (their line index, and the texts
 * joined by '\n' into text_out; counts[C_UNUSUAL]: how many of them are not surely written as
 * Python writes their Decimal, see usual()). Returns 0, or -1 when out of memory. */
int bs_scan(Scanner *s, const unsigned char *buf, int64_t length, int64_t from, int64_t line_cap,
            int64_t first_line, int64_t *counts, int64_t *python_lines, int64_t *names, int64_t *queue_lines,
            unsigned char *text_out) {
    int64_t lines = 0, python = 0, name_count = 0, depth = 0, other = 0, text_bytes = 0, unusual = 0;
    if (line_cap > s->line_cap) {
        Line *grown = realloc(s->lines, (size_t)line_cap * sizeof *grown);
        if (!grown) return -1;
        s->lines = grown;
        s->line_cap = line_cap;
    }
    s->queue_count = 0;
    int64_t start = from;
    while (start < length && lines < line_cap) {
        const unsigned char *newline = memchr(buf + start, '\n', (size_t)(length - start));
        int64_t end = newline ? newline - buf : length, next = newline ? end + 1 : length;
        Line *line = &s->lines[lines];
        int64_t name_start = -1, name_end = -1;
        if (!scan_line(s, buf, start, end, line, &name_start, &name_end)) return -1;
        if (line->code == LINE_PYTHON) {
            python_lines[3 * python] = lines;
            python_lines[3 * python + 1] = start;
            python_lines[3 * python + 2] = next;
            python++;
        } else {
            if (line->code == LINE_DEPTH) depth++;
            if (line->code == LINE_OTHER) other++;
            if (first_line + lines < SYMBOL_LINES && name_end > name_start) {
                names[3 * name_count] = lines;
                names[3 * name_count + 1] = name_start;
                names[3 * name_count + 2] = name_end;
                name_count++;
            }
            if (line->code <= LINE_SOLD && line->verdict == VERDICT_OK) {
                int fields = line->code == LINE_BBO ? 4 : 2;
                for (int i = 0; i < fields; i++) {
                    int32_t id = line->text[i];
                    if (s->values[id] != UNKNOWN) continue;
                    if (s->queue_count == s->queue_cap) {
                        int64_t cap = s->queue_cap ? s->queue_cap * 2 : 4096;
                        int32_t *queue = realloc(s->queue, (size_t)cap * sizeof *queue);
                        if (!queue) return -1;
                        s->queue = queue;
                        s->queue_cap = cap;
                    }
                    s->values[id] = PENDING;
                    queue_lines[s->queue_count] = lines;
                    s->queue[s->queue_count++] = id;
                    if (text_bytes) text_out[text_bytes++] = '\n';
                    if (!usual(s->pool + s->starts[id], s->lengths[id])) unusual++;
                    memcpy(text_out + text_bytes, s->pool + s->starts[id], s->lengths[id]);
                    text_bytes += s->lengths[id];
                }
            }
        }
        lines++;
        start = next;
    }
    counts[C_LINES] = lines;
    counts[C_PYTHON] = python;
    counts[C_NAMES] = name_count;
    counts[C_QUEUE] = s->queue_count;
    counts[C_DEPTH] = depth;
    counts[C_OTHER] = other;
    counts[C_TEXT_BYTES] = text_bytes;
    counts[C_END] = start;
    counts[C_UNUSUAL] = unusual;
    return 0;
}

/* The value indexes of queue entries first..first+count-1, as the Python reader interned them. */
void bs_resolve(Scanner *s, int64_t first, int64_t count, const int64_t *indexes) {
    for (int64_t i = 0; i < count; i++) s->values[s->queue[first + i]] = indexes[i];
}

/* The rows of lines first..stop-1 (none of them a Python-read line), appended to the columns;
 * times clamped to *clock (updated); each refused line's index and verdict in bad_lines and
 * bad_kinds. counts: rows, refused lines, clamped times, BBO rows. */
void bs_commit(Scanner *s, int64_t first, int64_t stop, double *clock, double *times, int8_t *kinds,
               uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d, int64_t *bad_lines, int8_t *bad_kinds,
               int64_t *counts) {
    int64_t rows = 0, bad = 0, clamped = 0, quotes = 0;
    double last = *clock;
    for (int64_t index = first; index < stop; index++) {
        const Line *line = &s->lines[index];
        if (line->code > LINE_SOLD) continue;
        if (line->verdict != VERDICT_OK) {
            bad_lines[bad] = index;
            bad_kinds[bad++] = line->verdict;
            continue;
        }
        double time = line->time;
        if (time < last) {
            time = last;
            clamped++;
        } else {
            last = time;
        }
        times[rows] = time;
        kinds[rows] = line->code;
        a[rows] = (uint32_t)s->values[line->text[0]];
        b[rows] = (uint32_t)s->values[line->text[1]];
        if (line->code == LINE_BBO) {
            c[rows] = (uint32_t)s->values[line->text[2]];
            d[rows] = (uint32_t)s->values[line->text[3]];
            quotes++;
        } else {
            c[rows] = d[rows] = 0;
        }
        rows++;
    }
    *clock = last;
    counts[0] = rows;
    counts[1] = bad;
    counts[2] = clamped;
    counts[3] = quotes;
}

/* For the tests: the time of a nanosecond count, as the scanner reads it. */
double bs_seconds(uint64_t ns) { return seconds(ns); }

/* ---- For the feed cache and the backtest engine: column work too slow as a Python loop. ---- */

/* Value indexes renamed after the value table was sorted: mapping[old index] is the new one.
 * BBO rows have four indexes; a trade's third and fourth stay 0 (they name no value). */
void bs_remap(const int8_t *kinds, uint32_t *first, uint32_t *second, uint32_t *third, uint32_t *fourth,
              int64_t count, const uint32_t *mapping) {
    for (int64_t i = 0; i < count; i++) {
        first[i] = mapping[first[i]];
        second[i] = mapping[second[i]];
        if (kinds[i] == LINE_BBO) {
            third[i] = mapping[third[i]];
            fourth[i] = mapping[fourth[i]];
        }
    }
}

/* The end of a quiet run (backtesting.engine._QuietRuns.end, whose Python loop this is): the
 * first index in begin..stop-1 whose event is outside the bounds, or stop. The value table is
 * sorted, so prices compare as their indexes. The arguments come packed in one int64 array, since
 * ctypes converts each argument it is given at about 0.2 us and a backtest makes this call about
 * once per hundred events: {kinds, first, second (the columns' addresses), begin, stop, bid_low,
 * bid_high, ask_low, ask_high, trade_low, trade_high, bid_ranges, ask_ranges, then the [low, high)
 * index ranges: bid_ranges of them a quote's bid must be outside, then ask_ranges for its ask}. A
 * quote is inside when bid_low <= bid < bid_high and ask_low <= ask < ask_high, a trade when
 * trade_low <= price < trade_high. */
int64_t bs_quiet_end(const int64_t *call) {
    const int8_t *kinds = (const int8_t *)(intptr_t)call[0];
    const uint32_t *first = (const uint32_t *)(intptr_t)call[1], *second = (const uint32_t *)(intptr_t)call[2];
    const int64_t begin = call[3], stop = call[4];
    const int64_t bid_low = call[5], bid_high = call[6], ask_low = call[7], ask_high = call[8];
    const int64_t trade_low = call[9], trade_high = call[10];
    const int64_t bid_ranges = call[11], ask_ranges = call[12];
    const int64_t *excluded = call + 13, *ask_excluded = call + 13 + 2 * bid_ranges;
    for (int64_t i = begin; i < stop; i++) {
        const int64_t a = first[i];
        if (kinds[i] == LINE_BBO) {
            const int64_t b = second[i];
            if (a < bid_low || a >= bid_high || b < ask_low || b >= ask_high) return i;
            for (int64_t r = 0; r < bid_ranges; r++)
                if (excluded[2 * r] <= a && a < excluded[2 * r + 1]) return i;
            for (int64_t r = 0; r < ask_ranges; r++)
                if (ask_excluded[2 * r] <= b && b < ask_excluded[2 * r + 1]) return i;
        } else if (a < trade_low || a >= trade_high) {
            return i;
        }
    }
    return stop;
}

/* Python's float floor division, bit for bit (CPython's float_floor_div): the sample times
 * below must come out as the Python loop's. */
static double python_floor_div(double vx, double wx) {
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod != 0.0) {
        if ((wx < 0) != (mod < 0)) div -= 1.0;
    }
    if (div != 0.0) {
        double whole = floor(div);
        if (div - whole > 0.5) whole += 1.0;
        return whole;
    }
    return copysign(0.0, vx / wx);
}

/* The samples due among events begin..end-1 of a quiet run (backtesting.engine._QuietRuns.
 * take_samples, whose Python loop this is). A sample falls at the first event at or after its
 * due time; the next is due interval * (1 + (moment - due) // interval) later. For each, splits[]
 * gets that event's index and quotes[] the index of the last quote before it (since the sample
 * before) when its bid or ask index differs from the last one reported, else -1: a quote with
 * the same indexes holds the same value objects. Packed as bs_quiet_end's: call = {times, kinds,
 * first, second (addresses), begin, end, bid, ask (the indexes last reported, -1 at first),
 * splits, quotes (addresses), room}; numbers = {due, interval}. Stops after room samples;
 * returns how many it wrote, leaving begin, bid, ask and due where the next call goes on. */
int64_t bs_sample_points(int64_t *call, double *numbers) {
    const double *times = (const double *)(intptr_t)call[0];
    const int8_t *kinds = (const int8_t *)(intptr_t)call[1];
    const uint32_t *first = (const uint32_t *)(intptr_t)call[2], *second = (const uint32_t *)(intptr_t)call[3];
    int64_t begin = call[4], bid = call[6], ask = call[7];
    const int64_t end = call[5], room = call[10];
    int64_t *splits = (int64_t *)(intptr_t)call[8], *quotes = (int64_t *)(intptr_t)call[9];
    double due = numbers[0];
    const double interval = numbers[1];
    int64_t written = 0;
    while (written < room) {
        int64_t low = begin, high = end; /* bisect_left(times, due, begin, end) */
        while (low < high) {
            const int64_t middle = low + (high - low) / 2;
            if (times[middle] < due) low = middle + 1;
            else high = middle;
        }
        if (low == end) break;
        int64_t quote = -1;
        for (int64_t i = low - 1; i >= begin; i--) {
            if (kinds[i] == LINE_BBO) {
                if ((int64_t)first[i] != bid || (int64_t)second[i] != ask) {
                    quote = i;
                    bid = first[i];
                    ask = second[i];
                }
                break;
            }
        }
        splits[written] = low;
        quotes[written] = quote;
        written++;
        const double moment = times[low];
        due += interval * (1.0 + python_floor_div(moment - due, interval));
        begin = low;
    }
    call[4] = begin;
    call[6] = bid;
    call[7] = ask;
    numbers[0] = due;
    return written;
}

/* Where a quiet run's last change of quote may be (backtesting.engine._QuietRuns.apply): going
 * back from the quote at index at while at > floor, the first quote whose bid or ask index
 * differs from the quote before it in begin..at-1, or that has no quote before it there; or
 * floor when none does above it. Equal indexes are equal values; differing ones may still be
 * (equal values with other digits), which the caller checks. Packed: call = {kinds, first,
 * second (addresses), begin, at, floor}. */
int64_t bs_quote_change(const int64_t *call) {
    const int8_t *kinds = (const int8_t *)(intptr_t)call[0];
    const uint32_t *first = (const uint32_t *)(intptr_t)call[1], *second = (const uint32_t *)(intptr_t)call[2];
    const int64_t begin = call[3], floor_index = call[5];
    int64_t at = call[4];
    while (at > floor_index) {
        int64_t before = at - 1;
        while (before >= begin && kinds[before] != LINE_BBO) before--;
        if (before < begin || first[before] != first[at] || second[before] != second[at]) return at;
        at = before;
    }
    return floor_index;
}

/* One side's sizes at the quotes among events begin..end-1: its column's index at each quote,
 * leaving out one that repeats the index just before it, the first always kept. */
static int64_t quote_sizes(const int8_t *kinds, const uint32_t *column, int64_t begin, int64_t end,
                           uint32_t *sizes) {
    int64_t written = 0;
    for (int64_t i = begin; i < end; i++) {
        if (kinds[i] != LINE_BBO) continue;
        if (written == 0 || sizes[written - 1] != column[i]) sizes[written++] = column[i];
    }
    return written;
}

/* The sizes the quotes of a same-quote run show, bid and ask (backtesting.engine._QuietRuns.
 * apply_same_quotes): a size that repeats the one before it on its side is the same value
 * object again, which the venue's queue skips, so it is left out here. Packed: call = {kinds,
 * bid sizes column, ask sizes column (addresses), begin, end, bid out, ask out (addresses, room
 * for end - begin each), then the ask count written back}. Returns the bid count. */
int64_t bs_quote_sizes(int64_t *call) {
    const int8_t *kinds = (const int8_t *)(intptr_t)call[0];
    const uint32_t *bids = (const uint32_t *)(intptr_t)call[1], *asks = (const uint32_t *)(intptr_t)call[2];
    const int64_t begin = call[3], end = call[4];
    call[7] = quote_sizes(kinds, asks, begin, end, (uint32_t *)(intptr_t)call[6]);
    return quote_sizes(kinds, bids, begin, end, (uint32_t *)(intptr_t)call[5]);
}

/* The values used as prices by events 0..count-1 (a quote's bid and ask, a trade's price):
 * marks[index] set to 1 for each (feed_cache.sample_prices, whose Python loop this is). Returns
 * 1, marking nothing more, at an index not below values (a damaged cache), else 0. */
int bs_mark_prices(const int8_t *kinds, const uint32_t *first, const uint32_t *second, int64_t count,
                   uint8_t *marks, int64_t values) {
    for (int64_t i = 0; i < count; i++) {
        if (first[i] >= values) return 1;
        marks[first[i]] = 1;
        if (kinds[i] == LINE_BBO) {
            if (second[i] >= values) return 1;
            marks[second[i]] = 1;
        }
    }
    return 0;
}

/* ---- The value table sorted by size (feed_cache.sorted_table, whose Python sort this is). ---- */

typedef struct {
    uint64_t key; /* the value in units of the table's finest decimal */
    uint32_t index;
} TableKey;

enum { KEY_DIGITS = 18 };

/* A plain decimal ([0-9]+, [0-9]+.[0-9]*, .[0-9]+) with at most 18 whole digits after leading
 * zeros and at most 18 decimals: its whole part, its decimals as an 18-digit integer and how many
 * it has. 0 for any other text (the caller sorts in Python). */
static int table_value(const unsigned char *text, int64_t length, uint64_t *whole, uint64_t *fraction,
                       int *decimals) {
    uint64_t integer = 0, part = 0;
    int64_t at = 0;
    int significant = 0, places = 0, digits = 0;
    for (; at < length && text[at] >= '0' && text[at] <= '9'; at++, digits++) {
        if (integer == 0 && text[at] == '0') continue;
        if (++significant > KEY_DIGITS) return 0;
        integer = integer * 10 + (uint64_t)(text[at] - '0');
    }
    if (at < length && text[at] == '.') {
        for (at++; at < length && text[at] >= '0' && text[at] <= '9'; at++, digits++) {
            if (++places > KEY_DIGITS) return 0;
            part = part * 10 + (uint64_t)(text[at] - '0');
        }
    }
    if (at != length || digits == 0) return 0;
    *decimals = places;
    for (; places < KEY_DIGITS; places++) part *= 10;
    *whole = integer;
    *fraction = part;
    return 1;
}

/* Sort a value table given as its texts joined by '\n' (count of them, length bytes): order[new]
 * is the old index, mapping[old] the new one, and sorted_text the texts joined again in the new
 * order (length bytes). Each value becomes an integer in units of the table's finest decimal,
 * sorted by a stable radix sort (equal values spelled apart keep their order). Returns 1 when the
 * table was sorted already (the outputs are then not written), 0 when sorted, -1 when a text is
 * not one this sort reads, the values do not fit 64 bits in those units, or memory ran out: the
 * caller sorts in Python. */
int bs_sort_table(const unsigned char *text, int64_t length, int64_t count, uint32_t *order, uint32_t *mapping,
                  unsigned char *sorted_text) {
    if (count <= 0) return 1;
    TableKey *keys = malloc((size_t)(2 * count) * sizeof *keys);
    uint64_t *fractions = malloc((size_t)count * sizeof *fractions);
    int64_t *starts = malloc((size_t)(count + 1) * sizeof *starts);
    int result = keys != NULL && fractions != NULL && starts != NULL ? 1 : -1;
    int64_t start = 0, found = 0;
    int finest = 0;
    for (int64_t at = 0; at <= length && result >= 0; at++) {
        if (at < length && text[at] != '\n') continue;
        int decimals;
        if (found == count || !table_value(text + start, at - start, &keys[found].key, &fractions[found], &decimals)) {
            result = -1;
            break;
        }
        if (decimals > finest) finest = decimals;
        keys[found].index = (uint32_t)found;
        starts[found++] = start;
        start = at + 1;
    }
    if (found != count) result = -1;
    uint64_t unit = 1, scale = 1; /* 10**finest, 10**(18 - finest) */
    for (int i = 0; i < finest; i++) unit *= 10;
    for (int i = finest; i < KEY_DIGITS; i++) scale *= 10;
    uint64_t highest = 0;
    for (int64_t i = 0; result >= 0 && i < count; i++) {
        const uint64_t part = fractions[i] / scale;
        if (keys[i].key > (UINT64_MAX - part) / unit) {
            result = -1;
            break;
        }
        keys[i].key = keys[i].key * unit + part;
        if (keys[i].key > highest) highest = keys[i].key;
        if (i > 0 && keys[i].key < keys[i - 1].key) result = 0;
    }
    if (result == 0) {
        TableKey *from = keys, *to = keys + count;
        for (int shift = 0; shift < 64 && (highest >> shift) != 0; shift += 8) {
            int64_t place[257] = {0};
            for (int64_t i = 0; i < count; i++) place[((from[i].key >> shift) & 255) + 1]++;
            for (int digit = 0; digit < 256; digit++) place[digit + 1] += place[digit];
            for (int64_t i = 0; i < count; i++) to[place[(from[i].key >> shift) & 255]++] = from[i];
            TableKey *swap = from;
            from = to;
            to = swap;
        }
        starts[count] = length + 1;
        int64_t written = 0;
        for (int64_t i = 0; i < count; i++) {
            const uint32_t old = from[i].index;
            order[i] = old;
            mapping[old] = (uint32_t)i;
            const int64_t size = starts[old + 1] - 1 - starts[old];
            if (i > 0) sorted_text[written++] = '\n';
            memcpy(sorted_text + written, text + starts[old], (size_t)size);
            written += size;
        }
    }
    free(keys);
    free(fractions);
    free(starts);
    return result;
}
