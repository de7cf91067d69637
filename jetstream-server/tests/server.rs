//! Integration tests: real `jetstream server` processes on loopback, driven through the API
//! and `jetstream api`, with real system users (PAM) and real files.
#![allow(unreachable_pub)]

mod server {
    pub mod api;
    pub mod api_types;
    pub mod attacks;
    pub mod authclient;
    pub mod bandwidth;
    pub mod client_tls;
    pub mod config_file;
    pub mod conn_limits;
    pub mod control;
    pub mod crash;
    pub mod discover;
    pub mod embed;
    pub mod escalation;
    pub mod files_api;
    pub mod load;
    pub mod local_trust;
    pub mod logging;
    pub mod metrics;
    pub mod nopam;
    pub mod pathmemory;
    pub mod paths;
    pub mod perms;
    pub mod process;
    pub mod reference_status;
    pub mod relay;
    pub mod relay_auth;
    pub mod remaining;
    pub mod remote;
    pub mod restart;
    pub mod sandbox_races;
    pub mod sandboxes;
    pub mod schedule;
    pub mod sec_auth;
    pub mod sec_triggers;
    pub mod service;
    pub mod storage;
    pub mod triggers;
    pub mod trust;
    pub mod typed_client;
    pub mod util;
}
