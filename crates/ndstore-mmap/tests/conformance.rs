//! The `mmap` backend's conformance suite: the shared checks, driven through its capabilities.

// SAFETY: the harness maps only files in its own scratch directories, which no other program
// truncates or rewrites.
const MMAP: ndstore_mmap::MmapBackend = unsafe { ndstore_mmap::MmapBackend::new() };

ndstore_conformance::suite!(MMAP);
