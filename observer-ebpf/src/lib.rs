#![no_std]
// Lets observer list this crate as a build-dependency, so cargo rebuilds the
// embedded object when the kernel programs change.
