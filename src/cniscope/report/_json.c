/* The report's journeys and conversations as JSON text, in C (cniscope.report.json_out): the text orjson writes of
 * each element, one element a line, without a dict made per conversation first nor orjson's checks of each object (the
 * 2M reference pcap's report, 20,000 journeys and conversations: 0.12 -> 0.08 s of CPU). Only what it can write
 * exactly as orjson does is written: None, bools, integers of 64 bits, ASCII text (str and its subclasses: the enums),
 * lists, tuples, dicts of str keys, instances of the given dataclasses (their __dict__, as orjson writes a dataclass;
 * a key starting with `_`, which orjson would skip, is refused; or their slots, in their class's order, where they have
 * no dict), and the given endpoint type (of slots, `addr` and `port` first) as its text (`results.Endpoint.__str__`).
 * Anything else (text beyond ASCII, a larger integer, a float, another type) makes the whole call return None: json_out
 * then writes those elements as it does without C. No Python code runs while writing (dicts are read as they are).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define DEPTH_MAX 64 /* nesting refused beyond this (a report's elements nest 4 deep) */
#define REFUSED 1    /* a writer's result: not written here (no exception set); -1: an exception is set */

#define SLOTTED_MAX 8 /* classes with slots a call writes at most */
#define SLOTS_MAX 32  /* slots such a class has at most */

/* Where a class with slots and no dict (a dataclass of slots: results.Hop) keeps each field, in the order of its
 * `__slots__` (its fields' order, which orjson writes; the members' own order is sorted by name). */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t count;
    PyObject *names[SLOTS_MAX]; /* borrowed: the class's `__slots__` holds them */
    Py_ssize_t offsets[SLOTS_MAX];
} Slotted;

typedef struct {
    char *data; /* the text written so far: `scratch`, grown as needed */
    Py_ssize_t length, capacity;
    PyObject *objects;    /* tuple of the types written as their __dict__ (or their slots: `slotted`) */
    PyTypeObject *endpoint; /* written as its text, or NULL */
    Py_ssize_t endpoint_at[2]; /* where an endpoint keeps its address and port (its first two slots) */
    Slotted *slotted;
    int slotted_count;
} Writer;

/* The text is written in one buffer kept from call to call, and copied out whole: a buffer of its own for each call
 * (half a megabyte, grown) was fresh memory each time, and each fresh page touched costs this machine's kind of VM a
 * fault (a call of 512 journeys took 2-3x as long). The GIL is held throughout and no Python code runs: one call at
 * a time. */
static char *scratch;
static Py_ssize_t scratch_size;

static int grow(Writer *w, Py_ssize_t more) {
    if (more > PY_SSIZE_T_MAX / 4 - w->length) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t wanted = (w->length + more) * 2;
    char *grown = PyMem_RawRealloc(w->data, (size_t)wanted);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->data = scratch = grown;
    w->capacity = scratch_size = wanted;
    return 0;
}

static inline int room(Writer *w, Py_ssize_t more) {
    return more <= w->capacity - w->length ? 0 : grow(w, more);
}

static inline char *at(Writer *w) {
    return w->data + w->length;
}

static inline int put(Writer *w, const char *text, Py_ssize_t n) {
    if (room(w, n) < 0)
        return -1;
    memcpy(at(w), text, (size_t)n);
    w->length += n;
    return 0;
}

static const char PAIRS[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";

/* An integer's decimal digits (as orjson writes it), at the writer's end: two digits a step. */
static int put_digits(Writer *w, unsigned long long value, int negative) {
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    while (value >= 100) {
        p -= 2;
        memcpy(p, PAIRS + 2 * (value % 100), 2);
        value /= 100;
    }
    if (value >= 10) {
        p -= 2;
        memcpy(p, PAIRS + 2 * value, 2);
    } else
        *--p = (char)('0' + value);
    if (negative)
        *--p = '-';
    return put(w, p, end - p);
}

/* An exact int within 64 bits, signed or not; REFUSED beyond (orjson refuses those too). */
static int put_int(Writer *w, PyObject *o) {
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0)
        return put_digits(w, value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value, value < 0);
    if (overflow < 0)
        return REFUSED;
    unsigned long long large = PyLong_AsUnsignedLongLong(o);
    if (large == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return REFUSED;
    }
    return put_digits(w, large, 0);
}


static const char HEX[] = "0123456789abcdef";

/* ASCII text escaped as orjson escapes it: quote and backslash, \b \t \n \f \r, other control characters as \u00xx;
 * without the quotes around it. REFUSED for text beyond ASCII (json_out writes it escaped, as orjson does not). */
static int put_escaped(Writer *w, PyObject *text) {
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0)
        return -1;
#endif
    if (!PyUnicode_IS_ASCII(text))
        return REFUSED;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *s = PyUnicode_DATA(text); /* (ASCII: one byte a character) */
    if (room(w, n * 6) < 0)
        return -1;
    char *out = at(w);
    Py_ssize_t i = 0;
    /* 8 characters at a time where none of them is escaped (a word with no byte below 0x20, no quote, no backslash:
     * ASCII, so no byte has its top bit), one at a time from the first word that has one */
    const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, quote, slash;
        memcpy(&x, s + i, 8);
        quote = x ^ ('"' * ones);
        slash = x ^ ('\\' * ones);
        if ((((x - 0x20 * ones) & ~x) | ((quote - ones) & ~quote) | ((slash - ones) & ~slash)) & tops)
            break;
        memcpy(out, &x, 8);
        out += 8;
    }
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            memcpy(out, "u00", 3);
            out[3] = HEX[c >> 4];
            out[4] = HEX[c & 15];
            out += 5;
        }
    }
    w->length = out - w->data;
    return 0;
}

static int put_text(Writer *w, PyObject *text) {
    if (put(w, "\"", 1) < 0)
        return -1;
    int done = put_escaped(w, text);
    return done != 0 ? done : put(w, "\"", 1);
}

/* `results.Endpoint.__str__` as a JSON string: its address, `addr:port`, or `[addr]:port` for an IPv6 address; the
 * address an exact str, the port None or an exact int of 64 bits, read from their slots (`endpoint_at`; else
 * REFUSED). */
static int put_endpoint(Writer *w, PyObject *endpoint) {
    PyObject *addr = *(PyObject **)((char *)endpoint + w->endpoint_at[0]);
    PyObject *port = *(PyObject **)((char *)endpoint + w->endpoint_at[1]);
    if (addr == NULL || port == NULL || !PyUnicode_CheckExact(addr) || (port != Py_None && !PyLong_CheckExact(port)))
        return REFUSED;
    if (port == Py_None)
        return put_text(w, addr);
    int overflow, done;
    long long number = PyLong_AsLongLongAndOverflow(port, &overflow);
    if (number == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return REFUSED;
    Py_ssize_t colon = PyUnicode_FindChar(addr, ':', 0, PyUnicode_GET_LENGTH(addr), 1);
    if (colon == -2)
        return -1;
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
    if (put(w, colon >= 0 ? "\"[" : "\"", colon >= 0 ? 2 : 1) < 0 || (done = put_escaped(w, addr)) < 0)
        return -1;
    if (done == 0 && (put(w, colon >= 0 ? "]:" : ":", colon >= 0 ? 2 : 1) < 0 || put_digits(w, magnitude, number < 0) < 0
                      || put(w, "\"", 1) < 0))
        return -1;
    return done;
}

static int put_value(Writer *w, PyObject *o, int depth);

/* A dict's key and its colon, `"key":`, written once per key object: the keys of a dataclass's __dict__ are the same
 * objects in every instance (a direct-mapped cache by address, multiplied and its high bits taken; a key object is
 * held while it is cached). 1024 slots, of which a report's 50-odd keys touch a page or so: at 64 slots by the
 * address's low bits, keys of a hop shared slots and were written anew over and over (20,000 journeys 26.5-27.1 ->
 * 22.3-23.4 ms). */
#define KEYS 1024
#define KEY_TEXT 48
static struct {
    PyObject *key;
    char text[KEY_TEXT];
    int length;
} keys[KEYS];

static int put_key(Writer *w, PyObject *key) {
    size_t slot = (size_t)(((uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ULL) >> 54) % KEYS;
    if (keys[slot].key == key)
        return put(w, keys[slot].text, keys[slot].length);
    Py_ssize_t start = w->length;
    int done = put_text(w, key);
    if (done != 0 || put(w, ":", 1) < 0)
        return done ? done : -1;
    Py_ssize_t length = w->length - start;
    if (length <= KEY_TEXT) {
        Py_INCREF(key);
        Py_XSETREF(keys[slot].key, key);
        memcpy(keys[slot].text, w->data + start, (size_t)length);
        keys[slot].length = (int)length;
    }
    return 0;
}

/* A dict's items as a JSON object: exact str keys only; `fields`: a dataclass's __dict__ (a key starting with `_`
 * is refused, as orjson would leave it out). */
static int put_items(Writer *w, PyObject *dict, int depth, int fields) {
    Py_ssize_t position = 0;
    PyObject *key, *value;
    int first = 1, done;
    if (put(w, "{", 1) < 0)
        return -1;
    while (PyDict_Next(dict, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || (fields && (PyUnicode_GET_LENGTH(key) == 0 || PyUnicode_READ_CHAR(key, 0) == '_')))
            return REFUSED;
        if (!first && put(w, ",", 1) < 0)
            return -1;
        if ((done = put_key(w, key)) != 0)
            return done;
        if ((done = put_value(w, value, depth + 1)) != 0)
            return done;
        first = 0;
    }
    return put(w, "}", 1);
}

/* An instance of a class of slots: its fields as `plan` finds them; REFUSED where one is unset. */
static int put_slots(Writer *w, PyObject *o, const Slotted *plan, int depth) {
    if (put(w, "{", 1) < 0)
        return -1;
    for (Py_ssize_t f = 0; f < plan->count; f++) {  /* the fields' objects asked of memory at once, not one by one */
        PyObject *value = *(PyObject **)((char *)o + plan->offsets[f]);
        if (value != NULL)
            __builtin_prefetch(value);
    }
    for (Py_ssize_t f = 0; f < plan->count; f++) {
        PyObject *value = *(PyObject **)((char *)o + plan->offsets[f]);
        if (value == NULL)
            return REFUSED;
        int done = (f && put(w, ",", 1) < 0) ? -1 : put_key(w, plan->names[f]);
        if (done != 0 || (done = put_value(w, value, depth + 1)) != 0)
            return done;
    }
    return put(w, "}", 1);
}

static int put_object(Writer *w, PyObject *o, int depth) {
    if (Py_TYPE(o)->tp_dictoffset == 0) {
        for (int i = 0; i < w->slotted_count; i++)
            if (w->slotted[i].type == Py_TYPE(o))
                return put_slots(w, o, &w->slotted[i], depth);
        return REFUSED;
    }
    PyObject *own = PyObject_GenericGetDict(o, NULL);
    if (own == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return REFUSED;
    }
    int done = PyDict_CheckExact(own) ? put_items(w, own, depth, 1) : REFUSED;
    Py_DECREF(own);
    return done;
}

static int put_array(Writer *w, PyObject *o, int depth) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    PyObject **items = PySequence_Fast_ITEMS(o);
    if (put(w, "[", 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)  /* (as a slotted object's fields) */
        __builtin_prefetch(items[i]);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && put(w, ",", 1) < 0)
            return -1;
        int done = put_value(w, items[i], depth + 1);
        if (done != 0)
            return done;
    }
    return put(w, "]", 1);
}

static int put_value(Writer *w, PyObject *o, int depth) {
    if (depth > DEPTH_MAX)
        return REFUSED;
    if (PyLong_CheckExact(o))
        return put_int(w, o);
    if (PyUnicode_Check(o))
        return put_text(w, o);
    if (o == Py_None)
        return put(w, "null", 4);
    if (o == Py_True)
        return put(w, "true", 4);
    if (o == Py_False)
        return put(w, "false", 5);
    if (PyTuple_CheckExact(o) || PyList_CheckExact(o))
        return put_array(w, o, depth);
    if (PyDict_CheckExact(o))
        return put_items(w, o, depth, 0);
    if (Py_TYPE(o) == w->endpoint)
        return put_endpoint(w, o);
    Py_ssize_t n = PyTuple_GET_SIZE(w->objects);
    for (Py_ssize_t i = 0; i < n; i++)
        if ((PyObject *)Py_TYPE(o) == PyTuple_GET_ITEM(w->objects, i))
            return put_object(w, o, depth);
    return REFUSED;
}

/* `plan`: where instances of `type` keep each name of its `__slots__`, in that order; 1 when planned, 0 when its
 * instances are not written here (a base class of its own, a slot not an object member, a name starting with `_`,
 * which orjson would leave out), -1 on an error. */
static int plan_slots(PyTypeObject *type, Slotted *plan) {
    if (type->tp_base != &PyBaseObject_Type || type->tp_members == NULL)
        return 0;
    PyObject *names = PyObject_GetAttrString((PyObject *)type, "__slots__");
    if (names == NULL) {
        PyErr_Clear();
        return 0;
    }
    int planned = PyTuple_CheckExact(names) && PyTuple_GET_SIZE(names) <= SLOTS_MAX;
    plan->type = type;
    plan->count = planned ? PyTuple_GET_SIZE(names) : 0;
    for (Py_ssize_t f = 0; f < plan->count && planned; f++) {
        PyObject *name = PyTuple_GET_ITEM(names, f);
        const char *text = PyUnicode_CheckExact(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (text == NULL || text[0] == '_') {
            PyErr_Clear();
            planned = 0;
            break;
        }
        PyMemberDef *member = type->tp_members;
        while (member->name != NULL && strcmp(member->name, text) != 0)
            member++;
        planned = member->name != NULL && member->type == T_OBJECT_EX;
        plan->names[f] = name;
        plan->offsets[f] = member->offset;
    }
    Py_DECREF(names); /* (the class's dict holds them on) */
    return planned;
}

/* lines(elements, objects, endpoint): each element's JSON text, joined by ",\n  " (json_out's lists: one element a
 * line); `objects`: the types written as their __dict__; `endpoint`: the type written as its text (a class of slots,
 * `addr` and `port` first), or None. None where an element holds what is not written here, or `endpoint` is not such
 * a class. */
static PyObject *lines(PyObject *self, PyObject *args) {
    PyObject *elements, *objects, *endpoint;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &elements, &PyTuple_Type, &objects, &endpoint))
        return NULL;
    if (endpoint != Py_None && !PyType_Check(endpoint)) {
        PyErr_SetString(PyExc_TypeError, "lines: endpoint is a type or None");
        return NULL;
    }
    Slotted ends = {0};
    if (endpoint != Py_None) {  /* a class of slots, `addr` and `port` first (results.Endpoint), or nothing is written */
        int planned = ((PyTypeObject *)endpoint)->tp_dictoffset == 0 ? plan_slots((PyTypeObject *)endpoint, &ends) : 0;
        if (planned < 0)
            return NULL;
        if (!planned || ends.count < 2 || !PyUnicode_Check(ends.names[0]) || !PyUnicode_Check(ends.names[1])
            || PyUnicode_CompareWithASCIIString(ends.names[0], "addr") || PyUnicode_CompareWithASCIIString(ends.names[1], "port"))
            Py_RETURN_NONE;
    }
    Slotted slotted[SLOTTED_MAX];
    int slotted_count = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(objects); i++) {
        PyObject *type = PyTuple_GET_ITEM(objects, i);
        if (PyType_Check(type) && ((PyTypeObject *)type)->tp_dictoffset == 0 && slotted_count < SLOTTED_MAX) {
            int planned = plan_slots((PyTypeObject *)type, &slotted[slotted_count]);
            if (planned < 0)
                return NULL;
            slotted_count += planned;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(elements);
    Writer w = {scratch, 0, scratch_size, objects, endpoint == Py_None ? NULL : (PyTypeObject *)endpoint,
                {ends.offsets[0], ends.offsets[1]}, slotted, slotted_count};
    for (Py_ssize_t i = 0; i < n; i++) {
        int done = (i && put(&w, ",\n  ", 4) < 0) ? -1 : put_value(&w, PyList_GET_ITEM(elements, i), 0);
        if (done < 0)
            return NULL;
        if (done > 0)
            Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(w.data, w.length);
}

static PyMethodDef methods[] = {
    {"lines", lines, METH_VARARGS, "Each element's JSON text as orjson writes it, one a line; None where it cannot."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_json", NULL, -1, methods};

PyMODINIT_FUNC PyInit__json(void) {
    return PyModule_Create(&module);
}
