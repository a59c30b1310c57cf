//! A QUIC flow's opening: its client datagrams pushed as they arrive, read
//! into the same [`Reading`] a TCP connection's first bytes give, plus how
//! far the Initials could be read (for the flow record).
use serde::{Deserialize, Serialize};

use super::{Assembler, Progress, QuicError};
use crate::naming::{ParseFailure, Reading, read_opening};

/// How far a QUIC flow's ClientHello was read; flows are counted whatever
/// it says, named by DNS or their address when the hello is not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelloRead {
    /// The hello was read (its SNI may still be an ECH outer name).
    Read,
    /// A QUIC version whose Initials cannot be read (not v1 or v2).
    UnknownVersion,
    /// Initial packets arrived but did not open or parse.
    Unreadable,
    /// The hello was not whole when the name wait ended (lost or
    /// uncopied datagrams, or no Initial at all).
    Incomplete,
}

/// One QUIC flow's reading in progress.
#[derive(Default)]
pub struct QuicOpening {
    assembler: Assembler,
    failed: bool,
}

/// What a pushed datagram gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Wait,
    Done(Reading, HelloRead),
}

impl QuicOpening {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one client datagram. Datagrams of another connection on the
    /// same socket (a Retry, a new DCID) and non-Initial packets are
    /// skipped; a packet that fails to open is remembered and the flow
    /// keeps waiting, since a later datagram may still complete the hello.
    pub fn push(&mut self, datagram: &[u8]) -> Step {
        match self.assembler.push(datagram) {
            Ok(Progress::Complete) => match self.assembler.finish() {
                Ok(hello) => Step::Done(read_opening(&hello.tls_records()), HelloRead::Read),
                Err(_) => Step::Done(
                    Reading::Malformed(ParseFailure::Quic),
                    HelloRead::Unreadable,
                ),
            },
            Ok(Progress::NeedMore { .. }) => Step::Wait,
            Err(QuicError::UnknownVersion(_)) => Step::Done(
                Reading::Named(Default::default()),
                HelloRead::UnknownVersion,
            ),
            Err(QuicError::NotInitial | QuicError::OtherConnection) => Step::Wait,
            Err(QuicError::Limit(_)) => {
                let (reading, read) = self.at_deadline();
                Step::Done(reading, read)
            }
            Err(_) => {
                self.failed = true;
                Step::Wait
            }
        }
    }

    /// The verdict when the name wait is over.
    pub fn at_deadline(&self) -> (Reading, HelloRead) {
        if self.failed {
            (
                Reading::Malformed(ParseFailure::Quic),
                HelloRead::Unreadable,
            )
        } else {
            (Reading::Named(Default::default()), HelloRead::Incomplete)
        }
    }
}
