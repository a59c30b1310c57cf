//! Maps keyed by values the kernel or gatewatch itself chose (socket
//! cookies, cgroup ids, precomputed hashes): nobody outside can pick them
//! to collide, so they need no SipHash, and they are hashed several times
//! per connection. Maps keyed by addresses or names from the network keep
//! std's keyed SipHash.
use std::collections::HashMap;

/// A `HashMap` with foldhash's fast, fixed-seed hasher.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
