//! Enforcement (`--enforce audit|deny`): the gateway as the only way to a
//! model. [`policy`] judges classified flows; [`kernel_tables`] turns the
//! classifier's rules into the tables the kernel decides with;
//! [`dns_addrs`] follows which addresses only denied names' DNS answers gave
//! a cgroup (refused at connect); [`destroy`] ends a denied socket
//! (netlink `SOCK_DESTROY`, as `ss -K` does); [`enforcer`] carries out what
//! the flow table asks (policy answers and addresses to the kernel, sockets
//! to end), and ages its own state out.
pub mod destroy;
pub mod dns_addrs;
pub mod enforcer;
pub mod kernel_tables;
pub mod policy;

pub use dns_addrs::{AddrChange, DnsAddrs};
pub use enforcer::{Action, Enforcer};
pub use kernel_tables::{NameJudge, kernel_tables};
pub use policy::{Denial, Explanation, KernelDid, Mode, Policy, Stage, explain};
