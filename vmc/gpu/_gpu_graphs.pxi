# Included by _gpu.pyx: device work captured once and replayed (Graph), and the
# kernel times of profiled launches (EventLog). Declared in _gpu.pxd.

cdef bytes _pack(vmc_args *a):
    """A launch's arguments as bytes: (size, value) of each, for a recorded launch."""
    cdef int i
    out = bytearray()
    for i in range(a.n):
        out += a.size[i].to_bytes(8, "little")
        out += (<char *>a.ptr[i])[:8]
    return bytes(out)


cdef class Graph:
    """Device work captured once (``Device.begin_capture``/``end_capture``);
    ``launch()`` runs it again, with the same buffers and arguments."""

    def launch(self):
        cdef vmc_args a
        cdef size_t size
        cdef bytes packed
        cdef const char *raw
        cdef int i
        if self.commands is None:
            self.dev.activate()
            cu_check(CU.GraphLaunch(self.handle, self.dev.stream), "cuGraphLaunch")
            return
        for cmd in self.commands:
            if cmd[0] == "launch":
                packed = cmd[4]
                raw = packed
                a.n, a.used = 0, 0
                for i in range(len(packed) // 16):
                    size = int.from_bytes(packed[16 * i: 16 * i + 8], "little")
                    vmc_push(&a, raw + 16 * i + 8, size)
                self.dev.launch(cmd[1], cmd[2], cmd[3], &a)
            elif cmd[0] == "copy":
                self.dev.dtod(cmd[1], cmd[2], cmd[3], cmd[4], cmd[5])
            else:
                self.dev.zero(cmd[1], cmd[2], cmd[3])

    def __dealloc__(self):
        if self.handle != NULL and self.dev is not None:
            CU.GraphExecDestroy(self.handle)


cdef class EventLog:
    """Kernel times of profiled functions, measured by the device itself: CUDA events
    recorded around each launch, or OpenCL's profiling events (the queue is made
    with profiling on). Nothing waits per launch: the events are read when the log
    is collected (``collect``: at a profile's summary, or when many are pending).

    ``current`` is the key the next launches are booked under (a profiled thunk
    sets it while it runs; launches outside profiled thunks are not recorded).
    ``totals``: key -> [device ns, launches]; pending: (key, start, end) events
    (CUDA) or (key, cl_event, 0)."""

    def __init__(self):
        self.current, self.totals, self.pending, self.start = None, {}, [], NULL

    cdef int before(self, Device dev) except -1:
        if dev.kind == CUDA:
            cu_check(CU.EventCreate(&self.start, 0), "cuEventCreate")
            cu_check(CU.EventRecord(self.start, dev.stream), "cuEventRecord")
        return 0

    cdef int after(self, Device dev, void *ev) except -1:
        cdef void *end = NULL
        if self.current is None:
            if dev.kind != CUDA and ev != NULL:
                CL.ReleaseEvent(ev)
            return 0
        if dev.kind == CUDA:
            cu_check(CU.EventCreate(&end, 0), "cuEventCreate")
            cu_check(CU.EventRecord(end, dev.stream), "cuEventRecord")
            self.pending.append((self.current, <size_t>self.start, <size_t>end))
            self.start = NULL
        elif ev != NULL:
            self.pending.append((self.current, <size_t>ev, 0))
        if len(self.pending) > 4096:
            self.collect(dev)
        return 0

    def collect(self, Device dev):
        """Read every pending event (after the device drains) into ``totals``."""
        cdef float ms
        cdef unsigned long long t0, t1
        cdef void *a
        cdef void *b
        if not self.pending:
            return self.totals
        dev.sync()
        for key, x, y in self.pending:
            a, b = <void *><size_t>x, <void *><size_t>y
            ns = 0
            if dev.kind == CUDA:
                if CU.EventElapsedTime(&ms, a, b) == 0:
                    ns = int(ms * 1e6)
                CU.EventDestroy(a)
                CU.EventDestroy(b)
            else:
                if CL.GetEventProfilingInfo(a, VMC_CL_PROFILING_COMMAND_START, 8, &t0, NULL) == 0 \
                        and CL.GetEventProfilingInfo(a, VMC_CL_PROFILING_COMMAND_END, 8, &t1,
                                                     NULL) == 0:
                    ns = int(t1 - t0)
                CL.ReleaseEvent(a)
            tot = self.totals.setdefault(key, [0, 0])
            tot[0] += ns
            tot[1] += 1
        self.pending = []
        return self.totals
