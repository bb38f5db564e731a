# Reference counting on raw PyObject pointers with no Cython exception
# checks, for code that works on register files of PyObject * (the thunks).
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    void _incref "Py_INCREF"(PyObject *o) noexcept
    void _xdecref "Py_XDECREF"(PyObject *o) noexcept
    Py_ssize_t _refcnt "Py_REFCNT"(PyObject *o) noexcept
