//! Integration tests over real UDP sockets on 127.0.0.1 with real files. One binary (ripgrep
//! style); the modules are in `it/`.

#![allow(unreachable_pub)] // Test helpers shared between modules of one test binary.

mod it {
    pub mod util;

    pub mod bogus;
    mod discovery;
    mod faults;
    mod flood;
    mod loopback;
    mod perms;
    pub mod proxy;
    mod resume;
}
