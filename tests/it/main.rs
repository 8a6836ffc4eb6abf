//! End-to-end tests: the real server on port 0 with a temporary data directory, real HTTP
//! (reqwest) and real socket.io clients (rust_socketio).

mod bad_input;
mod beanstalk;
mod bench;
mod catch_up;
mod classroom;
mod config;
mod dashboard;
mod delivery;
mod disk_full;
mod durability;
mod flood;
mod flow;
mod fuzz;
mod helpers;
mod limits;
mod openapi;
mod operation;
mod publish;
mod redis;
mod security;
mod security_modes;
mod strict_input;
mod timing;
mod work;
