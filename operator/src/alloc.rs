//! The allocator: jemalloc, one arena, freed pages returned at once.
//!
//! The image is a static musl binary, whose allocator is slow under a multi-threaded runtime,
//! and glibc's keeps one arena per worker thread: at 10,000 namespaces and 100,000 pods the two
//! workers' arenas held about 15 MiB more than was in use (83 MiB peak RSS against 75 with
//! this). The same allocator on every target also means the scale run measures what the image
//! runs. Declared here, in the library, so every binary linking the controller uses it (the
//! `meshbaseline` binary, and the scale run that runs the controller as its own process).

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc at its first allocation (`malloc_conf`, prefixed as tikv-jemalloc-sys
/// builds it). One arena: two workers and the blocking pool do not need more, and each arena
/// keeps its own free pages. No decay delay: pages freed after a list or a full pass go back
/// to the system instead of raising the peak of the next one. `_RJEM_MALLOC_CONF` in the
/// environment still overrides it.
#[used]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 44] = b"narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0\0";
