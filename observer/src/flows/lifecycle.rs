//! What the kernel's TCP state machine says of a connection's end: payload
//! bytes and whether (and why) it failed. Pure arithmetic on the close
//! record.
use observer_common::{TCP_ESTABLISHED, TCP_SYN_SENT};

use super::record::FlowState;

/// Every `reason` a failed connection can have.
pub const FAILURE_REASONS: [&str; 3] = ["refused", "timeout", "reset"];

/// What the kernel said of a connection's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub ts_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub old_state: u32,
    pub total_retrans: u32,
}

/// A finished connection, as the outputs record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEnd {
    pub state: FlowState,
    /// `refused`, `timeout` or `reset` when `state` is `Failed`.
    pub failure: Option<&'static str>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// connect() to close.
    pub duration_ns: u64,
}

impl FlowEnd {
    pub fn from_close(close: &Close, connect_ts_ns: u64, established: bool) -> Self {
        let (bytes_sent, bytes_received) = payload_bytes(close, established);
        let failure = failure_reason(close, established);
        FlowEnd {
            state: if failure.is_some() {
                FlowState::Failed
            } else {
                FlowState::Closed
            },
            failure,
            bytes_sent,
            bytes_received,
            duration_ns: close.ts_ns.saturating_sub(connect_ts_ns),
        }
    }

    pub fn duration_ms(&self) -> u64 {
        self.duration_ns / 1_000_000
    }
}

/// Payload bytes from the kernel's counters, which count in TCP sequence
/// space: `bytes_acked` includes our SYN and our FIN once acknowledged,
/// `bytes_received` the peer's FIN once processed. The state the socket
/// closed from says which were exchanged. Exact for ordinary closes; in
/// the one ambiguous case (FIN_WAIT2 after the application closed first,
/// where the peer's FIN reaches the time-wait socket instead) `received`
/// is one byte low.
pub fn payload_bytes(close: &Close, established: bool) -> (u64, u64) {
    const FIN_WAIT2: u32 = 5;
    const TIME_WAIT: u32 = 6;
    const CLOSE_WAIT: u32 = 8;
    const LAST_ACK: u32 = 9;
    const CLOSING: u32 = 11;
    let our_fin_acked = matches!(close.old_state, FIN_WAIT2 | TIME_WAIT | LAST_ACK | CLOSING);
    let peer_fin = matches!(
        close.old_state,
        FIN_WAIT2 | TIME_WAIT | CLOSE_WAIT | LAST_ACK | CLOSING
    );
    let sent = close
        .bytes_sent
        .saturating_sub(u64::from(established) + u64::from(our_fin_acked));
    let received = close.bytes_received.saturating_sub(u64::from(peer_fin));
    (sent, received)
}

/// Why a connection failed, from the state it closed from: a connect that
/// never completed was refused (no SYN retransmit) or timed out; an
/// established connection that closed without the FIN handshake was reset
/// (or aborted).
pub fn failure_reason(close: &Close, established: bool) -> Option<&'static str> {
    match close.old_state {
        TCP_SYN_SENT if close.total_retrans > 0 => Some("timeout"),
        TCP_SYN_SENT => Some("refused"),
        TCP_ESTABLISHED if established => Some("reset"),
        _ => None,
    }
}
