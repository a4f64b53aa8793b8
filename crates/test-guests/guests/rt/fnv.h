/* FNV-1a, 32 bits, over guest-physical bytes; the Rust side has the same
 * function (rvirt_test_guests::fnv1a32). */
u32 fnv1a32(u64 addr, u64 len);
