#ifndef FLUXGATE_CMALLOC_SHIM_H
#define FLUXGATE_CMALLOC_SHIM_H
/// glibc's allocator controls (malloc.h), which Swift's Glibc module does not bring in. Elsewhere they do nothing.
#if defined(__linux__)
#include <features.h>  /* defines __GLIBC__ on glibc: test it only after this */
#endif
#if defined(__GLIBC__)
#include <malloc.h>

/// Buffers of `bytes` and more come from mmap and go back to the system when freed (a fixed threshold also stops
/// glibc from raising it, up to 32 MiB, after the first large free).
static inline int fluxgate_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

/// Returns free memory at the top of the heap and whole free pages inside every arena to the system.
static inline int fluxgate_trim(void) { return malloc_trim(0); }
#else
static inline int fluxgate_set_mmap_threshold(int bytes) { (void)bytes; return 0; }
static inline int fluxgate_trim(void) { return 0; }
#endif
#endif
