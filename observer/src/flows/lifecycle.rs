//! What the kernel's TCP state machine says of a connection's end: payload
//! bytes and whether (and why) it failed. Pure arithmetic on the close
//! record.
use observer_common::{TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT};

use super::record::{CloseHow, FlowState};

/// Every `reason` a failed connection can have.
pub const FAILURE_REASONS: [&str; 4] = ["refused", "timeout", "reset", "not_sent"];

/// What the kernel said of a connection's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub ts_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub old_state: u32,
    pub total_retrans: u32,
    pub peer_reset: bool,
    /// `connect()` never sent a SYN.
    pub no_syn: bool,
    /// The end of a UDP flow.
    pub datagram: bool,
}

/// A finished connection, as the outputs record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEnd {
    pub state: FlowState,
    /// One of `FAILURE_REASONS` when `state` is `Failed`.
    pub failure: Option<&'static str>,
    pub how: CloseHow,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// connect() to close.
    pub duration_ns: u64,
}

impl FlowEnd {
    pub fn from_close(close: &Close, connect_ts_ns: u64, established: bool) -> Self {
        let (bytes_sent, bytes_received) = payload_bytes(close, established);
        let how = close_how(close, established);
        let failure = failure_reason(how);
        FlowEnd {
            state: if failure.is_some() {
                FlowState::Failed
            } else {
                FlowState::Closed
            },
            failure,
            how,
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
    if close.datagram {
        // UDP payload bytes, counted per datagram: nothing to take off.
        return (close.bytes_sent, close.bytes_received);
    }
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

/// How a connection ended, from the state it closed from, whether its
/// peer sent a RST (seen by the ingress program) and whether a SYN left.
pub fn close_how(close: &Close, established: bool) -> CloseHow {
    const CLOSE_WAIT: u32 = 8;
    match close.old_state {
        _ if close.datagram => CloseHow::Released,
        TCP_CLOSE if close.no_syn => CloseHow::NotSent,
        TCP_SYN_SENT if close.peer_reset => CloseHow::Refused,
        TCP_SYN_SENT if close.total_retrans > 0 => CloseHow::Timeout,
        TCP_SYN_SENT => CloseHow::Abandoned,
        TCP_ESTABLISHED | CLOSE_WAIT if close.peer_reset => CloseHow::PeerReset,
        TCP_ESTABLISHED if established => CloseHow::LocalAbort,
        _ => CloseHow::Fin,
    }
}

/// The failure a close is, if any: only what the peer or the network did.
pub fn failure_reason(how: CloseHow) -> Option<&'static str> {
    match how {
        CloseHow::Refused => Some("refused"),
        CloseHow::Timeout => Some("timeout"),
        CloseHow::PeerReset => Some("reset"),
        CloseHow::NotSent => Some("not_sent"),
        CloseHow::Fin | CloseHow::LocalAbort | CloseHow::Abandoned | CloseHow::Released => None,
    }
}
