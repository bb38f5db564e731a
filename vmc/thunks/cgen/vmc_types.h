/* vmc_types.h: numpy's C scalar types, for code that does not include numpy.
 *
 * Generated kernel libraries are plain C (no Python.h, no numpy headers: they
 * are two thirds of a small kernel's compile time) and use numpy's type names,
 * so that the same headers serve the driver, which includes numpy first. The
 * definitions match numpy's on the LP64 platforms vmc builds on; the driver
 * checks the sizes it shares with kernels (_ew_runtime.c).
 */
#ifndef VMC_TYPES_H
#define VMC_TYPES_H
#ifndef NUMPY_CORE_INCLUDE_NUMPY_NPY_COMMON_H_
#include <stddef.h>
#include <stdint.h>
typedef ptrdiff_t npy_intp;
typedef unsigned char npy_bool;
typedef int8_t npy_int8;
typedef int16_t npy_int16;
typedef int32_t npy_int32;
typedef int64_t npy_int64;
typedef uint8_t npy_uint8;
typedef uint16_t npy_uint16;
typedef uint32_t npy_uint32;
typedef uint64_t npy_uint64;
typedef float npy_float32;
typedef double npy_float64;
#define NPY_MIN_INT8 INT8_MIN
#define NPY_MIN_INT16 INT16_MIN
#define NPY_MIN_INT32 INT32_MIN
#define NPY_MIN_INT64 INT64_MIN
#endif
#endif /* VMC_TYPES_H */
