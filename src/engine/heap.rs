//! Giving freed heap back to the operating system after a large transient
//! allocation: a `traders` snapshot holds every trader of a shard as Arrow
//! (about 140 bytes a trader), and glibc keeps freed memory below the top
//! of its heap resident. Without a trim, a daily snapshot of a million
//! traders left some 50 MB resident for good (about 50 bytes a trader in
//! `pulse bench --stages flood`).

/// Snapshot captures at least this large are followed by a trim.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;

/// Returns free heap pages to the operating system (glibc's
/// `malloc_trim`); nothing where the allocator is another.
pub fn give_back_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer of ours; it only walks the
    // allocator's own free lists, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
